// Every failure throws ddaebm::Error with the right status and a message; outputs stay untouched.

#include <ddaebm.hpp>

#include "runner.hpp"

#include <limits>
#include <span>
#include <string>
#include <vector>

namespace {

using test::fixture;

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

DDAEBM_TEST(error_check) {
    ddaebm::check(DDAEBM_OK);
    const ddaebm::Error e(DDAEBM_ERR_IO, "message");
    CHECK(e.status() == DDAEBM_ERR_IO);
    CHECK(std::string(e.what()) == "message");
    CHECK(std::string(e.status_string()) == ddaebm_status_string(DDAEBM_ERR_IO));
}

DDAEBM_TEST(error_wrong_row_length) {
    const auto& f = fixture();
    const auto model = f.open();
    std::vector<float> out(f.rows, -1.0F);
    // The wrapper always passes input_dim(); a wrong row_len can only come through the C API.
    const auto message = CHECK_ERROR(
        DDAEBM_ERR_SHAPE_MISMATCH,
        ddaebm::check(ddaebm_energy(model.capi(), f.x.data(), f.rows, f.dim + 1, out.data())));
    CHECK(contains(message, std::to_string(f.dim + 1)));
    CHECK(out == std::vector<float>(f.rows, -1.0F));
}

DDAEBM_TEST(error_not_whole_rows) {
    const auto& f = fixture();
    const auto model = f.open();
    const std::vector<float> x(f.x.data(), f.x.data() + 2 * f.dim + 1);
    const auto message = CHECK_ERROR(DDAEBM_ERR_SHAPE_MISMATCH, model.energy(x));
    CHECK(contains(message, std::to_string(x.size()) + " floats"));
    CHECK_ERROR(DDAEBM_ERR_SHAPE_MISMATCH, model.screen(x));
    CHECK_ERROR(DDAEBM_ERR_SHAPE_MISMATCH, model.pvalues(x));
    CHECK_ERROR(DDAEBM_ERR_SHAPE_MISMATCH, model.drift(x));
    CHECK_ERROR(DDAEBM_ERR_SHAPE_MISMATCH, model.explain(x));
    CHECK_ERROR(DDAEBM_ERR_SHAPE_MISMATCH, model.energy(std::span<const float>(x)));
    CHECK_ERROR(DDAEBM_ERR_SHAPE_MISMATCH, model.screen(std::span<const float>(x)));
    CHECK_ERROR(DDAEBM_ERR_SHAPE_MISMATCH, model.pvalues(std::span<const float>(x)));
    CHECK_ERROR(DDAEBM_ERR_SHAPE_MISMATCH, model.drift(std::span<const float>(x)));
    CHECK_ERROR(DDAEBM_ERR_SHAPE_MISMATCH, model.explain(std::span<const float>(x)));
}

DDAEBM_TEST(error_output_span_size) {
    const auto& f = fixture();
    const auto model = f.open();
    const std::span<const float> x(f.x);
    std::vector<float> short_out(f.rows - 1, -1.0F);
    std::vector<float> long_out(f.rows + 1, -1.0F);
    std::vector<std::uint8_t> is_ood(f.rows, 7);
    const auto message =
        CHECK_ERROR(DDAEBM_ERR_SHAPE_MISMATCH, model.energy(x, std::span<float>(short_out)));
    CHECK(contains(message, std::to_string(f.rows) + " rows"));
    CHECK_ERROR(DDAEBM_ERR_SHAPE_MISMATCH, model.pvalues(x, std::span<float>(long_out)));
    CHECK_ERROR(DDAEBM_ERR_SHAPE_MISMATCH, model.explain(x, std::span<float>(long_out)));
    CHECK_ERROR(DDAEBM_ERR_SHAPE_MISMATCH,
                model.screen(x, std::span<float>(short_out), std::span<std::uint8_t>(is_ood)));
    CHECK(short_out == std::vector<float>(f.rows - 1, -1.0F));
    CHECK(long_out == std::vector<float>(f.rows + 1, -1.0F));
    CHECK(is_ood == std::vector<std::uint8_t>(f.rows, 7));
}

/// The fixture rows with `bad` at row 2, column 1; every scoring method must reject them.
void check_non_finite(float bad) {
    const auto& f = fixture();
    const auto model = f.open();
    std::vector<float> x = f.x;
    x[2 * f.dim + 1] = bad;
    const auto message = CHECK_ERROR(DDAEBM_ERR_NON_FINITE, model.energy(x));
    CHECK(contains(message, "row 2") && contains(message, "column 1"));
    CHECK_ERROR(DDAEBM_ERR_NON_FINITE, model.screen(x));
    CHECK_ERROR(DDAEBM_ERR_NON_FINITE, model.pvalues(std::span<const float>(x)));
    const auto drift_message = CHECK_ERROR(DDAEBM_ERR_NON_FINITE, model.drift(x));
    CHECK(drift_message.rfind("ddaebm_drift:", 0) == 0);
    CHECK(contains(drift_message, "row 2") && contains(drift_message, "column 1"));

    std::vector<float> energy(f.rows, -1.0F);
    std::vector<std::uint8_t> is_ood(f.rows, 7);
    CHECK_ERROR(DDAEBM_ERR_NON_FINITE,
                model.screen(x.data(), f.rows, energy.data(), is_ood.data()));
    CHECK(energy == std::vector<float>(f.rows, -1.0F));
    CHECK(is_ood == std::vector<std::uint8_t>(f.rows, 7));
}

DDAEBM_TEST(error_explain) {
    const auto& f = fixture();
    const auto model = f.open();
    std::vector<float> x = f.x;
    x[2 * f.dim + 1] = std::numeric_limits<float>::quiet_NaN();
    std::vector<float> out(f.rows * f.dim, -1.0F);
    auto message = CHECK_ERROR(DDAEBM_ERR_NON_FINITE, model.explain(x.data(), f.rows, out.data()));
    CHECK(message.rfind("ddaebm_explain:", 0) == 0);
    CHECK(contains(message, "row 2") && contains(message, "column 1"));
    // A wrong row_len or a NULL output can only come through the C API.
    message = CHECK_ERROR(
        DDAEBM_ERR_SHAPE_MISMATCH,
        ddaebm::check(ddaebm_explain(model.capi(), f.x.data(), f.rows, f.dim + 1, out.data())));
    CHECK(message.rfind("ddaebm_explain:", 0) == 0);
    message = CHECK_ERROR(
        DDAEBM_ERR_NULL_ARGUMENT,
        ddaebm::check(ddaebm_explain(model.capi(), f.x.data(), f.rows, f.dim, nullptr)));
    CHECK(message.rfind("ddaebm_explain:", 0) == 0);
    message = CHECK_ERROR(
        DDAEBM_ERR_NULL_ARGUMENT,
        ddaebm::check(ddaebm_explain(nullptr, f.x.data(), f.rows, f.dim, out.data())));
    CHECK(message.rfind("ddaebm_explain:", 0) == 0);
    CHECK(out == std::vector<float>(f.rows * f.dim, -1.0F));
}

DDAEBM_TEST(error_drift) {
    const auto& f = fixture();
    const auto model = f.open();
    // The wrapper always passes input_dim() and a result; a wrong row_len or a NULL result can
    // only come through the C API, which leaves the result untouched.
    ddaebm_drift_result out{};
    out.p_value = -1.0;
    out.batch_rows = 7;
    auto message = CHECK_ERROR(
        DDAEBM_ERR_SHAPE_MISMATCH,
        ddaebm::check(ddaebm_drift(model.capi(), f.x.data(), f.rows, f.dim + 1, &out)));
    CHECK(message.rfind("ddaebm_drift:", 0) == 0);
    message = CHECK_ERROR(
        DDAEBM_ERR_NULL_ARGUMENT,
        ddaebm::check(ddaebm_drift(model.capi(), f.x.data(), f.rows, f.dim, nullptr)));
    CHECK(message.rfind("ddaebm_drift:", 0) == 0);
    message = CHECK_ERROR(DDAEBM_ERR_NULL_ARGUMENT,
                          ddaebm::check(ddaebm_drift(nullptr, f.x.data(), f.rows, f.dim, &out)));
    CHECK(message.rfind("ddaebm_drift:", 0) == 0);
    message = CHECK_ERROR(DDAEBM_ERR_INVALID_ARGUMENT, model.drift(f.x.data(), 0));
    CHECK(message.rfind("ddaebm_drift:", 0) == 0);
    CHECK(out.p_value == -1.0 && out.effect == 0.0 && out.batch_rows == 7);
}

DDAEBM_TEST(error_nan) { check_non_finite(std::numeric_limits<float>::quiet_NaN()); }

DDAEBM_TEST(error_inf) {
    check_non_finite(std::numeric_limits<float>::infinity());
    check_non_finite(-std::numeric_limits<float>::infinity());
}

/// Opening fixture file `name` must fail with `status`; returns the message.
std::string open_error(ddaebm_status status, const std::string& name,
                       const ddaebm::OpenOptions& options = {}) {
    return CHECK_ERROR(status, ddaebm::Model::open(fixture().path(name), options));
}

DDAEBM_TEST(error_truncated_file) {
    open_error(DDAEBM_ERR_BAD_MODEL, "truncated.safetensors");
}

DDAEBM_TEST(error_random_file) { open_error(DDAEBM_ERR_BAD_MODEL, "random.safetensors"); }

DDAEBM_TEST(error_future_version) {
    open_error(DDAEBM_ERR_UNSUPPORTED_VERSION, "future.safetensors");
}

DDAEBM_TEST(error_missing_file) {
    const auto message = open_error(DDAEBM_ERR_IO, "no-such-model.safetensors");
    CHECK(contains(message, "no-such-model.safetensors"));
}

DDAEBM_TEST(error_bad_device) {
    const auto message =
        open_error(DDAEBM_ERR_INVALID_ARGUMENT, "model.safetensors", {"tpu", 0});
    CHECK(contains(message, "tpu"));
}

DDAEBM_TEST(error_cuda_unavailable) {
    open_error(DDAEBM_ERR_DEVICE_UNAVAILABLE, "model.safetensors", {"cuda", 0});
    open_error(DDAEBM_ERR_DEVICE_UNAVAILABLE, "model.safetensors", {"cuda:1", 0});
}

DDAEBM_TEST(error_sample_buffer) {
    const auto& f = fixture();
    const auto model = f.open();
    std::vector<float> out(f.dim * 2 - 1, -1.0F);
    CHECK_ERROR(DDAEBM_ERR_SHAPE_MISMATCH, model.sample(2, 1, out.data(), out.size()));
    CHECK_ERROR(DDAEBM_ERR_SHAPE_MISMATCH, model.sample(2, 1, std::span<float>(out)));
    CHECK(out == std::vector<float>(f.dim * 2 - 1, -1.0F));
    CHECK_ERROR(DDAEBM_ERR_NULL_ARGUMENT, model.sample(2, 1, nullptr, 2 * f.dim));
}

DDAEBM_TEST(error_sample_overflow) {
    const auto model = fixture().open();
    CHECK_ERROR(DDAEBM_ERR_INVALID_ARGUMENT,
                model.sample(std::numeric_limits<std::size_t>::max() / 2, 1));
}

DDAEBM_TEST(error_model_usable_after_error) {
    const auto& f = fixture();
    const auto model = f.open();
    std::vector<float> x = f.x;
    x[0] = std::numeric_limits<float>::quiet_NaN();
    CHECK_ERROR(DDAEBM_ERR_NON_FINITE, model.energy(x));
    CHECK(test::bits_equal(model.energy(f.x), f.energy));
}

}  // namespace

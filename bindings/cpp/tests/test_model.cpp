// Model: opening, getters, scoring and sampling through every overload, move semantics.

#include <ddaebm.hpp>

#include "runner.hpp"

#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

// Defined in double_include.cpp, a second translation unit that includes ddaebm.hpp.
std::size_t other_tu_input_dim(const ddaebm::Model& model);

namespace {

using test::bits_equal;
using test::fixture;

static_assert(!std::is_copy_constructible_v<ddaebm::Model>);
static_assert(!std::is_copy_assignable_v<ddaebm::Model>);
static_assert(std::is_nothrow_move_constructible_v<ddaebm::Model>);
static_assert(std::is_nothrow_move_assignable_v<ddaebm::Model>);

constexpr float kSentinel = -12345.0F;

DDAEBM_TEST(version) {
    CHECK(ddaebm::version() == DDAEBM_VERSION_STRING);
    CHECK(ddaebm::version_matches());
}

DDAEBM_TEST(open_getters) {
    const auto& f = fixture();
    const ddaebm::Model model = f.open();
    CHECK(static_cast<bool>(model));
    CHECK(model.capi() != nullptr);
    CHECK(model.input_dim() == f.dim);
    CHECK(ddaebm_model_input_dim(model.capi()) == f.dim);
    CHECK(model.threshold() == f.threshold);
    const std::string metadata = model.metadata();
    CHECK(metadata.front() == '{' && metadata.back() == '}');
    CHECK(metadata.find("\"input_dim\": " + std::to_string(f.dim)) != std::string::npos);
    CHECK(metadata == ddaebm_model_metadata(model.capi()));
}

DDAEBM_TEST(image_shape) {
    const auto& f = fixture();
    const auto image = f.open_image();
    const auto shape = image.image_shape();
    CHECK(shape.has_value());
    CHECK(shape.value_or(std::array<std::size_t, 3>{}) ==
          (std::array<std::size_t, 3>{f.image_channels, f.image_height, f.image_width}));
    CHECK(image.input_dim() == f.image_channels * f.image_height * f.image_width);
    // A model of plain feature vectors has none.
    CHECK(!f.open().image_shape().has_value());
    CHECK_ERROR(DDAEBM_ERR_NULL_ARGUMENT, ddaebm::Model().image_shape());
}

DDAEBM_TEST(image_energy) {
    const auto& f = fixture();
    const auto model = f.open_image();
    // One row per image: C·H·W floats, channel-major, raw pixel scale.
    CHECK(bits_equal(model.energy(f.image_x), f.image_energy));
    CHECK(bits_equal(model.energy(f.image_x.data(), f.image_rows), f.image_energy));
    CHECK(bits_equal(model.energy(std::span<const float>(f.image_x)), f.image_energy));
    const auto s = model.screen(f.image_x);
    CHECK(bits_equal(s.energy, f.image_energy));
    for (std::size_t i = 0; i < f.image_rows; ++i) {
        CHECK(s.is_ood[i] == (s.energy[i] > model.threshold() ? 1 : 0));
    }
    const auto two = ddaebm::Model::open(f.path("image_model.safetensors"), {"cpu", 2});
    CHECK(bits_equal(two.energy(f.image_x), f.image_energy));
    // Not a whole number of images.
    CHECK_ERROR(DDAEBM_ERR_SHAPE_MISMATCH,
                model.energy(std::vector<float>(f.image_x.begin(), f.image_x.end() - 1)));
}

// A model of another training method (GCD, Gaussian-policy sampler) through the same calls.
DDAEBM_TEST(gcd_model) {
    const auto& f = fixture();
    const auto model = ddaebm::Model::open(f.path("gcd_model.safetensors"));
    CHECK(model.metadata().find("\"gaussian_policy\"") != std::string::npos);
    CHECK(bits_equal(model.energy(f.x), f.gcd_energy));
    CHECK(bits_equal(model.sample(f.sample_rows, f.sample_seed), f.gcd_sample));
}

// A model of a third training method (DCD, Langevin sampler on the energy) through the same
// calls.
DDAEBM_TEST(dcd_model) {
    const auto& f = fixture();
    const auto model = ddaebm::Model::open(f.path("dcd_model.safetensors"));
    CHECK(model.metadata().find("\"langevin\"") != std::string::npos);
    CHECK(bits_equal(model.energy(f.x), f.dcd_energy));
    CHECK(bits_equal(model.sample(f.sample_rows, f.sample_seed), f.dcd_sample));
}

DDAEBM_TEST(open_options) {
    const auto& f = fixture();
    const auto model = ddaebm::Model::open(f.path("model.safetensors"), {"cpu", 2});
    CHECK(model.input_dim() == f.dim);
    CHECK(bits_equal(model.energy(f.x), f.energy));
    CHECK(bits_equal(model.sample(f.sample_rows, f.sample_seed), f.sample));
}

DDAEBM_TEST(energy_pointer) {
    const auto& f = fixture();
    const auto model = f.open();
    CHECK(bits_equal(model.energy(f.x.data(), f.rows), f.energy));

    std::vector<float> out(f.rows, kSentinel);
    model.energy(f.x.data(), f.rows, out.data());
    CHECK(bits_equal(out, f.energy));
}

DDAEBM_TEST(energy_vector) {
    const auto& f = fixture();
    CHECK(bits_equal(f.open().energy(f.x), f.energy));
}

DDAEBM_TEST(energy_span) {
    const auto& f = fixture();
    const auto model = f.open();
    const std::span<const float> x(f.x);
    CHECK(bits_equal(model.energy(x), f.energy));

    std::vector<float> out(f.rows, kSentinel);
    model.energy(x, std::span<float>(out));
    CHECK(bits_equal(out, f.energy));

    // A sub-span scores just those rows. (Compared with the pointer overload on the same rows:
    // the library's energies of a row may differ in the last bits between batch sizes.)
    CHECK(bits_equal(model.energy(x.subspan(f.dim, 2 * f.dim)),
                     model.energy(f.x.data() + f.dim, 2)));
}

DDAEBM_TEST(screen_pointer) {
    const auto& f = fixture();
    const auto model = f.open();
    const ddaebm::Screening s = model.screen(f.x.data(), f.rows);
    CHECK(bits_equal(s.energy, f.energy));
    CHECK(bits_equal(s.is_ood, f.is_ood));

    std::vector<float> energy(f.rows, kSentinel);
    std::vector<std::uint8_t> is_ood(f.rows, 7);
    model.screen(f.x.data(), f.rows, energy.data(), is_ood.data());
    CHECK(bits_equal(energy, f.energy));
    CHECK(bits_equal(is_ood, f.is_ood));

    // Either output may be skipped.
    std::vector<std::uint8_t> only_ood(f.rows, 7);
    model.screen(f.x.data(), f.rows, nullptr, only_ood.data());
    CHECK(bits_equal(only_ood, f.is_ood));
    std::vector<float> only_energy(f.rows, kSentinel);
    model.screen(f.x.data(), f.rows, only_energy.data(), nullptr);
    CHECK(bits_equal(only_energy, f.energy));
}

DDAEBM_TEST(screen_vector) {
    const auto& f = fixture();
    const auto model = f.open();
    const auto s = model.screen(f.x);
    CHECK(bits_equal(s.energy, f.energy));
    CHECK(bits_equal(s.is_ood, f.is_ood));

    std::size_t flagged = 0;
    for (std::size_t i = 0; i < f.rows; ++i) {
        CHECK(s.is_ood[i] == (s.energy[i] > model.threshold() ? 1 : 0));
        flagged += s.is_ood[i];
    }
    CHECK(flagged == f.flagged);
}

DDAEBM_TEST(screen_span) {
    const auto& f = fixture();
    const auto model = f.open();
    const std::span<const float> x(f.x);
    const auto s = model.screen(x);
    CHECK(bits_equal(s.energy, f.energy));
    CHECK(bits_equal(s.is_ood, f.is_ood));

    std::vector<float> energy(f.rows, kSentinel);
    std::vector<std::uint8_t> is_ood(f.rows, 7);
    model.screen(x, std::span<float>(energy), std::span<std::uint8_t>(is_ood));
    CHECK(bits_equal(energy, f.energy));
    CHECK(bits_equal(is_ood, f.is_ood));
}

DDAEBM_TEST(pvalues_pointer) {
    const auto& f = fixture();
    const auto model = f.open();
    CHECK(bits_equal(model.pvalues(f.x.data(), f.rows), f.pvalue));

    std::vector<float> out(f.rows, kSentinel);
    model.pvalues(f.x.data(), f.rows, out.data());
    CHECK(bits_equal(out, f.pvalue));
}

DDAEBM_TEST(pvalues_vector) {
    const auto& f = fixture();
    const auto p = f.open().pvalues(f.x);
    CHECK(bits_equal(p, f.pvalue));
    for (const float v : p) {
        CHECK(v > 0.0F && v <= 1.0F);
    }
}

DDAEBM_TEST(pvalues_span) {
    const auto& f = fixture();
    const auto model = f.open();
    const std::span<const float> x(f.x);
    CHECK(bits_equal(model.pvalues(x), f.pvalue));

    std::vector<float> out(f.rows, kSentinel);
    model.pvalues(x, std::span<float>(out));
    CHECK(bits_equal(out, f.pvalue));
}

DDAEBM_TEST(explain_pointer) {
    const auto& f = fixture();
    const auto model = f.open();
    CHECK(bits_equal(model.explain(f.x.data(), f.rows), f.explain));

    std::vector<float> out(f.rows * f.dim + 1, kSentinel);
    model.explain(f.x.data(), f.rows, out.data());
    CHECK(std::memcmp(out.data(), f.explain.data(), f.explain.size() * sizeof(float)) == 0);
    CHECK(std::memcmp(&out.back(), &kSentinel, sizeof(float)) == 0);
    CHECK(model.explain(f.x.data(), 0).empty());
}

DDAEBM_TEST(explain_vector) {
    const auto& f = fixture();
    const auto a = f.open().explain(f.x);
    CHECK(bits_equal(a, f.explain));
    for (const float v : a) {
        CHECK(std::isfinite(v));
    }
}

DDAEBM_TEST(explain_span) {
    const auto& f = fixture();
    const auto model = f.open();
    const std::span<const float> x(f.x);
    CHECK(bits_equal(model.explain(x), f.explain));

    std::vector<float> out(f.rows * f.dim, kSentinel);
    model.explain(x, std::span<float>(out));
    CHECK(bits_equal(out, f.explain));
    CHECK(model.explain(std::span<const float>{}).empty());
}

DDAEBM_TEST(drift_pointer) {
    const auto& f = fixture();
    const auto model = f.open();
    const ddaebm::DriftResult all = model.drift(f.x.data(), f.rows);
    CHECK(f.is_drift(all, false));
    CHECK(f.is_drift(model.drift(f.x.data(), f.rows / 2), true));
    // Half of the rows are far away: a tiny p-value, batch energies above the calibration's.
    CHECK(all.p_value > 0.0 && all.p_value < 1e-4 && all.effect > 0.5 && all.z > 0.0);
}

DDAEBM_TEST(drift_vector) {
    const auto& f = fixture();
    const auto model = f.open();
    CHECK(f.is_drift(model.drift(f.x), false));
    const std::vector<float> half(f.x.begin(), f.x.begin() + (f.rows / 2) * f.dim);
    const auto d = model.drift(half);
    CHECK(f.is_drift(d, true));
    CHECK(d.p_value > 0.0 && d.p_value <= 1.0 && d.effect >= 0.0 && d.effect <= 1.0);
}

DDAEBM_TEST(drift_span) {
    const auto& f = fixture();
    const auto model = f.open();
    const std::span<const float> x(f.x);
    CHECK(f.is_drift(model.drift(x), false));
    CHECK(f.is_drift(model.drift(x.first((f.rows / 2) * f.dim)), true));
}

DDAEBM_TEST(zero_rows) {
    const auto model = fixture().open();
    CHECK(model.energy(std::vector<float>{}).empty());
    CHECK(model.energy(nullptr, 0).empty());
    CHECK(model.pvalues(std::span<const float>{}).empty());
    const auto s = model.screen(std::vector<float>{});
    CHECK(s.energy.empty() && s.is_ood.empty());
    CHECK(model.sample(0, 1).empty());
    // The drift test needs at least one row.
    const auto message =
        CHECK_ERROR(DDAEBM_ERR_INVALID_ARGUMENT, model.drift(std::vector<float>{}));
    CHECK(message.rfind("ddaebm_drift", 0) == 0);
    CHECK_ERROR(DDAEBM_ERR_INVALID_ARGUMENT, model.drift(nullptr, 0));
    CHECK_ERROR(DDAEBM_ERR_INVALID_ARGUMENT, model.drift(std::span<const float>{}));
}

DDAEBM_TEST(sample_fixture) {
    const auto& f = fixture();
    const auto model = f.open();
    const auto rows = model.sample(f.sample_rows, f.sample_seed);
    CHECK(bits_equal(rows, f.sample));
    for (const float v : rows) {
        CHECK(std::isfinite(v));
    }
}

DDAEBM_TEST(sample_reproducible) {
    const auto& f = fixture();
    const auto model = f.open();
    const auto a = model.sample(f.sample_rows, f.sample_seed);
    CHECK(bits_equal(model.sample(f.sample_rows, f.sample_seed), a));
    CHECK(bits_equal(f.open().sample(f.sample_rows, f.sample_seed), a));
    CHECK(!bits_equal(model.sample(f.sample_rows, f.sample_seed + 1), a));
}

DDAEBM_TEST(sample_into) {
    const auto& f = fixture();
    const auto model = f.open();
    const std::size_t n = f.sample.size();

    // Exactly n_rows × dim floats are written; the rest of a larger buffer is left alone.
    std::vector<float> out(n + 3, kSentinel);
    model.sample(f.sample_rows, f.sample_seed, out.data(), out.size());
    CHECK(bits_equal(std::vector<float>(out.data(), out.data() + n), f.sample));
    CHECK(out[n] == kSentinel && out[n + 2] == kSentinel);

    std::vector<float> exact(n, kSentinel);
    model.sample(f.sample_rows, f.sample_seed, std::span<float>(exact));
    CHECK(bits_equal(exact, f.sample));
}

DDAEBM_TEST(move_semantics) {
    const auto& f = fixture();
    ddaebm::Model a = f.open();
    const ddaebm_model* raw = a.capi();

    ddaebm::Model b = std::move(a);
    CHECK(b.capi() == raw);
    CHECK(bits_equal(b.energy(f.x), f.energy));
    // A moved-from model is empty and every method throws.
    CHECK(!a);  // NOLINT(bugprone-use-after-move)
    CHECK(a.capi() == nullptr);
    CHECK_ERROR(DDAEBM_ERR_NULL_ARGUMENT, a.input_dim());
    CHECK_ERROR(DDAEBM_ERR_NULL_ARGUMENT, a.threshold());
    CHECK_ERROR(DDAEBM_ERR_NULL_ARGUMENT, a.metadata());
    CHECK_ERROR(DDAEBM_ERR_NULL_ARGUMENT, a.image_shape());
    CHECK_ERROR(DDAEBM_ERR_NULL_ARGUMENT, a.energy(f.x));
    CHECK_ERROR(DDAEBM_ERR_NULL_ARGUMENT, a.screen(f.x.data(), f.rows));
    CHECK_ERROR(DDAEBM_ERR_NULL_ARGUMENT, a.pvalues(std::span<const float>(f.x)));
    CHECK_ERROR(DDAEBM_ERR_NULL_ARGUMENT, a.drift(f.x));
    CHECK_ERROR(DDAEBM_ERR_NULL_ARGUMENT, a.sample(1, 1));

    // Move assignment frees the old model and takes over the new one.
    ddaebm::Model c = f.open();
    c = std::move(b);
    CHECK(c.capi() == raw);
    CHECK(!b);  // NOLINT(bugprone-use-after-move)
    CHECK(bits_equal(c.sample(f.sample_rows, f.sample_seed), f.sample));

    // A moved-from model can be assigned again.
    a = f.open();
    CHECK(a.input_dim() == f.dim);
}

DDAEBM_TEST(default_constructed) {
    const ddaebm::Model empty;
    CHECK(!empty);
    CHECK(empty.capi() == nullptr);
    const auto message = CHECK_ERROR(DDAEBM_ERR_NULL_ARGUMENT, empty.input_dim());
    CHECK(message.find("empty") != std::string::npos);
}

DDAEBM_TEST(double_include) {
    const auto model = fixture().open();
    CHECK(other_tu_input_dim(model) == model.input_dim());
}

}  // namespace

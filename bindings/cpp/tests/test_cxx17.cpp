// Built as C++17 (its own executable): the header works without std::span.

#include <ddaebm.hpp>

#include "runner.hpp"

#include <vector>

static_assert(__cplusplus == 201703L, "this test must be compiled as C++17");

namespace {

using test::bits_equal;
using test::fixture;

DDAEBM_TEST(cxx17_model) {
    const auto& f = fixture();
    const ddaebm::Model model = ddaebm::Model::open(f.path("model.safetensors"), {"cpu", 0});
    CHECK(ddaebm::version_matches());
    CHECK(model.input_dim() == f.dim);
    CHECK(model.threshold() == f.threshold);
    CHECK(bits_equal(model.energy(f.x), f.energy));
    CHECK(bits_equal(model.pvalues(f.x.data(), f.rows), f.pvalue));
    CHECK(f.is_drift(model.drift(f.x), false));
    CHECK(f.is_drift(model.drift(f.x.data(), f.rows / 2), true));
    const ddaebm::Screening s = model.screen(f.x);
    CHECK(bits_equal(s.is_ood, f.is_ood));
    CHECK(bits_equal(model.sample(f.sample_rows, f.sample_seed), f.sample));
    CHECK_ERROR(DDAEBM_ERR_SHAPE_MISMATCH, model.energy(std::vector<float>(f.dim + 1)));
    CHECK(!model.image_shape().has_value());
}

DDAEBM_TEST(cxx17_image_model) {
    const auto& f = fixture();
    const ddaebm::Model model = f.open_image();
    const auto shape = model.image_shape();
    CHECK(shape.has_value() && (*shape)[0] == f.image_channels &&
          (*shape)[1] == f.image_height && (*shape)[2] == f.image_width);
    CHECK(bits_equal(model.energy(f.image_x), f.image_energy));
}

}  // namespace

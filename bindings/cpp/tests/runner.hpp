// A tiny self-contained test runner plus the shared bindings fixture.
//
// DDAEBM_TEST(name) { ... } registers a test case; the test executable runs the one case named
// on its command line (ctest registers one test per case, see CMakeLists.txt) or, without
// arguments, every case. A case fails when CHECK fails or any exception escapes it.

#ifndef DDAEBM_CPP_TESTS_RUNNER_HPP
#define DDAEBM_CPP_TESTS_RUNNER_HPP

#include <ddaebm.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace test {

/// A failed CHECK: where and what.
struct Failure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Case {
    const char* name;
    void (*run)();
};

/// Every registered case, in registration order.
inline std::vector<Case>& registry() {
    static std::vector<Case> cases;
    return cases;
}

inline bool add(const char* name, void (*run)()) {
    registry().push_back({name, run});
    return true;
}

[[noreturn]] inline void fail(const char* file, int line, const std::string& what) {
    throw Failure(std::string(file) + ":" + std::to_string(line) + ": " + what);
}

/// Runs `f`, which must throw ddaebm::Error with `status` and a non-empty message; returns
/// the message.
template <class F>
std::string expect_error(ddaebm_status status, F&& f, const char* expr, const char* file,
                         int line) {
    try {
        std::forward<F>(f)();
    } catch (const ddaebm::Error& e) {
        if (e.status() != status) {
            fail(file, line,
                 std::string(expr) + " threw " + e.status_string() + " (" + e.what() +
                     "), expected " + ddaebm_status_string(status));
        }
        if (std::strlen(e.what()) == 0) {
            fail(file, line, std::string(expr) + " threw an Error with an empty message");
        }
        return e.what();
    }
    fail(file, line, std::string(expr) + " did not throw");
}

/// Same size and the same bytes (so NaN payloads and the sign of zero count too).
template <class T>
bool bits_equal(const std::vector<T>& a, const std::vector<T>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

/// Whether a drift() result has the {p_value, effect, z} at `want` (3 doubles) bit for bit and
/// the given row counts.
inline bool same_drift(const ddaebm::DriftResult& got, const double* want, std::uint64_t rows,
                       std::uint64_t calibration_rows) {
    const double have[3] = {got.p_value, got.effect, got.z};
    return std::memcmp(have, want, sizeof have) == 0 && got.batch_rows == rows &&
           got.calibration_rows == calibration_rows;
}

/// The shared bindings fixture in $DDAEBM_FIXTURE_DIR (see scripts/test-bindings.sh).
struct Fixture {
    std::string dir;
    std::size_t rows = 0;
    std::size_t dim = 0;
    std::size_t sample_rows = 0;
    std::uint64_t sample_seed = 0;
    std::size_t flagged = 0;
    float threshold = 0;
    std::uint64_t calibration_rows = 0;  // calibration energies stored in the model
    std::vector<float> x;  // rows × dim, row-major
    std::vector<float> energy;
    std::vector<float> pvalue;
    std::vector<float> explain;  // explain(): rows × dim attributions
    // drift.f64: drift()'s {p_value, effect, z} of all rows, then of the first rows / 2.
    std::vector<double> drift;
    std::vector<std::uint8_t> is_ood;
    std::vector<float> sample;  // sample(sample_rows, sample_seed)
    // The image model (image_model.safetensors) and its rows.
    std::size_t image_channels = 0;
    std::size_t image_height = 0;
    std::size_t image_width = 0;
    std::size_t image_rows = 0;
    std::vector<float> image_x;  // image_rows × C·H·W, each image channel-major
    std::vector<float> image_energy;
    // The GCD model (gcd_model.safetensors): its energies of x and its samples.
    std::vector<float> gcd_energy;
    std::vector<float> gcd_sample;
    // The DCD model (dcd_model.safetensors): its energies of x and its samples.
    std::vector<float> dcd_energy;
    std::vector<float> dcd_sample;

    /// Whether `got` is the fixture's drift() of all rows (`half` false) or of the first
    /// rows / 2 (`half` true), bit for bit.
    [[nodiscard]] bool is_drift(const ddaebm::DriftResult& got, bool half) const {
        return same_drift(got, drift.data() + (half ? 3 : 0), half ? rows / 2 : rows,
                          calibration_rows);
    }

    /// Full path of a file in the fixture directory.
    [[nodiscard]] std::string path(const std::string& name) const { return dir + "/" + name; }

    /// model.safetensors opened with default options.
    [[nodiscard]] ddaebm::Model open() const {
        return ddaebm::Model::open(path("model.safetensors"));
    }

    /// image_model.safetensors opened with default options.
    [[nodiscard]] ddaebm::Model open_image() const {
        return ddaebm::Model::open(path("image_model.safetensors"));
    }
};

/// The fixture, loaded on first use (thread-safe).
const Fixture& fixture();

}  // namespace test

#define DDAEBM_TEST(name)                                                          \
    static void name();                                                            \
    [[maybe_unused]] static const bool name##_registered = test::add(#name, name); \
    static void name()

#define CHECK(cond)                                                             \
    do {                                                                        \
        if (!(cond)) test::fail(__FILE__, __LINE__, "CHECK(" #cond ") failed"); \
    } while (false)

/// Evaluates `expr`, which must throw ddaebm::Error with `status`; yields the message.
#define CHECK_ERROR(status, expr) \
    test::expect_error(status, [&] { (void)(expr); }, #expr, __FILE__, __LINE__)

#endif  // DDAEBM_CPP_TESTS_RUNNER_HPP

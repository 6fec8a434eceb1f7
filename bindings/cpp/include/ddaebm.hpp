/// \file ddaebm.hpp
/// \brief Header-only C++ wrapper around the ddaebm C API (`ddaebm.h`).
///
/// Open a model with ddaebm::Model::open(), score rows with energy(), screen() or pvalues(),
/// attribute each row's energy to its features with explain(),
/// test a whole batch for drift with drift(), draw rows with sample(). Every failure throws ddaebm::Error, which carries the C status
/// code and the library's message. Requires C++17; under C++20 the scoring and sampling
/// methods also take `std::span`.
///
/// Rows are `float`s, row-major, `input_dim()` per row. An image model (image_shape() set)
/// takes each image as one row of `C·H·W` floats, channel-major (the layout of a C-ordered
/// `(N, C, H, W)` array), in the raw pixel scale it was trained on. Every input is borrowed for the
/// duration of the call only; every result is a fresh `std::vector` owned by the caller, or is
/// written into caller-provided storage.
///
/// Thread safety: a Model is immutable after opening. Its const methods may be called from any
/// number of threads at once on one shared Model; only moving, assigning or destroying it needs
/// exclusive access.

#ifndef DDAEBM_HPP
#define DDAEBM_HPP

#include <ddaebm.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

// std::span overloads under C++20 (MSVC reports its language version in _MSVC_LANG).
#if __cplusplus >= 202002L || (defined(_MSVC_LANG) && _MSVC_LANG >= 202002L)
#define DDAEBM_HPP_SPAN 1
#include <span>
#endif

namespace ddaebm {

/// A failed ddaebm call: the C status code plus the library's message (`what()`).
///
/// The message is copied from `ddaebm_last_error()` on the failing thread as the error is
/// built, so an Error stays valid wherever it is caught. The wrapper's own argument checks
/// throw it too, with the status the C library would use for the same fault.
class Error : public std::runtime_error {
public:
    /// An error with the given status and message.
    Error(ddaebm_status status, const std::string& message)
        : std::runtime_error(message), status_(status) {}

    /// The status code, never `DDAEBM_OK`.
    [[nodiscard]] ddaebm_status status() const noexcept { return status_; }

    /// Name and short meaning of the status, e.g. `"DDAEBM_ERR_IO: I/O error"` (static string).
    [[nodiscard]] const char* status_string() const noexcept {
        return ddaebm_status_string(status_);
    }

private:
    ddaebm_status status_;
};

/// Does nothing for `DDAEBM_OK`; otherwise throws an Error with `status` and a copy of
/// `ddaebm_last_error()`. Use it when calling the C API directly, e.g. through Model::capi().
inline void check(ddaebm_status status) {
    if (status != DDAEBM_OK) {
        throw Error(status, ddaebm_last_error());
    }
}

/// Version of the loaded library, e.g. `"0.1.0"`. Safe from any thread.
[[nodiscard]] inline std::string version() { return ddaebm_version(); }

/// True when the loaded library is the version this header was written for
/// (`DDAEBM_VERSION_NUMBER == ddaebm_version_number()`). There is no ABI stability across
/// versions yet, so check this once at startup. Safe from any thread.
[[nodiscard]] inline bool version_matches() noexcept {
    return ddaebm_version_number() == DDAEBM_VERSION_NUMBER;
}

/// How to open a model (mirrors `ddaebm_open_options`).
struct OpenOptions {
    /// `"cpu"`, `"cuda"` (= `"cuda:0"`) or `"cuda:N"`.
    std::string device = "cpu";
    /// Worker threads for this model's CPU compute: 0 shares the process-wide pool (one worker
    /// per core, or `RAYON_NUM_THREADS`); N > 0 gives the model a pool of its own.
    std::uint32_t threads = 0;
};

/// Result of Model::screen(): one entry per row.
struct Screening {
    /// Energy of each row; higher means more out-of-distribution.
    std::vector<float> energy;
    /// 1 where the row is out-of-distribution (energy above Model::threshold()), else 0.
    std::vector<std::uint8_t> is_ood;
};

/// Result of Model::drift() (mirrors `ddaebm_drift_result`): the one-sided rank-sum test of a
/// batch's energies against the model's held-out in-distribution energies.
struct DriftResult {
    /// One-sided p-value: small when the batch's energies are higher than the calibration
    /// energies. For in-distribution batches `P(p <= alpha) ~ alpha`.
    double p_value = 0;
    /// The probability that a batch row's energy exceeds a calibration row's (ties count
    /// half): 0.5 for in-distribution batches, towards 1 for out-of-distribution ones.
    double effect = 0;
    /// The standardised rank-sum statistic (positive: batch energies higher).
    double z = 0;
    /// Rows in the batch.
    std::uint64_t batch_rows = 0;
    /// Rows in the model's calibration set.
    std::uint64_t calibration_rows = 0;
};

/// An opened detector; owns a `ddaebm_model*` and frees it on destruction.
///
/// Move-only. A default-constructed or moved-from Model is empty: `operator bool` is false and
/// every other method except capi() throws Error with `DDAEBM_ERR_NULL_ARGUMENT`.
///
/// Thread safety: all const methods may run concurrently on one Model from any number of
/// threads (share it by const reference or `std::shared_ptr<const Model>`).
class Model {
public:
    /// An empty model; assign the result of open() to it.
    Model() noexcept = default;

    /// Takes over `other`'s model, leaving `other` empty.
    Model(Model&& other) noexcept = default;

    /// Frees this model, then takes over `other`'s, leaving `other` empty.
    Model& operator=(Model&& other) noexcept = default;

    /// Opens a model file (memory-mapped) on the device `options` names.
    ///
    /// Throws Error: `DDAEBM_ERR_IO` (missing or unreadable file), `DDAEBM_ERR_BAD_MODEL`
    /// (not a ddaebm model, truncated, damaged), `DDAEBM_ERR_UNSUPPORTED_VERSION` (newer
    /// format), `DDAEBM_ERR_INVALID_ARGUMENT` (unknown device name),
    /// `DDAEBM_ERR_DEVICE_UNAVAILABLE` (CUDA asked for but not usable), ...
    [[nodiscard]] static Model open(const std::string& path, const OpenOptions& options = {}) {
        ddaebm_open_options opts = ddaebm_open_options_default();
        opts.device = options.device.c_str();
        opts.threads = options.threads;
        ddaebm_model* raw = nullptr;
        check(ddaebm_model_open(path.c_str(), &opts, &raw));
        return Model(raw);
    }

    /// False when the model is empty (default-constructed or moved-from).
    explicit operator bool() const noexcept { return handle_ != nullptr; }

    /// The C handle, for calling the C API directly; NULL when empty. Still owned by this
    /// Model: do not free it, and do not use it after the Model is destroyed or moved from.
    [[nodiscard]] const ddaebm_model* capi() const noexcept { return handle_.get(); }

    /// Features per row the model expects.
    [[nodiscard]] std::size_t input_dim() const { return ddaebm_model_input_dim(get()); }

    /// `{channels, height, width}` of an image model, whose rows are `channels * height *
    /// width` floats (= input_dim()), channel by channel, each channel row by row (the layout
    /// of a C-ordered `(N, C, H, W)` array), in the raw pixel scale; `std::nullopt` for a
    /// model of plain feature vectors.
    [[nodiscard]] std::optional<std::array<std::size_t, 3>> image_shape() const {
        std::array<std::size_t, 3> shape{};
        check(ddaebm_model_image_shape(get(), &shape[0], &shape[1], &shape[2]));
        if (shape[0] == 0) {
            return std::nullopt;
        }
        return shape;
    }

    /// Calibrated energy threshold: rows with energy above it are out-of-distribution.
    [[nodiscard]] float threshold() const { return ddaebm_model_threshold(get()); }

    /// The model's metadata (network, schedule, normalisation, calibration, training) as JSON.
    [[nodiscard]] std::string metadata() const { return ddaebm_model_metadata(get()); }

    /// Energy `E(x) = -f(x, 0)` of each of `n_rows` rows at `x` (`n_rows * input_dim()`
    /// floats); higher means more out-of-distribution. Throws Error: `DDAEBM_ERR_NON_FINITE`
    /// (NaN or Inf in `x`), ...
    [[nodiscard]] std::vector<float> energy(const float* x, std::size_t n_rows) const {
        std::vector<float> out(n_rows);
        energy(x, n_rows, out.data());
        return out;
    }

    /// energy() of the rows in `x`, whose size must be a multiple of input_dim()
    /// (else Error with `DDAEBM_ERR_SHAPE_MISMATCH`).
    [[nodiscard]] std::vector<float> energy(const std::vector<float>& x) const {
        return energy(x.data(), rows_in(x.size()));
    }

    /// energy() written into `out`, which must hold `n_rows` floats; no allocation.
    void energy(const float* x, std::size_t n_rows, float* out) const {
        check(ddaebm_energy(get(), x, n_rows, input_dim(), out));
    }

    /// Energy of each row plus the out-of-distribution decision against threshold().
    /// Errors as for energy().
    [[nodiscard]] Screening screen(const float* x, std::size_t n_rows) const {
        Screening result{std::vector<float>(n_rows), std::vector<std::uint8_t>(n_rows)};
        screen(x, n_rows, result.energy.data(), result.is_ood.data());
        return result;
    }

    /// screen() of the rows in `x`, whose size must be a multiple of input_dim().
    [[nodiscard]] Screening screen(const std::vector<float>& x) const {
        return screen(x.data(), rows_in(x.size()));
    }

    /// screen() written into `out_energy` (`n_rows` floats) and `out_is_ood` (`n_rows` bytes,
    /// 0 or 1); either may be NULL when not wanted. No allocation.
    void screen(const float* x, std::size_t n_rows, float* out_energy,
                std::uint8_t* out_is_ood) const {
        check(ddaebm_screen(get(), x, n_rows, input_dim(), out_energy, out_is_ood));
    }

    /// Conformal p-value of each row against the model's held-out in-distribution energies;
    /// small means unusual. Errors as for energy().
    [[nodiscard]] std::vector<float> pvalues(const float* x, std::size_t n_rows) const {
        std::vector<float> out(n_rows);
        pvalues(x, n_rows, out.data());
        return out;
    }

    /// pvalues() of the rows in `x`, whose size must be a multiple of input_dim().
    [[nodiscard]] std::vector<float> pvalues(const std::vector<float>& x) const {
        return pvalues(x.data(), rows_in(x.size()));
    }

    /// pvalues() written into `out`, which must hold `n_rows` floats; no allocation.
    void pvalues(const float* x, std::size_t n_rows, float* out) const {
        check(ddaebm_pvalues(get(), x, n_rows, input_dim(), out));
    }

    /// Per-feature attributions of each row's energy (integrated gradients from the training
    /// mean; `n_rows * input_dim()` floats, row-major, raw feature units): entry `j` of a row
    /// is how much feature `j` raised that row's energy. Errors as for energy().
    [[nodiscard]] std::vector<float> explain(const float* x, std::size_t n_rows) const {
        std::vector<float> out(n_rows * input_dim());
        explain(x, n_rows, out.data());
        return out;
    }

    /// explain() of the rows in `x`, whose size must be a multiple of input_dim().
    [[nodiscard]] std::vector<float> explain(const std::vector<float>& x) const {
        return explain(x.data(), rows_in(x.size()));
    }

    /// explain() written into `out`, which must hold `n_rows * input_dim()` floats; no
    /// allocation.
    void explain(const float* x, std::size_t n_rows, float* out) const {
        check(ddaebm_explain(get(), x, n_rows, input_dim(), out));
    }

    /// Whether the batch of `n_rows` rows at `x` (`n_rows * input_dim()` floats) as a whole
    /// comes from the in-distribution data the model was calibrated on: a one-sided rank-sum
    /// test of its energies against the calibration energies stored in the model (small
    /// p-value = drift towards out-of-distribution). Throws Error: `DDAEBM_ERR_INVALID_ARGUMENT`
    /// (`n_rows` 0), otherwise as for energy().
    [[nodiscard]] DriftResult drift(const float* x, std::size_t n_rows) const {
        ddaebm_drift_result r{};
        check(ddaebm_drift(get(), x, n_rows, input_dim(), &r));
        return DriftResult{r.p_value, r.effect, r.z, r.batch_rows, r.calibration_rows};
    }

    /// drift() of the rows in `x`, whose size must be a non-zero multiple of input_dim().
    [[nodiscard]] DriftResult drift(const std::vector<float>& x) const {
        return drift(x.data(), rows_in(x.size()));
    }

    /// `n_rows` rows generated from the model (`n_rows * input_dim()` floats, row-major, raw
    /// feature scale). The same seed gives the same rows on any thread.
    [[nodiscard]] std::vector<float> sample(std::size_t n_rows, std::uint64_t seed) const {
        const std::size_t dim = input_dim();
        if (dim != 0 && n_rows > std::numeric_limits<std::size_t>::max() / dim) {
            throw Error(DDAEBM_ERR_INVALID_ARGUMENT,
                        "ddaebm::Model::sample: " + std::to_string(n_rows) + " rows of " +
                            std::to_string(dim) + " features overflow size_t");
        }
        std::vector<float> out(n_rows * dim);
        sample(n_rows, seed, out.data(), out.size());
        return out;
    }

    /// sample() written into `out`, which has room for `out_len` floats (at least
    /// `n_rows * input_dim()`, else Error with `DDAEBM_ERR_SHAPE_MISMATCH`); no allocation.
    void sample(std::size_t n_rows, std::uint64_t seed, float* out, std::size_t out_len) const {
        check(ddaebm_sample(get(), n_rows, seed, out, out_len));
    }

#ifdef DDAEBM_HPP_SPAN
    /// energy() of the rows in `x`, whose size must be a multiple of input_dim().
    [[nodiscard]] std::vector<float> energy(std::span<const float> x) const {
        return energy(x.data(), rows_in(x.size()));
    }

    /// energy() of the rows in `x` written into `out`, which must hold one float per row.
    void energy(std::span<const float> x, std::span<float> out) const {
        const std::size_t n_rows = rows_in(x.size());
        require_len("energy", out.size(), n_rows);
        energy(x.data(), n_rows, out.data());
    }

    /// screen() of the rows in `x`, whose size must be a multiple of input_dim().
    [[nodiscard]] Screening screen(std::span<const float> x) const {
        return screen(x.data(), rows_in(x.size()));
    }

    /// screen() of the rows in `x` written into `out_energy` and `out_is_ood`, which must
    /// each hold one entry per row (use the pointer overload to skip one of them).
    void screen(std::span<const float> x, std::span<float> out_energy,
                std::span<std::uint8_t> out_is_ood) const {
        const std::size_t n_rows = rows_in(x.size());
        require_len("screen", out_energy.size(), n_rows);
        require_len("screen", out_is_ood.size(), n_rows);
        screen(x.data(), n_rows, out_energy.data(), out_is_ood.data());
    }

    /// pvalues() of the rows in `x`, whose size must be a multiple of input_dim().
    [[nodiscard]] std::vector<float> pvalues(std::span<const float> x) const {
        return pvalues(x.data(), rows_in(x.size()));
    }

    /// pvalues() of the rows in `x` written into `out`, which must hold one float per row.
    void pvalues(std::span<const float> x, std::span<float> out) const {
        const std::size_t n_rows = rows_in(x.size());
        require_len("pvalues", out.size(), n_rows);
        pvalues(x.data(), n_rows, out.data());
    }

    /// explain() of the rows in `x`, whose size must be a multiple of input_dim().
    [[nodiscard]] std::vector<float> explain(std::span<const float> x) const {
        return explain(x.data(), rows_in(x.size()));
    }

    /// explain() of the rows in `x` written into `out`, which must be as long as `x`.
    void explain(std::span<const float> x, std::span<float> out) const {
        const std::size_t n_rows = rows_in(x.size());
        if (out.size() != x.size()) {
            throw Error(DDAEBM_ERR_SHAPE_MISMATCH,
                        "ddaebm::Model::explain: output holds " + std::to_string(out.size()) +
                            " entries for " + std::to_string(x.size()) + " input floats");
        }
        explain(x.data(), n_rows, out.data());
    }

    /// drift() of the rows in `x`, whose size must be a non-zero multiple of input_dim().
    [[nodiscard]] DriftResult drift(std::span<const float> x) const {
        return drift(x.data(), rows_in(x.size()));
    }

    /// sample() written into `out`, which needs room for at least `n_rows * input_dim()`
    /// floats; exactly that many are written.
    void sample(std::size_t n_rows, std::uint64_t seed, std::span<float> out) const {
        sample(n_rows, seed, out.data(), out.size());
    }
#endif

private:
    struct Deleter {
        void operator()(ddaebm_model* m) const noexcept { ddaebm_model_free(m); }
    };

    explicit Model(ddaebm_model* raw) noexcept : handle_(raw) {}

    /// The handle, or Error when the model is empty.
    const ddaebm_model* get() const {
        if (!handle_) {
            throw Error(DDAEBM_ERR_NULL_ARGUMENT,
                        "ddaebm::Model is empty (default-constructed or moved-from)");
        }
        return handle_.get();
    }

    /// Number of rows in `len` floats, or Error when `len` is not a whole number of rows.
    std::size_t rows_in(std::size_t len) const {
        const std::size_t dim = input_dim();
        if (dim == 0 || len % dim != 0) {
            throw Error(DDAEBM_ERR_SHAPE_MISMATCH,
                        "ddaebm::Model: " + std::to_string(len) +
                            " floats are not a whole number of rows of " + std::to_string(dim) +
                            " features");
        }
        return len / dim;
    }

#ifdef DDAEBM_HPP_SPAN
    /// Error unless an output span of `len` entries fits `n_rows` rows exactly.
    static void require_len(const char* method, std::size_t len, std::size_t n_rows) {
        if (len != n_rows) {
            throw Error(DDAEBM_ERR_SHAPE_MISMATCH,
                        std::string("ddaebm::Model::") + method + ": output holds " +
                            std::to_string(len) + " entries for " + std::to_string(n_rows) +
                            " rows");
        }
    }
#endif

    std::unique_ptr<ddaebm_model, Deleter> handle_;
};

}  // namespace ddaebm

#endif  // DDAEBM_HPP

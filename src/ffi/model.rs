//! The model handle: open options, open/free, getters, and the scoring and sampling calls.

use std::ffi::{c_char, CString};

use super::args::{check_output, input_slice, path_arg, utf8_arg, write_output};
use super::panic::{boundary, getter};
use super::status::{ddaebm_status, Failure};
use crate::device::parse_device;
use crate::model::Model;

use ddaebm_status::*;

/// Options for `ddaebm_model_open`. Get the defaults from `ddaebm_open_options_default()` and
/// change only the fields you need.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ddaebm_open_options {
    /// Device: `"cpu"`, `"cuda"` (= `"cuda:0"`) or `"cuda:N"` (case-insensitive, surrounding
    /// spaces ignored). NULL means `"cpu"`. Borrowed for the duration of the call only.
    /// Default: `"cpu"`.
    pub device: *const c_char,
    /// Worker threads for this model's CPU compute. `0` (the default) shares the process-wide
    /// pool, one worker per core (or `RAYON_NUM_THREADS`); `N > 0` gives the model a pool of its
    /// own with `N` workers (at most 1024), shared by every thread that calls into it.
    pub threads: u32,
}

/// An opened detector.
///
/// Created by `ddaebm_model_open`, released by `ddaebm_model_free`. Immutable after opening:
/// every call takes a `const ddaebm_model *`, and any number of threads may score and sample
/// with one model at the same time.
pub struct ddaebm_model {
    model: Model,
    metadata_json: CString,
}

// A model handle is shared between host threads; keep that a compile-time fact.
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<ddaebm_model>();
};

const CPU: &[u8] = b"cpu\0";

/// The default open options: device `"cpu"`, `threads` 0 (the process-wide pool).
///
/// Returned by value; the `device` string is static. Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn ddaebm_open_options_default() -> ddaebm_open_options {
    ddaebm_open_options {
        device: CPU.as_ptr().cast(),
        threads: 0,
    }
}

/// Opens a model file (memory-mapped) on the device the options name.
///
/// - `path`: NUL-terminated file name; borrowed for the call only.
/// - `opts`: may be NULL for the defaults (`ddaebm_open_options_default()`); borrowed.
/// - `out`: receives the new model on success and is left untouched on failure.
///
/// Ownership: the caller owns the returned model and releases it with `ddaebm_model_free`.
/// Thread safety: any number of models may be opened concurrently.
///
/// Returns `DDAEBM_OK`; `DDAEBM_ERR_NULL_ARGUMENT` (`path` or `out` NULL);
/// `DDAEBM_ERR_INVALID_ARGUMENT` (unknown device name, `threads` above 1024, thread pool cannot
/// start);
/// `DDAEBM_ERR_IO` (file missing or unreadable); `DDAEBM_ERR_BAD_MODEL` (not a ddaebm model,
/// truncated, damaged); `DDAEBM_ERR_UNSUPPORTED_VERSION` (written by a newer format);
/// `DDAEBM_ERR_DEVICE_UNAVAILABLE` (CUDA asked for but not usable); `DDAEBM_ERR_INTERNAL`;
/// `DDAEBM_ERR_PANIC`.
///
/// # Safety
/// `path` and `opts->device` are NULL or NUL-terminated strings; `opts` is NULL or points to a
/// `ddaebm_open_options`; `out` is NULL or points to writable storage for one pointer.
#[no_mangle]
pub unsafe extern "C" fn ddaebm_model_open(
    path: *const c_char,
    opts: *const ddaebm_open_options,
    out: *mut *mut ddaebm_model,
) -> ddaebm_status {
    const F: &str = "ddaebm_model_open";
    boundary(F, || {
        let path = path_arg(path)?;
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        let opts = if opts.is_null() {
            ddaebm_open_options_default()
        } else {
            *opts
        };
        let device_name = if opts.device.is_null() {
            "cpu"
        } else {
            utf8_arg(opts.device, "opts->device")?
        };
        let device = parse_device(device_name)?;
        let model = Model::open(&path, &device)?.with_threads(opts.threads as usize)?;
        let metadata_json = CString::new(model.metadata_json()).map_err(|_| {
            Failure::new(
                DDAEBM_ERR_BAD_MODEL,
                format!("{F}: metadata contains a NUL"),
            )
        })?;
        *out = Box::into_raw(Box::new(ddaebm_model {
            model,
            metadata_json,
        }));
        Ok(())
    })
}

/// Releases a model opened by `ddaebm_model_open`. NULL is a no-op.
///
/// Ownership: takes the model back; it must not be used or freed again afterwards, and no other
/// thread may still be using it. Returns nothing.
///
/// # Safety
/// `m` is NULL or a model returned by `ddaebm_model_open` and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn ddaebm_model_free(m: *mut ddaebm_model) {
    if !m.is_null() {
        getter((), || drop(Box::from_raw(m)));
    }
}

/// The number of features per row the model expects (`row_len` of every scoring call), or 0
/// when `m` is NULL. Thread safety: safe to call concurrently.
///
/// # Safety
/// `m` is NULL or a live model.
#[no_mangle]
pub unsafe extern "C" fn ddaebm_model_input_dim(m: *const ddaebm_model) -> usize {
    match m.as_ref() {
        Some(m) => getter(0, || m.model.input_dim()),
        None => 0,
    }
}

/// The image shape of an image model: rows are `channels × height × width` values, channel by
/// channel, each channel row by row (the layout of a C-ordered `(N, C, H, W)` array), in the
/// raw pixel scale the model was trained on (the metadata's `network.image.pixel_range`). A
/// vector-data model writes 0 to all three.
///
/// Returns `DDAEBM_OK`; `DDAEBM_ERR_NULL_ARGUMENT` (`m` or an output NULL; nothing written);
/// `DDAEBM_ERR_PANIC`. Thread safety: safe to call concurrently.
///
/// # Safety
/// `m` is NULL or a live model; each output is NULL or points to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn ddaebm_model_image_shape(
    m: *const ddaebm_model,
    channels: *mut usize,
    height: *mut usize,
    width: *mut usize,
) -> ddaebm_status {
    boundary("ddaebm_model_image_shape", || {
        let m = m.as_ref().ok_or_else(|| Failure::null("m"))?;
        for (p, name) in [(channels, "channels"), (height, "height"), (width, "width")] {
            if p.is_null() {
                return Err(Failure::null(name));
            }
        }
        let (c, h, w) = match &m.model.metadata().network.image {
            Some(i) => (i.channels, i.height, i.width),
            None => (0, 0, 0),
        };
        (*channels, *height, *width) = (c, h, w);
        Ok(())
    })
}

/// The calibrated energy threshold: rows with energy above it are flagged out-of-distribution.
/// NaN when `m` is NULL. Thread safety: safe to call concurrently.
///
/// # Safety
/// `m` is NULL or a live model.
#[no_mangle]
pub unsafe extern "C" fn ddaebm_model_threshold(m: *const ddaebm_model) -> f32 {
    match m.as_ref() {
        Some(m) => getter(f32::NAN, || m.model.threshold()),
        None => f32::NAN,
    }
}

/// The model's metadata (network, schedule, normalisation, calibration, training) as a
/// NUL-terminated JSON document, or NULL when `m` is NULL.
///
/// Ownership: the string belongs to the model and lives until `ddaebm_model_free`.
/// Thread safety: safe to call concurrently.
///
/// # Safety
/// `m` is NULL or a live model.
#[no_mangle]
pub unsafe extern "C" fn ddaebm_model_metadata(m: *const ddaebm_model) -> *const c_char {
    match m.as_ref() {
        Some(m) => m.metadata_json.as_ptr(),
        None => std::ptr::null(),
    }
}

/// Borrows the model and the `n_rows × row_len` input of a scoring call after checking them.
///
/// # Safety
/// `m` is NULL or a live model; `x` is NULL or points to `n_rows * row_len` readable floats.
unsafe fn scoring_args<'a>(
    m: *const ddaebm_model,
    x: *const f32,
    n_rows: usize,
    row_len: usize,
) -> Result<(&'a Model, &'a [f32]), Failure> {
    let m = m.as_ref().ok_or_else(|| Failure::null("m"))?;
    let d = m.model.input_dim();
    if row_len != d {
        return Err(Failure::new(
            DDAEBM_ERR_SHAPE_MISMATCH,
            format!("row_len is {row_len} but the model expects {d} features per row"),
        ));
    }
    let len = n_rows
        .checked_mul(row_len)
        .filter(|&n| n <= isize::MAX as usize / std::mem::size_of::<f32>())
        .ok_or_else(|| {
            Failure::invalid(format!("{n_rows} rows × {row_len} features is too large"))
        })?;
    Ok((&m.model, input_slice("x", x, len)?))
}

/// The body of a call that maps each input row to one float: checks the model, input and
/// output, scores, and writes the output only on success.
///
/// # Safety
/// As for `ddaebm_energy`.
unsafe fn score_into(
    function: &str,
    (m, x, n_rows, row_len): (*const ddaebm_model, *const f32, usize, usize),
    (out_name, out): (&str, *mut f32),
    score: impl FnOnce(&Model, &[f32], usize) -> crate::Result<Vec<f32>>,
) -> ddaebm_status {
    boundary(function, || {
        let (model, x) = scoring_args(m, x, n_rows, row_len)?;
        check_output(out_name, out, n_rows)?;
        let values = score(model, x, n_rows)?;
        write_output(out, &values);
        Ok(())
    })
}

/// Energy of each row: `E(x) = −f(x, 0)`, higher = more out-of-distribution.
///
/// - `x`: `n_rows × row_len` floats, row-major; borrowed for the call only. May be NULL when
///   `n_rows` is 0.
/// - `row_len`: must equal `ddaebm_model_input_dim(m)`.
/// - `out_energy`: `n_rows` floats, written only on success. May be NULL when `n_rows` is 0.
///
/// Numeric input: NaN or ±Inf anywhere in `x` fails with `DDAEBM_ERR_NON_FINITE`. Every finite
/// row, however extreme, gets a number or `+INFINITY`, never NaN or `-INFINITY`: zero rows and
/// subnormal values are ordinary input; huge magnitudes (up to `±FLT_MAX`) that overflow in
/// the normalisation, the base measure or the network give `+INFINITY` (the row cannot be
/// scored in floating point, so it counts as out-of-distribution with the smallest p-value).
/// With the trainer's default energy (Gaussian base measure) the energy grows with the
/// distance from the data and reaches `+INFINITY` far out; a model without a base measure may
/// give a large finite energy of either sign there. `n_rows` = 0 succeeds and writes nothing.
///
/// Thread safety: any number of threads may call this on one model at once.
///
/// Returns `DDAEBM_OK`; `DDAEBM_ERR_NULL_ARGUMENT` (`m` NULL, or `x` or `out_energy` NULL with
/// `n_rows` > 0); `DDAEBM_ERR_SHAPE_MISMATCH` (wrong `row_len`, checked before anything else
/// but `m`); `DDAEBM_ERR_NON_FINITE` (NaN or Inf in `x`; the message names the first such row
/// and column, counted from 0); `DDAEBM_ERR_INVALID_ARGUMENT` (misaligned buffers, sizes that
/// overflow); `DDAEBM_ERR_INTERNAL`; `DDAEBM_ERR_PANIC`. Messages start with the function's
/// name.
///
/// # Safety
/// `m` is NULL or a live model; `x` is NULL or points to `n_rows * row_len` readable floats;
/// `out_energy` is NULL or points to `n_rows` writable floats.
#[no_mangle]
pub unsafe extern "C" fn ddaebm_energy(
    m: *const ddaebm_model,
    x: *const f32,
    n_rows: usize,
    row_len: usize,
    out_energy: *mut f32,
) -> ddaebm_status {
    score_into(
        "ddaebm_energy",
        (m, x, n_rows, row_len),
        ("out_energy", out_energy),
        Model::energy,
    )
}

/// Energy of each row plus the in/out decision against the calibrated threshold
/// (`1` = out-of-distribution: energy above `ddaebm_model_threshold(m)`).
///
/// Arguments as for `ddaebm_energy`; either output may be NULL when it is not wanted.
/// `out_energy` receives `n_rows` floats and `out_is_ood` `n_rows` bytes (0 or 1), written only
/// on success. Numeric input as for `ddaebm_energy`: a row whose energy is `+INFINITY` is
/// flagged (1).
///
/// Thread safety: any number of threads may call this on one model at once.
///
/// Returns the same codes as `ddaebm_energy`, except that NULL outputs are allowed.
///
/// # Safety
/// As for `ddaebm_energy`; `out_is_ood` is NULL or points to `n_rows` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn ddaebm_screen(
    m: *const ddaebm_model,
    x: *const f32,
    n_rows: usize,
    row_len: usize,
    out_energy: *mut f32,
    out_is_ood: *mut u8,
) -> ddaebm_status {
    const F: &str = "ddaebm_screen";
    boundary(F, || {
        let (model, x) = scoring_args(m, x, n_rows, row_len)?;
        check_output("out_energy", out_energy, 0)?;
        let screening = model.screen(x, n_rows)?;
        if !out_energy.is_null() {
            write_output(out_energy, &screening.energy);
        }
        if !out_is_ood.is_null() {
            let flags: Vec<u8> = screening.is_ood.iter().map(|&b| u8::from(b)).collect();
            write_output(out_is_ood, &flags);
        }
        Ok(())
    })
}

/// Conformal p-value of each row against the held-out in-distribution energies stored in the
/// model: `(1 + #{calibration energies ≥ E(x)}) / (n + 1)`. Small = unusual; for
/// in-distribution rows `P(p ≤ α) ≤ α`.
///
/// Arguments and codes as for `ddaebm_energy`, with `out_pvalue` (`n_rows` floats, written
/// only on success) in place of `out_energy`. Numeric input as for `ddaebm_energy`: a row whose
/// energy is `+INFINITY` gets the smallest p-value, `1 / (n + 1)`.
///
/// Thread safety: any number of threads may call this on one model at once.
///
/// # Safety
/// As for `ddaebm_energy`.
#[no_mangle]
pub unsafe extern "C" fn ddaebm_pvalues(
    m: *const ddaebm_model,
    x: *const f32,
    n_rows: usize,
    row_len: usize,
    out_pvalue: *mut f32,
) -> ddaebm_status {
    score_into(
        "ddaebm_pvalues",
        (m, x, n_rows, row_len),
        ("out_pvalue", out_pvalue),
        Model::pvalues,
    )
}

/// Per-feature attribution of each row's energy by integrated gradients from the training rows'
/// mean (256 midpoints; `docs/method.md#explanations`): `out_attribution[r * row_len + i]` is
/// feature i's share of `E(row r) − E(mean)`, in energy units; the shares of a row sum to that
/// difference up to the integration error. The largest positive share is the feature that
/// raised the row's energy most.
///
/// Arguments as for `ddaebm_energy`, with `out_attribution` (`n_rows × row_len` floats,
/// written only on success) in place of `out_energy`. About 256 gradient evaluations per row.
///
/// Thread safety: any number of threads may call this on one model at once.
///
/// Returns the codes of `ddaebm_energy`.
///
/// # Safety
/// As for `ddaebm_energy`; `out_attribution` is NULL or points to `n_rows * row_len` writable
/// floats.
#[no_mangle]
pub unsafe extern "C" fn ddaebm_explain(
    m: *const ddaebm_model,
    x: *const f32,
    n_rows: usize,
    row_len: usize,
    out_attribution: *mut f32,
) -> ddaebm_status {
    boundary("ddaebm_explain", || {
        let (model, x) = scoring_args(m, x, n_rows, row_len)?;
        check_output("out_attribution", out_attribution, n_rows * row_len)?;
        let values = model.explain(x, n_rows)?;
        write_output(out_attribution, &values);
        Ok(())
    })
}

/// The outcome of `ddaebm_drift`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ddaebm_drift_result {
    /// One-sided p-value of the rank-sum test: small when the batch's energies are higher than
    /// the held-out in-distribution energies stored in the model. For in-distribution batches
    /// `P(p ≤ α) ≈ α`.
    pub p_value: f64,
    /// The probability that a batch row's energy exceeds a calibration row's (ties count half):
    /// 0.5 for in-distribution batches, towards 1 for out-of-distribution ones.
    pub effect: f64,
    /// The standardised rank-sum statistic (positive: batch energies higher).
    pub z: f64,
    /// Rows in the batch and in the model's calibration set.
    pub batch_rows: u64,
    pub calibration_rows: u64,
}

/// Whether the batch as a whole comes from the in-distribution data the model was calibrated
/// on: a one-sided Wilcoxon–Mann–Whitney rank-sum test of the batch's energies against the
/// calibration energies stored in the model (normal approximation with tie and continuity
/// corrections; `docs/method.md#drift`).
///
/// Arguments as for `ddaebm_energy`, except that `n_rows` must be at least 1 and the result
/// goes to `*out` (written only on success). Numeric input as for `ddaebm_energy`: a row whose
/// energy is `+INFINITY` ranks above every calibration energy.
///
/// Thread safety: any number of threads may call this on one model at once.
///
/// Returns the codes of `ddaebm_energy`; `DDAEBM_ERR_NULL_ARGUMENT` also for `out` NULL, and
/// `DDAEBM_ERR_INVALID_ARGUMENT` for `n_rows` 0.
///
/// # Safety
/// As for `ddaebm_energy`; `out` is NULL or points to a writable `ddaebm_drift_result`.
#[no_mangle]
pub unsafe extern "C" fn ddaebm_drift(
    m: *const ddaebm_model,
    x: *const f32,
    n_rows: usize,
    row_len: usize,
    out: *mut ddaebm_drift_result,
) -> ddaebm_status {
    boundary("ddaebm_drift", || {
        let (model, x) = scoring_args(m, x, n_rows, row_len)?;
        check_output("out", out, 1)?;
        if n_rows == 0 {
            return Err(Failure::invalid("the drift test needs at least one row"));
        }
        let t = model.drift(x, n_rows)?;
        let result = ddaebm_drift_result {
            p_value: t.p_value,
            effect: t.effect,
            z: t.z,
            batch_rows: t.batch_rows as u64,
            calibration_rows: t.calibration_rows as u64,
        };
        write_output(out, &[result]);
        Ok(())
    })
}

/// Generates `n_rows` rows from the model with its T-step sampler (the generator of a DDAEBM
/// model, the Gaussian policy of a GCD model, annealed Langevin dynamics on the energy of a DCD
/// model), in the raw feature scale.
///
/// - `seed`: the same seed gives the same rows, on any thread.
/// - `out`: room for `out_len` floats; at least `n_rows × ddaebm_model_input_dim(m)` are needed
///   and exactly that many are written, row-major, only on success.
///
/// Thread safety: any number of threads may call this on one model at once.
///
/// Returns `DDAEBM_OK`; `DDAEBM_ERR_NULL_ARGUMENT` (`m` NULL, or `out` NULL with `n_rows` > 0);
/// `DDAEBM_ERR_SHAPE_MISMATCH` (`out_len` too small); `DDAEBM_ERR_INVALID_ARGUMENT`
/// (misaligned `out`, sizes that overflow or cannot be allocated); `DDAEBM_ERR_INTERNAL`;
/// `DDAEBM_ERR_PANIC`.
///
/// # Safety
/// `m` is NULL or a live model; `out` is NULL or points to `out_len` writable floats.
#[no_mangle]
pub unsafe extern "C" fn ddaebm_sample(
    m: *const ddaebm_model,
    n_rows: usize,
    seed: u64,
    out: *mut f32,
    out_len: usize,
) -> ddaebm_status {
    const F: &str = "ddaebm_sample";
    boundary(F, || {
        let m = m.as_ref().ok_or_else(|| Failure::null("m"))?;
        let d = m.model.input_dim();
        let needed = n_rows
            .checked_mul(d)
            .ok_or_else(|| Failure::invalid(format!("{n_rows} rows × {d} features overflows")))?;
        check_output("out", out, needed)?;
        if out_len < needed {
            return Err(Failure::new(
                DDAEBM_ERR_SHAPE_MISMATCH,
                format!("out_len is {out_len} but {n_rows} rows × {d} features need {needed}"),
            ));
        }
        let rows = m.model.sample(n_rows, seed)?;
        write_output(out, &rows);
        Ok(())
    })
}

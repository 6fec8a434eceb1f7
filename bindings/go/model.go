package ddaebm

/*
#include <stdlib.h>
#include <string.h>
#include "ddaebm.h"

// The library keeps the message of a failed call per OS thread, and a goroutine may move to
// another OS thread between two cgo calls, so reading ddaebm_last_error() in a second cgo call
// could return another goroutine's message (or none). Each wrapper below therefore makes the
// call and, on failure, copies the message in the same cgo call, on the same thread. The copy
// is malloc'ed only on failure; the Go side frees it. (runtime.LockOSThread around two calls
// would work too, but costs a lock on every successful call.)
static ddaebm_status keep_error(ddaebm_status status, char **message) {
	if (status != DDAEBM_OK) {
		*message = strdup(ddaebm_last_error());
	}
	return status;
}

static ddaebm_status go_model_open(const char *path, const ddaebm_open_options *opts,
                                   ddaebm_model **out, char **message) {
	return keep_error(ddaebm_model_open(path, opts, out), message);
}

static ddaebm_status go_image_shape(const ddaebm_model *m, size_t *channels, size_t *height,
                                    size_t *width, char **message) {
	return keep_error(ddaebm_model_image_shape(m, channels, height, width), message);
}

static ddaebm_status go_energy(const ddaebm_model *m, const float *x, size_t n_rows,
                               size_t row_len, float *out_energy, char **message) {
	return keep_error(ddaebm_energy(m, x, n_rows, row_len, out_energy), message);
}

static ddaebm_status go_screen(const ddaebm_model *m, const float *x, size_t n_rows,
                               size_t row_len, float *out_energy, uint8_t *out_is_ood,
                               char **message) {
	return keep_error(ddaebm_screen(m, x, n_rows, row_len, out_energy, out_is_ood), message);
}

static ddaebm_status go_pvalues(const ddaebm_model *m, const float *x, size_t n_rows,
                                size_t row_len, float *out_pvalue, char **message) {
	return keep_error(ddaebm_pvalues(m, x, n_rows, row_len, out_pvalue), message);
}

static ddaebm_status go_explain(const ddaebm_model *m, const float *x, size_t n_rows,
                                size_t row_len, float *out_attribution, char **message) {
	return keep_error(ddaebm_explain(m, x, n_rows, row_len, out_attribution), message);
}

static ddaebm_status go_drift(const ddaebm_model *m, const float *x, size_t n_rows,
                              size_t row_len, ddaebm_drift_result *out, char **message) {
	return keep_error(ddaebm_drift(m, x, n_rows, row_len, out), message);
}

static ddaebm_status go_sample(const ddaebm_model *m, size_t n_rows, uint64_t seed, float *out,
                               size_t out_len, char **message) {
	return keep_error(ddaebm_sample(m, n_rows, seed, out, out_len), message);
}
*/
import "C"

import (
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"strings"
	"sync"
	"unsafe"
)

// Options configure [Open]. The zero value runs on the CPU with the process-wide thread pool.
type Options struct {
	// Device is "cpu", "cuda" (= "cuda:0") or "cuda:N"; "" means "cpu".
	Device string
	// Threads is the number of worker threads for this model's CPU compute: 0 shares the
	// process-wide pool (one worker per core, or RAYON_NUM_THREADS); N > 0 gives the model a
	// pool of its own with N workers.
	Threads int
}

// Model is an opened detector. It is safe for concurrent use by multiple goroutines.
//
// A Model holds memory and a memory-mapped file outside the Go heap, which the garbage
// collector cannot see: call [Model.Close] when done. A finalizer closes a Model that becomes
// unreachable without having been closed, as a backstop only.
type Model struct {
	// mu is read-locked by every call into the library and write-locked by Close, so Close
	// waits for the calls in progress and later calls see ptr == nil.
	mu  sync.RWMutex
	ptr *C.ddaebm_model // nil once closed

	// Immutable properties, read once at Open.
	dim       int
	threshold float32
	metadata  string
	image     [3]int // channels, height, width; zero for a model of feature vectors
}

// Open opens a model file (memory-mapped) with the given options; nil opts means the defaults
// (see [Options]). Errors are *[Error] with StatusIO (missing or unreadable file),
// StatusBadModel, StatusUnsupportedVersion, StatusInvalidArgument (unknown device, negative
// Threads) or StatusDeviceUnavailable.
func Open(path string, opts *Options) (*Model, error) {
	if err := checkVersion(); err != nil {
		return nil, err
	}
	if strings.IndexByte(path, 0) >= 0 {
		return nil, invalidf("Open: path contains a NUL byte")
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))

	var copts *C.ddaebm_open_options
	if opts != nil {
		if opts.Threads < 0 || uint64(opts.Threads) > math.MaxUint32 {
			return nil, invalidf("Open: Threads is %d, want 0 to %d", opts.Threads, uint32(math.MaxUint32))
		}
		if strings.IndexByte(opts.Device, 0) >= 0 {
			return nil, invalidf("Open: Device contains a NUL byte")
		}
		o := C.ddaebm_open_options_default()
		o.threads = C.uint32_t(opts.Threads)
		if opts.Device != "" {
			device := C.CString(opts.Device)
			defer C.free(unsafe.Pointer(device))
			o.device = device
		}
		copts = &o
	}

	var ptr *C.ddaebm_model
	var message *C.char
	status := C.go_model_open(cpath, copts, &ptr, &message)
	if err := check(status, message); err != nil {
		return nil, err
	}
	var channels, height, width C.size_t
	status = C.go_image_shape(ptr, &channels, &height, &width, &message)
	if err := check(status, message); err != nil {
		C.ddaebm_model_free(ptr)
		return nil, err
	}
	m := &Model{
		ptr:       ptr,
		dim:       int(C.ddaebm_model_input_dim(ptr)),
		threshold: float32(C.ddaebm_model_threshold(ptr)),
		metadata:  C.GoString(C.ddaebm_model_metadata(ptr)),
		image:     [3]int{int(channels), int(height), int(width)},
	}
	runtime.SetFinalizer(m, (*Model).Close)
	return m, nil
}

// Close releases the model. It waits for the calls in progress on other goroutines to
// return; later calls return [ErrClosed]. Closing again is a no-op. The error is always nil
// (Close implements io.Closer).
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ptr != nil {
		C.ddaebm_model_free(m.ptr)
		m.ptr = nil
		runtime.SetFinalizer(m, nil)
	}
	return nil
}

// InputDim returns the number of features per row the model expects. It stays valid after
// Close.
func (m *Model) InputDim() int { return m.dim }

// ImageShape returns the shape of the images an image model scores, with ok true; ok is false
// (and the sizes 0) for a model of plain feature vectors. An image is passed as one row of
// channels × height × width values (= InputDim()), channel by channel and each channel row by
// row (the layout of a C-ordered (N, C, H, W) array), in the raw pixel scale the model was
// trained on. It stays valid after Close.
func (m *Model) ImageShape() (channels, height, width int, ok bool) {
	return m.image[0], m.image[1], m.image[2], m.image[0] != 0
}

// Threshold returns the calibrated energy threshold: rows with energy above it are
// out-of-distribution. It stays valid after Close.
func (m *Model) Threshold() float32 { return m.threshold }

// Metadata returns the model's metadata (network, schedule, normalisation, calibration,
// training) as a JSON document. It stays valid after Close.
func (m *Model) Metadata() string { return m.metadata }

// Energy returns the energy of each of the rows of x (rows × InputDim() values, row-major):
// higher means more out-of-distribution. Errors: StatusInvalidArgument (rows < 0),
// StatusShapeMismatch (wrong len(x)), StatusNonFinite (NaN or ±Inf in x; the message names
// the row and column), ErrClosed.
func (m *Model) Energy(x []float32, rows int) ([]float32, error) {
	if err := m.checkInput("Energy", x, rows); err != nil {
		return nil, err
	}
	energy := make([]float32, rows)
	err := m.call(func(p *C.ddaebm_model) error {
		var message *C.char
		status := C.go_energy(p, floats(x), C.size_t(rows), C.size_t(m.dim), floats(energy), &message)
		return check(status, message)
	})
	if err != nil {
		return nil, err
	}
	return energy, nil
}

// Screen returns the energy of each of the rows of x, as [Model.Energy] does, and whether
// each row is out-of-distribution (energy above [Model.Threshold]). Errors as for Energy.
func (m *Model) Screen(x []float32, rows int) (energy []float32, ood []bool, err error) {
	if err := m.checkInput("Screen", x, rows); err != nil {
		return nil, nil, err
	}
	energy = make([]float32, rows)
	flags := make([]uint8, rows)
	err = m.call(func(p *C.ddaebm_model) error {
		var message *C.char
		status := C.go_screen(p, floats(x), C.size_t(rows), C.size_t(m.dim), floats(energy),
			(*C.uint8_t)(unsafe.SliceData(flags)), &message)
		return check(status, message)
	})
	if err != nil {
		return nil, nil, err
	}
	// The library writes bytes 0 or 1; convert rather than rely on Go's bool layout.
	ood = make([]bool, len(flags))
	for i, f := range flags {
		ood[i] = f != 0
	}
	return energy, ood, nil
}

// PValues returns the conformal p-value of each of the rows of x against the in-distribution
// calibration energies stored in the model: small means unusual, and for in-distribution rows
// P(p ≤ α) ≤ α. Errors as for [Model.Energy].
func (m *Model) PValues(x []float32, rows int) ([]float32, error) {
	if err := m.checkInput("PValues", x, rows); err != nil {
		return nil, err
	}
	pvalues := make([]float32, rows)
	err := m.call(func(p *C.ddaebm_model) error {
		var message *C.char
		status := C.go_pvalues(p, floats(x), C.size_t(rows), C.size_t(m.dim), floats(pvalues), &message)
		return check(status, message)
	})
	if err != nil {
		return nil, err
	}
	return pvalues, nil
}

// Explain returns per-feature attributions of each of the rows of x: rows*InputDim() values,
// row-major, in raw feature units, where entry j of a row is how much feature j raised that
// row's energy (integrated gradients from the training rows' mean; a row's entries sum to
// about its energy minus the mean's). About 256 gradient evaluations per row. Errors as for
// [Model.Energy].
func (m *Model) Explain(x []float32, rows int) ([]float32, error) {
	if err := m.checkInput("Explain", x, rows); err != nil {
		return nil, err
	}
	attribution := make([]float32, len(x))
	err := m.call(func(p *C.ddaebm_model) error {
		var message *C.char
		status := C.go_explain(p, floats(x), C.size_t(rows), C.size_t(m.dim), floats(attribution), &message)
		return check(status, message)
	})
	if err != nil {
		return nil, err
	}
	return attribution, nil
}

// DriftResult is the outcome of [Model.Drift]: the one-sided rank-sum test of a batch's
// energies against the in-distribution calibration energies stored in the model.
type DriftResult struct {
	// PValue is the one-sided p-value: small when the batch's energies are higher than the
	// calibration energies. For in-distribution batches P(p ≤ α) ≈ α.
	PValue float64
	// Effect is the probability that a batch row's energy exceeds a calibration row's (ties
	// count half): 0.5 for in-distribution batches, towards 1 for out-of-distribution ones.
	Effect float64
	// Z is the standardised rank-sum statistic (positive: batch energies higher).
	Z float64
	// BatchRows and CalibrationRows are the rows in the batch and in the model's calibration
	// set.
	BatchRows, CalibrationRows int
}

// Drift tests whether the rows of x (rows × InputDim() values, row-major) as a whole come
// from the in-distribution data the model was calibrated on: a one-sided
// Wilcoxon–Mann–Whitney rank-sum test of their energies against the calibration energies
// stored in the model. A small PValue means the batch has drifted towards
// out-of-distribution. Errors as for [Model.Energy], and StatusInvalidArgument for rows 0.
func (m *Model) Drift(x []float32, rows int) (DriftResult, error) {
	if err := m.checkInput("Drift", x, rows); err != nil {
		return DriftResult{}, err
	}
	var out C.ddaebm_drift_result
	err := m.call(func(p *C.ddaebm_model) error {
		var message *C.char
		status := C.go_drift(p, floats(x), C.size_t(rows), C.size_t(m.dim), &out, &message)
		return check(status, message)
	})
	if err != nil {
		return DriftResult{}, err
	}
	return DriftResult{
		PValue:          float64(out.p_value),
		Effect:          float64(out.effect),
		Z:               float64(out.z),
		BatchRows:       int(out.batch_rows),
		CalibrationRows: int(out.calibration_rows),
	}, nil
}

// Sample generates rows rows from the model, row-major (rows × InputDim() values), in the raw
// feature scale. The same seed gives the same rows, on any goroutine. Errors:
// StatusInvalidArgument (rows < 0 or too large), ErrClosed.
func (m *Model) Sample(rows int, seed uint64) ([]float32, error) {
	n, err := m.values("Sample", rows)
	if err != nil {
		return nil, err
	}
	out := make([]float32, n)
	err = m.call(func(p *C.ddaebm_model) error {
		var message *C.char
		status := C.go_sample(p, C.size_t(rows), C.uint64_t(seed), floats(out), C.size_t(n), &message)
		return check(status, message)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// call runs f with the live handle under the read lock, or returns ErrClosed.
func (m *Model) call(f func(p *C.ddaebm_model) error) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.ptr == nil {
		return ErrClosed
	}
	err := f(m.ptr)
	// m must stay reachable until the C call has returned, or its finalizer could free the
	// handle while the library still uses it.
	runtime.KeepAlive(m)
	return err
}

// values returns rows × InputDim(), the number of values in rows rows, or an error when rows
// is negative or the product overflows an int.
func (m *Model) values(method string, rows int) (int, error) {
	if rows < 0 {
		return 0, invalidf("%s: rows is %d", method, rows)
	}
	hi, lo := bits.Mul(uint(rows), uint(m.dim))
	if hi != 0 || lo > math.MaxInt {
		return 0, invalidf("%s: %d rows × %d features overflows", method, rows, m.dim)
	}
	return int(lo), nil
}

// checkInput checks that x holds rows × InputDim() values.
func (m *Model) checkInput(method string, x []float32, rows int) error {
	n, err := m.values(method, rows)
	if err != nil {
		return err
	}
	if n != len(x) {
		return &Error{
			Status: StatusShapeMismatch,
			Message: fmt.Sprintf("%s: len(x) is %d but %d rows × %d features need %d values",
				method, len(x), rows, m.dim, n),
		}
	}
	return nil
}

// floats passes a Go slice to C without copying it. The memory holds no Go pointers, which
// the cgo pointer rules allow; an empty slice may give a NULL or dangling pointer, which the
// library never reads when the length is 0.
func floats(s []float32) *C.float {
	return (*C.float)(unsafe.SliceData(s))
}

// check turns the status and message of a wrapped C call into an error, nil on success, and
// frees the message.
func check(status C.ddaebm_status, message *C.char) error {
	if status == C.DDAEBM_OK {
		return nil
	}
	defer C.free(unsafe.Pointer(message))
	return &Error{Status: Status(status), Message: C.GoString(message)}
}

// invalidf returns an *Error with StatusInvalidArgument and a formatted message.
func invalidf(format string, args ...any) *Error {
	return &Error{Status: StatusInvalidArgument, Message: fmt.Sprintf(format, args...)}
}

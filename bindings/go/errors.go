package ddaebm

/*
#include "ddaebm.h"
*/
import "C"

import "errors"

// Status is the kind of a failure: the ddaebm_status code of the C library. A Status is an
// error, so errors.Is(err, StatusNonFinite) tells whether err is (or wraps) an [Error] of that
// kind. The numbers are those of the C ABI and never change meaning.
type Status uint32

// The failure kinds, with the same numbers as DDAEBM_ERR_* in ddaebm.h.
const (
	// StatusNullArgument means a required pointer argument was NULL.
	StatusNullArgument Status = C.DDAEBM_ERR_NULL_ARGUMENT
	// StatusInvalidArgument means an argument is outside its domain (unknown device, negative
	// row count, sizes that overflow, ...).
	StatusInvalidArgument Status = C.DDAEBM_ERR_INVALID_ARGUMENT
	// StatusIO means reading the model file failed (missing, unreadable, ...).
	StatusIO Status = C.DDAEBM_ERR_IO
	// StatusBadModel means the file is not a ddaebm model, or it is truncated or damaged.
	StatusBadModel Status = C.DDAEBM_ERR_BAD_MODEL
	// StatusUnsupportedVersion means the model file was written by a newer format version.
	StatusUnsupportedVersion Status = C.DDAEBM_ERR_UNSUPPORTED_VERSION
	// StatusShapeMismatch means the input length is not rows × InputDim().
	StatusShapeMismatch Status = C.DDAEBM_ERR_SHAPE_MISMATCH
	// StatusNonFinite means an input row holds NaN or ±Inf.
	StatusNonFinite Status = C.DDAEBM_ERR_NON_FINITE
	// StatusDeviceUnavailable means the requested device cannot be used (no CUDA in this build,
	// no GPU on this host, ...).
	StatusDeviceUnavailable Status = C.DDAEBM_ERR_DEVICE_UNAVAILABLE
	// StatusInternal means the tensor library failed (out of device memory, driver error, ...).
	StatusInternal Status = C.DDAEBM_ERR_INTERNAL
	// StatusPanic means a bug in ddaebm, caught at the library boundary. The model stays usable.
	StatusPanic Status = C.DDAEBM_ERR_PANIC
)

// String returns the code's name and short meaning, e.g. "DDAEBM_ERR_IO: I/O error", or
// "unknown status".
func (s Status) String() string {
	return C.GoString(C.ddaebm_status_string(C.uint32_t(s)))
}

// Error returns s.String(), so that a Status can be an errors.Is target.
func (s Status) Error() string {
	return s.String()
}

// Error is a failed call: its kind and the message of the library (or of this package, for
// arguments it rejects before calling the library).
type Error struct {
	// Status is the kind of failure.
	Status Status
	// Message describes the failure, e.g. which row holds a NaN.
	Message string
}

// Error returns "ddaebm: " and the message, or the status text when there is no message.
func (e *Error) Error() string {
	if e.Message == "" {
		return "ddaebm: " + e.Status.String()
	}
	return "ddaebm: " + e.Message
}

// Unwrap returns e.Status, so that errors.Is(err, StatusShapeMismatch) matches.
func (e *Error) Unwrap() error {
	return e.Status
}

// ErrClosed is returned by the calls on a [Model] that has been closed.
var ErrClosed = errors.New("ddaebm: model is closed")

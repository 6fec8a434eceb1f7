// Package ddaebm is the Go binding of libddaebm, an embeddable out-of-distribution detector
// (DDAEBM, Geng et al., ICML 2024).
//
// Open a model file with [Open], score rows with [Model.Energy], [Model.Screen] or
// [Model.PValues], attribute energies to features with [Model.Explain], test a whole batch
// for drift with [Model.Drift], draw rows with
// [Model.Sample], and release the model with [Model.Close]:
//
//	model, err := ddaebm.Open("model.safetensors", nil)
//	if err != nil {
//		return err
//	}
//	defer model.Close()
//	energy, ood, err := model.Screen(rows, len(rows)/model.InputDim())
//
// Rows are passed as one row-major []float32 of rows × [Model.InputDim] values. Slices go to
// the library as they are, without copies; results come back in newly allocated slices.
//
// # Errors
//
// Failures of the library and invalid arguments are returned as *[Error], which carries a
// [Status] and the library's message. A Status is itself an error, in the manner of
// syscall.Errno, and *Error unwraps to it, so test the kind of failure with [errors.Is]:
//
//	if errors.Is(err, ddaebm.StatusNonFinite) { ... }
//
// and reach the message with [errors.As] into a *[Error]. Calls on a closed model return
// [ErrClosed].
//
// # Concurrency
//
// A Model is immutable once opened: any number of goroutines may score and sample with one
// Model at the same time. [Model.Close] waits for the calls in progress to return; calls
// made after it return ErrClosed.
//
// # Building
//
// The package links against libddaebm.so with cgo. The header is found through the repository
// layout (include/ddaebm.h); tell the linker where the library is:
//
//	CGO_LDFLAGS="-L/path/to/lib -Wl,-rpath,/path/to/lib" go build
//
// The library and the header this package is built with must be the same version; [Open]
// refuses a mismatch.
package ddaebm

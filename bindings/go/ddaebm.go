package ddaebm

// The library directory is not named here: pass it with CGO_LDFLAGS (see README.md).

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: -lddaebm
#include "ddaebm.h"
*/
import "C"

import "fmt"

// Version returns the version of the loaded libddaebm, e.g. "0.1.0".
func Version() string {
	return C.GoString(C.ddaebm_version())
}

// checkVersion reports an error when the loaded library is not the version of the header this
// package was compiled with: the C ABI is not stable across versions.
func checkVersion() error {
	if C.ddaebm_version_number() != C.DDAEBM_VERSION_NUMBER {
		return fmt.Errorf("ddaebm: libddaebm is version %s but this package was built against header version %s",
			Version(), C.DDAEBM_VERSION_STRING)
	}
	return nil
}

package ddaebm_test

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	ddaebm "github.com/ddaebm/ddaebm/bindings/go"
)

// wantError fails the test unless err is an *ddaebm.Error of the given status whose message
// contains every one of parts.
func wantError(t *testing.T, what string, err error, status ddaebm.Status, parts ...string) {
	t.Helper()
	var e *ddaebm.Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: got %v (%T), want a *ddaebm.Error", what, err, err)
	}
	if !errors.Is(err, status) || e.Status != status {
		t.Fatalf("%s: status %v, want %v (%v)", what, e.Status, status, err)
	}
	for _, part := range parts {
		if !strings.Contains(e.Message, part) {
			t.Errorf("%s: message %q does not contain %q", what, e.Message, part)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	model := fixtureFile(t, "model.safetensors")
	for _, tc := range []struct {
		name   string
		path   string
		opts   *ddaebm.Options
		status ddaebm.Status
	}{
		{"truncated", fixtureFile(t, "truncated.safetensors"), nil, ddaebm.StatusBadModel},
		{"random", fixtureFile(t, "random.safetensors"), nil, ddaebm.StatusBadModel},
		{"future", fixtureFile(t, "future.safetensors"), nil, ddaebm.StatusUnsupportedVersion},
		{"missing", filepath.Join(t.TempDir(), "missing.safetensors"), nil, ddaebm.StatusIO},
		{"empty path", "", nil, ddaebm.StatusIO},
		{"NUL in path", model + "\x00.txt", nil, ddaebm.StatusInvalidArgument},
		{"device tpu", model, &ddaebm.Options{Device: "tpu"}, ddaebm.StatusInvalidArgument},
		{"device cuda:x", model, &ddaebm.Options{Device: "cuda:x"}, ddaebm.StatusInvalidArgument},
		{"NUL in device", model, &ddaebm.Options{Device: "cpu\x00"}, ddaebm.StatusInvalidArgument},
		{"device cuda", model, &ddaebm.Options{Device: "cuda"}, ddaebm.StatusDeviceUnavailable},
		{"negative threads", model, &ddaebm.Options{Threads: -1}, ddaebm.StatusInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ddaebm.Open(tc.path, tc.opts)
			if m != nil {
				m.Close()
			}
			if tc.status == ddaebm.StatusDeviceUnavailable && err == nil {
				t.Skip("this build of libddaebm has CUDA and this host a GPU")
			}
			wantError(t, "Open", err, tc.status)
			if m != nil {
				t.Error("Open returned a model with an error")
			}
		})
	}
}

func TestScoringErrors(t *testing.T) {
	f := loadFixture(t)
	m := openFixture(t, nil)
	withValue := func(row, col int, v float32) []float32 {
		x := append([]float32(nil), f.x...)
		x[row*f.dim+col] = v
		return x
	}
	for _, tc := range []struct {
		name   string
		x      []float32
		rows   int
		status ddaebm.Status
		parts  []string
	}{
		{"negative rows", nil, -1, ddaebm.StatusInvalidArgument, []string{"rows is -1"}},
		{"too short", f.x[:len(f.x)-1], f.rows, ddaebm.StatusShapeMismatch, nil},
		{"too long", f.x, f.rows - 1, ddaebm.StatusShapeMismatch, nil},
		{"rows without data", nil, 1, ddaebm.StatusShapeMismatch, nil},
		{"rows overflow", f.x, math.MaxInt, ddaebm.StatusInvalidArgument, []string{"overflows"}},
		{"NaN", withValue(3, 2, float32(math.NaN())), f.rows, ddaebm.StatusNonFinite, []string{"row 3", "column 2"}},
		{"+Inf", withValue(0, 0, float32(math.Inf(1))), f.rows, ddaebm.StatusNonFinite, []string{"row 0", "column 0"}},
		{"-Inf", withValue(f.rows-1, f.dim-1, float32(math.Inf(-1))), f.rows, ddaebm.StatusNonFinite, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			energy, err := m.Energy(tc.x, tc.rows)
			wantError(t, "Energy", err, tc.status, tc.parts...)
			energy, ood, err := m.Screen(tc.x, tc.rows)
			wantError(t, "Screen", err, tc.status, tc.parts...)
			pvalues, err := m.PValues(tc.x, tc.rows)
			wantError(t, "PValues", err, tc.status, tc.parts...)
			explain, err := m.Explain(tc.x, tc.rows)
			wantError(t, "Explain", err, tc.status, tc.parts...)
			drift, err := m.Drift(tc.x, tc.rows)
			wantError(t, "Drift", err, tc.status, tc.parts...)
			if energy != nil || ood != nil || pvalues != nil || explain != nil ||
				drift != (ddaebm.DriftResult{}) {
				t.Error("a failed call returned results")
			}
		})
	}
}

// TestDriftErrors checks the failures of Drift that come from the library: their messages
// start with the C function's name.
func TestDriftErrors(t *testing.T) {
	f := loadFixture(t)
	m := openFixture(t, nil)
	_, err := m.Drift(nil, 0)
	wantError(t, "Drift(nil, 0)", err, ddaebm.StatusInvalidArgument, "ddaebm_drift: ", "at least one row")
	x := append([]float32(nil), f.x...)
	x[5*f.dim+1] = float32(math.NaN())
	_, err = m.Drift(x, f.rows)
	wantError(t, "Drift with NaN", err, ddaebm.StatusNonFinite, "ddaebm_drift: ", "row 5", "column 1")
	var e *ddaebm.Error
	if errors.As(err, &e) && !strings.HasPrefix(e.Message, "ddaebm_drift: ") {
		t.Errorf("Drift with NaN: message %q does not start with the function's name", e.Message)
	}
	_, err = m.Drift(f.x[:len(f.x)-1], f.rows)
	wantError(t, "Drift of a short x", err, ddaebm.StatusShapeMismatch, "Drift: len(x)")
}

// TestExplainErrors checks that the failures of Explain that come from the library have
// messages starting with the C function's name.
func TestExplainErrors(t *testing.T) {
	f := loadFixture(t)
	m := openFixture(t, nil)
	x := append([]float32(nil), f.x...)
	x[5*f.dim+1] = float32(math.NaN())
	attribution, err := m.Explain(x, f.rows)
	wantError(t, "Explain with NaN", err, ddaebm.StatusNonFinite, "ddaebm_explain: ", "row 5", "column 1")
	var e *ddaebm.Error
	if errors.As(err, &e) && !strings.HasPrefix(e.Message, "ddaebm_explain: ") {
		t.Errorf("Explain with NaN: message %q does not start with the function's name", e.Message)
	}
	if attribution != nil {
		t.Error("a failed Explain returned attributions")
	}
	_, err = m.Explain(f.x[:len(f.x)-1], f.rows)
	wantError(t, "Explain of a short x", err, ddaebm.StatusShapeMismatch, "Explain: len(x)")
}

func TestSampleErrors(t *testing.T) {
	m := openFixture(t, nil)
	_, err := m.Sample(-1, 0)
	wantError(t, "Sample(-1)", err, ddaebm.StatusInvalidArgument, "rows is -1")
	_, err = m.Sample(math.MaxInt, 0)
	wantError(t, "Sample(MaxInt)", err, ddaebm.StatusInvalidArgument, "overflows")
}

func TestErrorText(t *testing.T) {
	err := error(&ddaebm.Error{Status: ddaebm.StatusIO, Message: "cannot read x"})
	if got := err.Error(); got != "ddaebm: cannot read x" {
		t.Errorf("Error() = %q", got)
	}
	if got := (&ddaebm.Error{Status: ddaebm.StatusIO}).Error(); got != "ddaebm: DDAEBM_ERR_IO: I/O error" {
		t.Errorf("Error() without a message = %q", got)
	}
	if !errors.Is(err, ddaebm.StatusIO) || errors.Is(err, ddaebm.StatusBadModel) || errors.Is(err, ddaebm.ErrClosed) {
		t.Error("errors.Is matches the wrong statuses")
	}
	for _, s := range []ddaebm.Status{
		ddaebm.StatusNullArgument, ddaebm.StatusInvalidArgument, ddaebm.StatusIO, ddaebm.StatusBadModel,
		ddaebm.StatusUnsupportedVersion, ddaebm.StatusShapeMismatch, ddaebm.StatusNonFinite,
		ddaebm.StatusDeviceUnavailable, ddaebm.StatusInternal, ddaebm.StatusPanic,
	} {
		if !strings.HasPrefix(s.String(), "DDAEBM_ERR_") || s.Error() != s.String() {
			t.Errorf("Status(%d) = %q", uint32(s), s.String())
		}
	}
	if got := ddaebm.Status(999).String(); got != "unknown status" {
		t.Errorf("Status(999).String() = %q", got)
	}
}

// TestConcurrentErrors fails calls from 16 goroutines at once, each with NaN in another row:
// every error must carry its own call's message, not one from another goroutine.
func TestConcurrentErrors(t *testing.T) {
	f := loadFixture(t)
	m := openFixture(t, nil)
	inGoroutines(t, 16, func(g int) error {
		x := append([]float32(nil), f.x...)
		x[g*f.dim] = float32(math.NaN())
		want := fmt.Sprintf("row %d,", g)
		for i := 0; i < 20; i++ {
			_, err := m.Energy(x, f.rows)
			var e *ddaebm.Error
			if !errors.As(err, &e) || e.Status != ddaebm.StatusNonFinite || !strings.Contains(e.Message, want) {
				return fmt.Errorf("goroutine %d: got %v, want a non-finite error naming %q", g, err, want)
			}
		}
		return nil
	})
}

package ddaebm_test

import (
	"encoding/json"
	"errors"
	"math"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	ddaebm "github.com/ddaebm/ddaebm/bindings/go"
)

func TestVersion(t *testing.T) {
	if v := ddaebm.Version(); !regexp.MustCompile(`^\d+\.\d+\.\d+`).MatchString(v) {
		t.Fatalf("Version() = %q, want MAJOR.MINOR.PATCH", v)
	}
}

func TestOpenAndGetters(t *testing.T) {
	f := loadFixture(t)
	m := openFixture(t, nil)
	if got := m.InputDim(); got != f.dim {
		t.Errorf("InputDim() = %d, want %d", got, f.dim)
	}
	if got := m.Threshold(); got != f.threshold {
		t.Errorf("Threshold() = %v, want %v", got, f.threshold)
	}
	var metadata map[string]any
	if err := json.Unmarshal([]byte(m.Metadata()), &metadata); err != nil || len(metadata) == 0 {
		t.Errorf("Metadata() is not a non-empty JSON object (%v): %.200q", err, m.Metadata())
	}
}

func TestImageShape(t *testing.T) {
	f := loadFixture(t)
	m := openImageFixture(t, nil)
	c, h, w, ok := m.ImageShape()
	if !ok || [3]int{c, h, w} != f.imageShape {
		t.Errorf("ImageShape() = %d, %d, %d, %v; want %v, true", c, h, w, ok, f.imageShape)
	}
	if got, want := m.InputDim(), f.imageShape[0]*f.imageShape[1]*f.imageShape[2]; got != want {
		t.Errorf("image model InputDim() = %d, want C·H·W = %d", got, want)
	}
	m.Close()
	if c2, h2, w2, ok2 := m.ImageShape(); [3]int{c2, h2, w2} != f.imageShape || !ok2 {
		t.Error("ImageShape changed after Close")
	}
	// A model of feature vectors has none.
	if c, h, w, ok := openFixture(t, nil).ImageShape(); ok || c != 0 || h != 0 || w != 0 {
		t.Errorf("vector model ImageShape() = %d, %d, %d, %v; want 0, 0, 0, false", c, h, w, ok)
	}
}

// TestImageEnergy scores images: one row of C·H·W values per image, channel-major.
func TestImageEnergy(t *testing.T) {
	f := loadFixture(t)
	for _, opts := range []*ddaebm.Options{nil, {Threads: 2}} {
		m := openImageFixture(t, opts)
		energy, err := m.Energy(f.imageX, f.imageRows)
		if err != nil {
			t.Fatalf("Energy: %v", err)
		}
		sameBits(t, "image energy", energy, f.imageEnergy)
		screenEnergy, ood, err := m.Screen(f.imageX, f.imageRows)
		if err != nil {
			t.Fatalf("Screen: %v", err)
		}
		sameBits(t, "image screen energy", screenEnergy, f.imageEnergy)
		for i, o := range ood {
			if o != (screenEnergy[i] > m.Threshold()) {
				t.Errorf("image %d: ood %v but energy %v and threshold %v", i, o, screenEnergy[i], m.Threshold())
			}
		}
	}
	// Not a whole number of images.
	_, err := openImageFixture(t, nil).Energy(f.imageX[1:], f.imageRows)
	if !errors.Is(err, ddaebm.StatusShapeMismatch) {
		t.Errorf("Energy of a short image batch: %v, want StatusShapeMismatch", err)
	}
}

func TestOpenOptions(t *testing.T) {
	f := loadFixture(t)
	for _, opts := range []*ddaebm.Options{{}, {Device: "cpu"}, {Device: "CPU", Threads: 2}, {Threads: 1}} {
		m := openFixture(t, opts)
		energy, err := m.Energy(f.x, f.rows)
		if err != nil {
			t.Fatalf("%+v: Energy: %v", *opts, err)
		}
		sameBits(t, "energy", energy, f.energy)
	}
}

func TestEnergy(t *testing.T) {
	f := loadFixture(t)
	energy, err := openFixture(t, nil).Energy(f.x, f.rows)
	if err != nil {
		t.Fatal(err)
	}
	sameBits(t, "energy", energy, f.energy)
}

func TestScreen(t *testing.T) {
	f := loadFixture(t)
	m := openFixture(t, nil)
	energy, ood, err := m.Screen(f.x, f.rows)
	if err != nil {
		t.Fatal(err)
	}
	sameBits(t, "energy", energy, f.energy)
	if !slices.Equal(ood, f.isOOD) {
		t.Fatalf("ood = %v, want %v", ood, f.isOOD)
	}
	flagged := 0
	for i, o := range ood {
		if o {
			flagged++
		}
		if o != (energy[i] > m.Threshold()) {
			t.Errorf("row %d: ood %v but energy %v and threshold %v", i, o, energy[i], m.Threshold())
		}
	}
	if flagged != f.flagged {
		t.Errorf("flagged %d rows, want %d", flagged, f.flagged)
	}
}

func TestPValues(t *testing.T) {
	f := loadFixture(t)
	pvalues, err := openFixture(t, nil).PValues(f.x, f.rows)
	if err != nil {
		t.Fatal(err)
	}
	sameBits(t, "pvalue", pvalues, f.pvalue)
}

func TestExplain(t *testing.T) {
	f := loadFixture(t)
	attribution, err := openFixture(t, nil).Explain(f.x, f.rows)
	if err != nil {
		t.Fatal(err)
	}
	sameBits(t, "explain", attribution, f.explain)
}

func TestDrift(t *testing.T) {
	f := loadFixture(t)
	m := openFixture(t, nil)
	all, err := m.Drift(f.x, f.rows)
	if err != nil {
		t.Fatal(err)
	}
	sameDrift(t, "Drift of all rows", all, f.driftAll, f.rows, f.calibrationRows)
	// Half of the rows are far away: a tiny p-value, batch energies above the calibration's.
	if !(all.PValue > 0 && all.PValue < 1e-4 && all.Effect > 0.5 && all.Z > 0) {
		t.Errorf("Drift of all rows = %+v, want a tiny p-value and a positive shift", all)
	}
	half, err := m.Drift(f.x[:f.rows/2*f.dim], f.rows/2)
	if err != nil {
		t.Fatal(err)
	}
	sameDrift(t, "Drift of the first half", half, f.driftHalf, f.rows/2, f.calibrationRows)
	if !(half.PValue > all.PValue && half.PValue <= 1 && half.Effect >= 0 && half.Effect <= 1) {
		t.Errorf("Drift of the in-distribution half = %+v", half)
	}
}

// checkMethodModel opens the fixture's model of another training method, checks that its
// metadata names the sampler and that its energies and samples equal Rust's, bit for bit.
func checkMethodModel(t *testing.T, file, sampler, label string, wantEnergy, wantSample []float32) {
	t.Helper()
	f := loadFixture(t)
	m, err := ddaebm.Open(fixtureFile(t, file), nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer m.Close()
	if !strings.Contains(m.Metadata(), `"`+sampler+`"`) {
		t.Errorf("the %s model's metadata names no %s sampler", label, sampler)
	}
	energy, err := m.Energy(f.x, f.rows)
	if err != nil {
		t.Fatalf("Energy: %v", err)
	}
	sameBits(t, label+" energy", energy, wantEnergy)
	sample, err := m.Sample(f.sampleRows, f.sampleSeed)
	if err != nil {
		t.Fatalf("Sample: %v", err)
	}
	sameBits(t, label+" sample", sample, wantSample)
}

// A model of another training method (GCD, Gaussian-policy sampler) through the same calls.
func TestGCDModel(t *testing.T) {
	f := loadFixture(t)
	checkMethodModel(t, "gcd_model.safetensors", "gaussian_policy", "GCD", f.gcdEnergy, f.gcdSample)
}

// A model of a third training method (DCD, Langevin sampler on the energy) through the same
// calls.
func TestDCDModel(t *testing.T) {
	f := loadFixture(t)
	checkMethodModel(t, "dcd_model.safetensors", "langevin", "DCD", f.dcdEnergy, f.dcdSample)
}

func TestSample(t *testing.T) {
	f := loadFixture(t)
	m := openFixture(t, nil)
	sample, err := m.Sample(f.sampleRows, f.sampleSeed)
	if err != nil {
		t.Fatal(err)
	}
	sameBits(t, "sample", sample, f.sample)
	again, err := m.Sample(f.sampleRows, f.sampleSeed)
	if err != nil {
		t.Fatal(err)
	}
	sameBits(t, "sample with the same seed", again, sample)
	other, err := m.Sample(f.sampleRows, f.sampleSeed+1)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(other, sample) {
		t.Fatal("seeds 7 and 8 gave the same rows")
	}
}

func TestEmptyInputs(t *testing.T) {
	m := openFixture(t, nil)
	for _, x := range [][]float32{nil, {}} {
		if energy, err := m.Energy(x, 0); err != nil || len(energy) != 0 {
			t.Errorf("Energy(%#v, 0) = %v, %v", x, energy, err)
		}
		if energy, ood, err := m.Screen(x, 0); err != nil || len(energy) != 0 || len(ood) != 0 {
			t.Errorf("Screen(%#v, 0) = %v, %v, %v", x, energy, ood, err)
		}
		if pvalues, err := m.PValues(x, 0); err != nil || len(pvalues) != 0 {
			t.Errorf("PValues(%#v, 0) = %v, %v", x, pvalues, err)
		}
		if attribution, err := m.Explain(x, 0); err != nil || len(attribution) != 0 {
			t.Errorf("Explain(%#v, 0) = %v, %v", x, attribution, err)
		}
	}
	if sample, err := m.Sample(0, 1); err != nil || len(sample) != 0 {
		t.Errorf("Sample(0, 1) = %v, %v", sample, err)
	}
	// The drift test needs at least one row.
	for _, x := range [][]float32{nil, {}} {
		if d, err := m.Drift(x, 0); !errors.Is(err, ddaebm.StatusInvalidArgument) || d != (ddaebm.DriftResult{}) {
			t.Errorf("Drift(%#v, 0) = %+v, %v; want StatusInvalidArgument", x, d, err)
		}
	}
}

func TestClose(t *testing.T) {
	f := loadFixture(t)
	m := openFixture(t, nil)
	for i := 0; i < 2; i++ {
		if err := m.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	if _, err := m.Energy(f.x, f.rows); !errors.Is(err, ddaebm.ErrClosed) {
		t.Errorf("Energy after Close: %v, want ErrClosed", err)
	}
	if _, _, err := m.Screen(f.x, f.rows); !errors.Is(err, ddaebm.ErrClosed) {
		t.Errorf("Screen after Close: %v, want ErrClosed", err)
	}
	if _, err := m.PValues(f.x, f.rows); !errors.Is(err, ddaebm.ErrClosed) {
		t.Errorf("PValues after Close: %v, want ErrClosed", err)
	}
	if _, err := m.Drift(f.x, f.rows); !errors.Is(err, ddaebm.ErrClosed) {
		t.Errorf("Drift after Close: %v, want ErrClosed", err)
	}
	if _, err := m.Explain(f.x, f.rows); !errors.Is(err, ddaebm.ErrClosed) {
		t.Errorf("Explain after Close: %v, want ErrClosed", err)
	}
	if _, err := m.Sample(1, 1); !errors.Is(err, ddaebm.ErrClosed) {
		t.Errorf("Sample after Close: %v, want ErrClosed", err)
	}
	if m.InputDim() != f.dim || m.Threshold() != f.threshold || m.Metadata() == "" {
		t.Error("getters changed after Close")
	}
}

// TestFinalizer drops open models and lets the garbage collector close them.
func TestFinalizer(t *testing.T) {
	f := loadFixture(t)
	for i := 0; i < 8; i++ {
		m, err := ddaebm.Open(fixtureFile(t, "model.safetensors"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Energy(f.x, f.rows); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 5; i++ {
		runtime.GC()
	}
	// Finalizers run on their own goroutine; a model opened now works next to them.
	energy, err := openFixture(t, nil).Energy(f.x, f.rows)
	if err != nil {
		t.Fatal(err)
	}
	sameBits(t, "energy", energy, f.energy)
}

// TestConcurrentUse scores and samples with one model from 16 goroutines at once.
func TestConcurrentUse(t *testing.T) {
	f := loadFixture(t)
	m := openFixture(t, nil)
	inGoroutines(t, 16, func(int) error { return useConcurrently(m, f) })
}

// useConcurrently runs every call a few times and compares the results with the fixture.
func useConcurrently(m *ddaebm.Model, f *fixture) error {
	for i := 0; i < 4; i++ {
		energy, err := m.Energy(f.x, f.rows)
		if err != nil {
			return err
		}
		screenEnergy, ood, err := m.Screen(f.x, f.rows)
		if err != nil {
			return err
		}
		pvalues, err := m.PValues(f.x, f.rows)
		if err != nil {
			return err
		}
		drift, err := m.Drift(f.x, f.rows)
		if err != nil {
			return err
		}
		sample, err := m.Sample(f.sampleRows, f.sampleSeed)
		if err != nil {
			return err
		}
		if !bitsEqual(energy, f.energy) || !bitsEqual(screenEnergy, f.energy) ||
			!slices.Equal(ood, f.isOOD) || !bitsEqual(pvalues, f.pvalue) ||
			!driftEqual(drift, f.driftAll, f.rows, f.calibrationRows) || !bitsEqual(sample, f.sample) {
			return errors.New("a concurrent call differs from the single-threaded result")
		}
	}
	return nil
}

// TestCloseDuringCalls closes a model while goroutines use it: every call either succeeds
// with the right result or returns ErrClosed.
func TestCloseDuringCalls(t *testing.T) {
	f := loadFixture(t)
	m := openFixture(t, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				energy, err := m.Energy(f.x, f.rows)
				if errors.Is(err, ddaebm.ErrClosed) {
					errs <- nil
					return
				}
				if err != nil || !bitsEqual(energy, f.energy) {
					errs <- errors.New("a call before Close failed or differs")
					return
				}
			}
		}()
	}
	if _, err := m.Energy(f.x, f.rows); err != nil {
		t.Fatal(err)
	}
	m.Close()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func bitsEqual(a, b []float32) bool {
	return slices.EqualFunc(a, b, func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) })
}

package ddaebm_test

import (
	"bufio"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	ddaebm "github.com/ddaebm/ddaebm/bindings/go"
)

// fixture is the shared binding fixture that xtask/src/bindings_fixture.rs writes: a
// model, rows, and what the Rust library computes for them.
type fixture struct {
	rows, dim, sampleRows, flagged int
	sampleSeed                     uint64
	threshold                      float32
	x, energy, pvalue, sample      []float32
	isOOD                          []bool

	// explain.f32: Explain's rows × dim attributions of x.
	explain []float32

	// drift.f64: Drift's [PValue, Effect, Z] for all rows and for the first rows/2, and the
	// model's calibration rows.
	driftAll, driftHalf [3]float64
	calibrationRows     int

	// The image model (image_model.safetensors): imageRows images of imageShape
	// (channels, height, width), each channel-major in imageX, and their energies.
	imageShape          [3]int
	imageRows           int
	imageX, imageEnergy []float32

	// The GCD model (gcd_model.safetensors): its energies of x and its samples.
	gcdEnergy, gcdSample []float32

	// The DCD model (dcd_model.safetensors): its energies of x and its samples.
	dcdEnergy, dcdSample []float32
}

// fixtureDir is $DDAEBM_FIXTURE_DIR, or target/bindings-fixture of the repository.
func fixtureDir() string {
	if dir := os.Getenv("DDAEBM_FIXTURE_DIR"); dir != "" {
		return dir
	}
	return filepath.Join("..", "..", "target", "bindings-fixture")
}

// fixturePath returns the path of a fixture file.
func fixturePath(name string) string {
	return filepath.Join(fixtureDir(), name)
}

// missingFixture fails the test for a fixture file that cannot be read.
func missingFixture(t testing.TB, err error) {
	t.Helper()
	t.Fatalf("binding fixture: %v (run scripts/test-bindings.sh to build it, or set DDAEBM_FIXTURE_DIR)", err)
}

// fixtureFile returns the path of a fixture file after checking that it exists.
func fixtureFile(t testing.TB, name string) string {
	t.Helper()
	path := fixturePath(name)
	if _, err := os.Stat(path); err != nil {
		missingFixture(t, err)
	}
	return path
}

// readFixture reads a fixture file.
func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(fixturePath(name))
	if err != nil {
		missingFixture(t, err)
	}
	return data
}

func readF32(t testing.TB, name string) []float32 {
	t.Helper()
	data := readFixture(t, name)
	if len(data)%4 != 0 {
		t.Fatalf("%s: %d bytes is not a whole number of float32", name, len(data))
	}
	values := make([]float32, len(data)/4)
	for i := range values {
		values[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
	}
	return values
}

func readF64(t testing.TB, name string) []float64 {
	t.Helper()
	data := readFixture(t, name)
	if len(data)%8 != 0 {
		t.Fatalf("%s: %d bytes is not a whole number of float64", name, len(data))
	}
	values := make([]float64, len(data)/8)
	for i := range values {
		values[i] = math.Float64frombits(binary.LittleEndian.Uint64(data[8*i:]))
	}
	return values
}

func loadFixture(t testing.TB) *fixture {
	t.Helper()
	keys := map[string]string{}
	scanner := bufio.NewScanner(strings.NewReader(string(readFixture(t, "fixture.txt"))))
	for scanner.Scan() {
		if key, value, ok := strings.Cut(scanner.Text(), " "); ok {
			keys[key] = value
		}
	}
	number := func(key string, bitSize int) float64 {
		v, err := strconv.ParseFloat(keys[key], bitSize)
		if err != nil {
			t.Fatalf("fixture.txt: %s: %v", key, err)
		}
		return v
	}
	f := &fixture{
		rows:       int(number("rows", 64)),
		dim:        int(number("dim", 64)),
		sampleRows: int(number("sample_rows", 64)),
		sampleSeed: uint64(number("sample_seed", 64)),
		flagged:    int(number("flagged", 64)),
		threshold:  float32(number("threshold", 32)),
		x:          readF32(t, "rows.f32"),
		energy:     readF32(t, "energy.f32"),
		pvalue:     readF32(t, "pvalue.f32"),
		explain:    readF32(t, "explain.f32"),
		sample:     readF32(t, "sample.f32"),
		imageShape: [3]int{
			int(number("image_channels", 64)),
			int(number("image_height", 64)),
			int(number("image_width", 64)),
		},
		imageRows:   int(number("image_rows", 64)),
		imageX:      readF32(t, "image_rows.f32"),
		imageEnergy: readF32(t, "image_energy.f32"),
		gcdEnergy:   readF32(t, "gcd_energy.f32"),
		gcdSample:   readF32(t, "gcd_sample.f32"),
		dcdEnergy:   readF32(t, "dcd_energy.f32"),
		dcdSample:   readF32(t, "dcd_sample.f32"),
	}
	for _, b := range readFixture(t, "is_ood.u8") {
		f.isOOD = append(f.isOOD, b != 0)
	}
	f.calibrationRows = int(number("calibration_rows", 64))
	drift := readF64(t, "drift.f64")
	if len(drift) != 6 {
		t.Fatalf("drift.f64: %d values, want 6", len(drift))
	}
	copy(f.driftAll[:], drift[:3])
	copy(f.driftHalf[:], drift[3:])
	if len(f.x) != f.rows*f.dim || len(f.energy) != f.rows || len(f.pvalue) != f.rows ||
		len(f.explain) != f.rows*f.dim ||
		len(f.isOOD) != f.rows || len(f.sample) != f.sampleRows*f.dim ||
		len(f.imageX) != f.imageRows*f.imageShape[0]*f.imageShape[1]*f.imageShape[2] ||
		len(f.imageEnergy) != f.imageRows ||
		len(f.gcdEnergy) != f.rows || len(f.gcdSample) != f.sampleRows*f.dim ||
		len(f.dcdEnergy) != f.rows || len(f.dcdSample) != f.sampleRows*f.dim {
		t.Fatalf("the fixture in %s is inconsistent with its fixture.txt", fixtureDir())
	}
	return f
}

// openFixture opens the fixture model and closes it at the end of the test.
func openFixture(t testing.TB, opts *ddaebm.Options) *ddaebm.Model {
	t.Helper()
	m, err := ddaebm.Open(fixtureFile(t, "model.safetensors"), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// openImageFixture opens the fixture's image model and closes it at the end of the test.
func openImageFixture(t testing.TB, opts *ddaebm.Options) *ddaebm.Model {
	t.Helper()
	m, err := ddaebm.Open(fixtureFile(t, "image_model.safetensors"), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// sameBits fails the test unless got and want are bit-identical.
func sameBits(t testing.TB, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s[%d] = %v (%#08x), want %v (%#08x)", what, i,
				got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
		}
	}
}

// sameDrift fails the test unless got has PValue, Effect and Z bit-identical to want and the
// given row counts.
func sameDrift(t testing.TB, what string, got ddaebm.DriftResult, want [3]float64, rows, calibrationRows int) {
	t.Helper()
	if !driftEqual(got, want, rows, calibrationRows) {
		t.Fatalf("%s = %+v, want PValue %v, Effect %v, Z %v (bit for bit), BatchRows %d, CalibrationRows %d",
			what, got, want[0], want[1], want[2], rows, calibrationRows)
	}
}

// driftEqual reports whether got has PValue, Effect and Z bit-identical to want and the given
// row counts.
func driftEqual(got ddaebm.DriftResult, want [3]float64, rows, calibrationRows int) bool {
	return math.Float64bits(got.PValue) == math.Float64bits(want[0]) &&
		math.Float64bits(got.Effect) == math.Float64bits(want[1]) &&
		math.Float64bits(got.Z) == math.Float64bits(want[2]) &&
		got.BatchRows == rows && got.CalibrationRows == calibrationRows
}

// inGoroutines runs work(0..n-1) in n goroutines at once and reports every error it returns.
func inGoroutines(t *testing.T, n int, work func(g int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- work(g)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

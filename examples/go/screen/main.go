// Command screen flags the out-of-distribution rows of a CSV file with a ddaebm model.
//
// Usage:
//
//	screen MODEL.safetensors ROWS.csv
//
// ROWS.csv holds one row per line: the model's features as numbers, comma-separated, no
// header. The first line of the output is "flagged K of N rows (threshold T)", followed by
// "row I: energy E" for each flagged row, numbered from 0 as in the library's messages.
package main

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	ddaebm "github.com/ddaebm/ddaebm/bindings/go"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: screen MODEL.safetensors ROWS.csv")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(1)
	}
}

func run(modelPath, csvPath string) error {
	model, err := ddaebm.Open(modelPath, nil)
	if err != nil {
		return err
	}
	defer model.Close()

	x, rows, err := readRows(csvPath, model.InputDim())
	if err != nil {
		return err
	}
	energy, ood, err := model.Screen(x, rows)
	if err != nil {
		return err
	}
	flagged := 0
	for _, o := range ood {
		if o {
			flagged++
		}
	}
	fmt.Printf("flagged %d of %d rows (threshold %g)\n", flagged, rows, model.Threshold())
	for i, o := range ood {
		if o {
			fmt.Printf("row %d: energy %g\n", i, energy[i])
		}
	}
	return nil
}

// readRows reads a CSV file of dim numbers per line into one row-major slice.
func readRows(path string, dim int) (x []float32, rows int, err error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer file.Close()

	r := csv.NewReader(file)
	r.FieldsPerRecord = -1 // checked below, with a clearer message
	r.TrimLeadingSpace = true
	for {
		record, err := r.Read()
		if errors.Is(err, io.EOF) {
			return x, rows, nil
		}
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", path, err)
		}
		line, _ := r.FieldPos(0)
		if len(record) != dim {
			return nil, 0, fmt.Errorf("%s:%d: %d values, but the model expects %d per row", path, line, len(record), dim)
		}
		for i, field := range record {
			v, err := strconv.ParseFloat(strings.TrimSpace(field), 32)
			if err != nil {
				return nil, 0, fmt.Errorf("%s:%d: column %d: %q is not a number", path, line, i+1, field)
			}
			x = append(x, float32(v))
		}
		rows++
	}
}

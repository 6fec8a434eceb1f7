package ddaebm_test

import (
	"errors"
	"fmt"
	"log"
	"math"

	ddaebm "github.com/ddaebm/ddaebm/bindings/go"
)

func Example() {
	model, err := ddaebm.Open(fixturePath("model.safetensors"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer model.Close()

	rows := []float32{
		2, 0, 1, 10, // like the training data
		30, -30, 5, -20, // far away from it
	}
	_, ood, err := model.Screen(rows, len(rows)/model.InputDim())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("out-of-distribution:", ood)
	// Output: out-of-distribution: [false true]
}

func Example_errors() {
	model, err := ddaebm.Open(fixturePath("model.safetensors"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer model.Close()

	_, err = model.Energy([]float32{1, float32(math.NaN()), 0, 0}, 1)
	fmt.Println(errors.Is(err, ddaebm.StatusNonFinite))
	var e *ddaebm.Error
	if errors.As(err, &e) {
		fmt.Println(e.Status)
	}
	// Output:
	// true
	// DDAEBM_ERR_NON_FINITE: NaN or Inf in the input
}

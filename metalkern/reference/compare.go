package reference

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/orchardkit/orchard/metalkern/npy"
)

// RelErr returns ‖out − ref‖₂ / ‖ref‖₂, the error measure orchard judges
// kernel outputs by (against a float64 reference). If ‖ref‖₂ is 0 it returns
// the absolute ‖out − ref‖₂ instead. A NaN or Inf in out yields NaN or +Inf,
// which fails every tolerance. It panics if the lengths differ.
func RelErr(out []float32, ref []float64) float64 {
	if len(out) != len(ref) {
		panic(fmt.Sprintf("metalkern: RelErr: len(out) = %d, len(ref) = %d", len(out), len(ref)))
	}
	var num, den float64
	for i, r := range ref {
		e := float64(out[i]) - r
		num += e * e
		den += r * r
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num) / math.Sqrt(den)
}

// HasNonFinite reports the index of the first NaN or ±Inf in x; ok is false
// when every element is finite.
func HasNonFinite(x []float32) (index int, ok bool) {
	for i, v := range x {
		// The exponent field is all ones for exactly the non-finite values.
		if math.Float32bits(v)&0x7f800000 == 0x7f800000 {
			return i, true
		}
	}
	return -1, false
}

// Comparison is one output measured against its reference.
type Comparison struct {
	// RelErr is RelErr(out, ref); NaN when an element of out is not finite.
	RelErr float64
	// NonFinite is the index of the first NaN or ±Inf in out, -1 if none.
	NonFinite int
	// Value is out[NonFinite] (when NonFinite >= 0).
	Value float32
}

// Compare measures out against ref. A non-finite element is reported as
// such, with its index, never folded into an error figure. It panics if the
// lengths differ.
func Compare(out []float32, ref []float64) Comparison {
	if i, bad := HasNonFinite(out); bad {
		return Comparison{RelErr: math.NaN(), NonFinite: i, Value: out[i]}
	}
	return Comparison{RelErr: RelErr(out, ref), NonFinite: -1}
}

// Finite reports whether every element of out was finite.
func (c Comparison) Finite() bool { return c.NonFinite < 0 }

// Within reports whether out is finite and within maxRelErr of ref.
func (c Comparison) Within(maxRelErr float64) bool { return c.Finite() && c.RelErr <= maxRelErr }

// Badness orders comparisons from best to worst: the relative error, and
// +Inf for a non-finite output (worse than any error).
func (c Comparison) Badness() float64 {
	if !c.Finite() {
		return math.Inf(1)
	}
	return c.RelErr
}

// String is the error figure ("3.1e-07") or the first non-finite element
// ("NaN at [17]"); shape, when given, turns the flat index into
// coordinates ("NaN at [0,1,4,2]").
func (c Comparison) String(shape ...int) string {
	if c.Finite() {
		return fmt.Sprintf("%.1e", c.RelErr)
	}
	v := "NaN"
	switch {
	case math.IsInf(float64(c.Value), 1):
		v = "+Inf"
	case math.IsInf(float64(c.Value), -1):
		v = "-Inf"
	}
	return v + " at " + Index(c.NonFinite, shape)
}

// Index writes the flat (row-major) index i as coordinates in shape
// ("[0,1,4,2]"), or as "[i]" without a shape.
func Index(i int, shape []int) string {
	if len(shape) == 0 {
		return fmt.Sprintf("[%d]", i)
	}
	co := make([]string, len(shape))
	for d := len(shape) - 1; d >= 0; d-- {
		n := max(shape[d], 1)
		co[d] = fmt.Sprint(i % n)
		i /= n
	}
	return "[" + strings.Join(co, ",") + "]"
}

// Tolerance is the acceptance criterion for one output tensor: every element
// finite and RelErr against the float64 reference at most MaxRelErr.
type Tolerance struct {
	DType     npy.DType // precision the kernel computed in
	MaxRelErr float64   // largest accepted ‖out − ref‖₂ / ‖ref‖₂
}

// The relative-error criteria for each precision.
const (
	Float32RelTol = 1e-5
	Float16RelTol = 5e-3
)

// ToleranceFor returns the criterion for outputs computed in dt.
func ToleranceFor(dt npy.DType) (Tolerance, error) {
	switch dt {
	case npy.Float32:
		return Tolerance{DType: npy.Float32, MaxRelErr: Float32RelTol}, nil
	case npy.Float16:
		return Tolerance{DType: npy.Float16, MaxRelErr: Float16RelTol}, nil
	}
	return Tolerance{}, fmt.Errorf("no tolerance for dtype %q; use %q or %q", dt, npy.Float32, npy.Float16)
}

// Check compares out with ref and returns the relative error, with an error
// naming the tensor if an element is not finite or the error exceeds the
// tolerance.
func (t Tolerance) Check(name string, out []float32, ref []float64) (float64, error) {
	if len(out) != len(ref) {
		return math.NaN(), fmt.Errorf("%s: %d values, reference has %d", name, len(out), len(ref))
	}
	if i, bad := HasNonFinite(out); bad {
		return math.NaN(), fmt.Errorf("%s[%d] = %v: outputs must be finite (NaN often means an element was never written)", name, i, out[i])
	}
	rel := RelErr(out, ref)
	if !(rel <= t.MaxRelErr) {
		return rel, fmt.Errorf("%s: relative error %.3g exceeds the %s tolerance %.0e", name, rel, t.DType, t.MaxRelErr)
	}
	return rel, nil
}

// RandNormal returns n standard-normal float32 values drawn from rng. No value
// is zero, and none rounds to zero in float16 (|x| > 2^-25), so the same
// inputs serve both precisions and an unwritten (zeroed) buffer can never
// look like valid input.
func RandNormal(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		for {
			v := float32(rng.NormFloat64())
			if npy.Float32ToFloat16(v)&0x7fff != 0 {
				x[i] = v
				break
			}
		}
	}
	return x
}

// Float64s widens x to float64, e.g. to feed RandNormal's output to the
// reference.
func Float64s(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

package reference

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/orchardkit/orchard/metalkern/npy"
)

func TestRelErr(t *testing.T) {
	nan := float32(math.NaN())
	for _, c := range []struct {
		out  []float32
		ref  []float64
		want float64
	}{
		{[]float32{1, 2}, []float64{1, 2}, 0},
		{[]float32{0, 0}, []float64{3, 4}, 1},
		{[]float32{3, 5}, []float64{3, 4}, 0.2},
		{[]float32{3, 4}, []float64{0, 0}, 5}, // ‖ref‖ = 0: absolute norm
		{nil, nil, 0},
	} {
		if got := RelErr(c.out, c.ref); math.Abs(got-c.want) > 1e-15 {
			t.Errorf("RelErr(%v, %v) = %v, want %v", c.out, c.ref, got, c.want)
		}
	}
	if got := RelErr([]float32{1, nan}, []float64{1, 1}); !math.IsNaN(got) {
		t.Errorf("NaN output: RelErr = %v, want NaN", got)
	}
	if got := RelErr([]float32{float32(math.Inf(1))}, []float64{1}); !math.IsInf(got, 1) {
		t.Errorf("Inf output: RelErr = %v, want +Inf", got)
	}
	// float32 squares that would overflow float32 are fine in float64.
	if got := RelErr([]float32{0x1p100, 1}, []float64{0x1p100, 0}); got != 0x1p-100 {
		t.Errorf("large values: RelErr = %v", got)
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "len(out) = 1, len(ref) = 2") {
			t.Errorf("length mismatch: panic %v", r)
		}
	}()
	RelErr([]float32{1}, []float64{1, 2})
}

func TestHasNonFinite(t *testing.T) {
	inf := float32(math.Inf(1))
	for _, c := range []struct {
		x     []float32
		index int
		ok    bool
	}{
		{nil, -1, false},
		{[]float32{0, -1, math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32}, -1, false},
		{[]float32{0, 1, float32(math.NaN()), inf}, 2, true},
		{[]float32{inf}, 0, true},
		{[]float32{1, 2, -inf}, 2, true},
		{[]float32{1, math.Float32frombits(0xff800001)}, 1, true}, // negative signalling NaN
	} {
		i, ok := HasNonFinite(c.x)
		if i != c.index || ok != c.ok {
			t.Errorf("HasNonFinite(%v) = %d, %v; want %d, %v", c.x, i, ok, c.index, c.ok)
		}
	}
}

func TestToleranceFor(t *testing.T) {
	f32, err := ToleranceFor(npy.Float32)
	if err != nil || f32.MaxRelErr != 1e-5 {
		t.Fatalf("float32: %+v %v", f32, err)
	}
	f16, err := ToleranceFor(npy.Float16)
	if err != nil || f16.MaxRelErr != 5e-3 {
		t.Fatalf("float16: %+v %v", f16, err)
	}
	if _, err := ToleranceFor("bfloat16"); err == nil || !strings.Contains(err.Error(), `"bfloat16"`) {
		t.Fatalf("bfloat16: %v", err)
	}
}

func toFloat32(x []float64, round func(float32) float32) []float32 {
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = round(float32(v))
	}
	return y
}

// The criteria separate correct results at each precision from wrong ones:
// the float64 reference rounded to float32 or float16 passes its tolerance,
// float16 rounding fails the float32 one, and a subtly wrong attention
// (the causal mask off by one key) fails both.
func TestToleranceSeparatesRightFromWrong(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	s := Shape{B: 2, H: 2, Nq: 64, Nk: 64, D: 32}
	in := newInputs(rng, s)
	scale := DefaultScale(s.D)
	ref, _ := Forward(in.q, in.k, in.v, s, true, scale)
	f32, _ := ToleranceFor(npy.Float32)
	f16, _ := ToleranceFor(npy.Float16)
	identity := func(x float32) float32 { return x }

	if rel, err := f32.Check("O", toFloat32(ref, identity), ref); err != nil || rel > 1e-7 {
		t.Errorf("float32-rounded reference: rel %.3g, %v", rel, err)
	}
	half := toFloat32(ref, npy.RoundToFloat16)
	rel, err := f16.Check("O", half, ref)
	t.Logf("float16-rounded reference: rel %.3g", rel)
	if err != nil || rel < 1e-5 {
		t.Errorf("float16-rounded reference: rel %.3g, %v", rel, err)
	}
	if _, err := f32.Check("O", half, ref); err == nil || !strings.Contains(err.Error(), "exceeds the float32 tolerance 1e-05") {
		t.Errorf("float16 rounding passed the float32 tolerance: %v", err)
	}

	// An off-by-one causal mask: query i also sees key i+1.
	wrong, _ := naiveForward(in.q, in.k, in.v, s, true, 1, scale)
	for _, tol := range []Tolerance{f32, f16} {
		rel, err := tol.Check("O", toFloat32(wrong, identity), ref)
		if err == nil {
			t.Errorf("%s tolerance accepted a wrong causal mask (rel %.3g)", tol.DType, rel)
		}
		t.Logf("off-by-one mask: rel %.3g", rel)
	}

	// A NaN (e.g. an element never written) fails with its index.
	bad := toFloat32(ref, identity)
	bad[77] = float32(math.NaN())
	if _, err := f16.Check("dQ", bad, ref); err == nil || !strings.Contains(err.Error(), "dQ[77] = NaN") {
		t.Errorf("NaN: %v", err)
	}
	if _, err := f16.Check("dK", bad[:3], ref); err == nil || !strings.Contains(err.Error(), "dK: 3 values, reference has") {
		t.Errorf("length mismatch: %v", err)
	}
}

func TestRandNormal(t *testing.T) {
	a := RandNormal(rand.New(rand.NewPCG(5, 6)), 200000)
	b := RandNormal(rand.New(rand.NewPCG(5, 6)), 200000)
	c := RandNormal(rand.New(rand.NewPCG(5, 7)), 200000)
	var sum, sq float64
	same := 0
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed, element %d differs", i)
		}
		if a[i] == c[i] {
			same++
		}
		if a[i] == 0 || npy.RoundToFloat16(a[i]) == 0 {
			t.Fatalf("element %d = %v rounds to zero", i, a[i])
		}
		sum += float64(a[i])
		sq += float64(a[i]) * float64(a[i])
	}
	if same > 10 {
		t.Errorf("different seeds agree on %d elements", same)
	}
	n := float64(len(a))
	mean, variance := sum/n, sq/n-(sum/n)*(sum/n)
	if math.Abs(mean) > 0.01 || math.Abs(variance-1) > 0.02 {
		t.Errorf("mean %.4f variance %.4f, want about 0 and 1", mean, variance)
	}
	if got := RandNormal(rand.New(rand.NewPCG(1, 1)), 0); len(got) != 0 {
		t.Errorf("n = 0: %v", got)
	}
}

func TestCompareNamesTheFirstNonFiniteElement(t *testing.T) {
	ref := []float64{1, 2, 3, 4, 5, 6}
	nan := float32(math.NaN())
	for _, tc := range []struct {
		out   []float32
		shape []int
		want  string
	}{
		{[]float32{1, 2, 3, 4, 5, 6}, nil, "0.0e+00"},
		{[]float32{1, 2, 3, nan, 5, nan}, []int{2, 3}, "NaN at [1,0]"},
		{[]float32{1, float32(math.Inf(-1)), 3, 4, 5, 6}, nil, "-Inf at [1]"},
		{[]float32{1, 2, 3, 4, 5, float32(math.Inf(1))}, []int{1, 2, 3}, "+Inf at [0,1,2]"},
	} {
		c := Compare(tc.out, ref)
		if got := c.String(tc.shape...); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.out, got, tc.want)
		}
		if !c.Finite() && (c.Within(1) || !math.IsInf(c.Badness(), 1)) {
			t.Errorf("%v: a non-finite output passes or ranks below an error: %+v", tc.out, c)
		}
	}
}

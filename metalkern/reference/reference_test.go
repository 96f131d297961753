package reference

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

type attnInputs struct {
	q, k, v, dout []float64
}

func newInputs(rng *rand.Rand, s Shape) attnInputs {
	return attnInputs{
		q:    Float64s(RandNormal(rng, s.QLen())),
		k:    Float64s(RandNormal(rng, s.KVLen())),
		v:    Float64s(RandNormal(rng, s.KVLen())),
		dout: Float64s(RandNormal(rng, s.QLen())),
	}
}

// naiveForward builds the full masked score matrix and applies the softmax
// definition directly: exp(S) / sum exp(S), without max subtraction. Query i
// sees keys j <= i+shift when causal.
func naiveForward(q, k, v []float64, s Shape, causal bool, shift int, scale float64) (o, lse []float64) {
	o = make([]float64, s.QLen())
	lse = make([]float64, s.Rows())
	for bh := range s.B * s.H {
		for i := range s.Nq {
			w := make([]float64, s.Nk)
			var z float64
			for j := range s.Nk {
				if causal && j > i+shift {
					continue
				}
				var sc float64
				for c := range s.D {
					sc += q[(bh*s.Nq+i)*s.D+c] * k[(bh*s.Nk+j)*s.D+c]
				}
				w[j] = math.Exp(scale * sc)
				z += w[j]
			}
			lse[bh*s.Nq+i] = math.Log(z)
			for j := range s.Nk {
				for c := range s.D {
					o[(bh*s.Nq+i)*s.D+c] += w[j] / z * v[(bh*s.Nk+j)*s.D+c]
				}
			}
		}
	}
	return o, lse
}

func relDiff(a, b []float64) float64 {
	var num, den float64
	for i := range a {
		num += (a[i] - b[i]) * (a[i] - b[i])
		den += b[i] * b[i]
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

var testShapes = []Shape{
	{1, 1, 1, 1, 1},
	{1, 1, 4, 4, 3},
	{2, 3, 5, 5, 8},
	{1, 2, 7, 3, 1}, // Nq > Nk, D = 1
	{2, 1, 3, 9, 5}, // Nq < Nk, D odd
	{1, 1, 17, 17, 64},
}

func TestReferenceForwardMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	for _, s := range testShapes {
		for _, causal := range []bool{false, true} {
			in := newInputs(rng, s)
			scale := DefaultScale(s.D)
			o, lse := Forward(in.q, in.k, in.v, s, causal, scale)
			wo, wl := naiveForward(in.q, in.k, in.v, s, causal, 0, scale)
			if d := relDiff(o, wo); d > 1e-13 {
				t.Errorf("%+v causal=%v: O differs from naive softmax by %.2g", s, causal, d)
			}
			if d := relDiff(lse, wl); d > 1e-13 {
				t.Errorf("%+v causal=%v: LSE differs from naive by %.2g", s, causal, d)
			}
		}
	}
}

// Causal masking is top-left: query i sees keys 0..i.
func TestReferenceCausalTopLeft(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	s := Shape{1, 1, 3, 5, 4}
	in := newInputs(rng, s)
	o, _ := Forward(in.q, in.k, in.v, s, true, 0.5)
	for c := range s.D { // row 0 sees only key 0, so O[0] = V[0]
		if math.Abs(o[c]-in.v[c]) > 1e-15 {
			t.Fatalf("O[0] = %v, want V[0] = %v", o[:s.D], in.v[:s.D])
		}
	}
	// Keys 3 and 4 are beyond every query row (Nq = 3): changing them
	// changes nothing.
	for i := 3 * s.D; i < len(in.k); i++ {
		in.k[i] += 10
		in.v[i] -= 7
	}
	o2, _ := Forward(in.q, in.k, in.v, s, true, 0.5)
	if d := relDiff(o2, o); d != 0 {
		t.Fatalf("keys beyond the top-left diagonal changed O by %g", d)
	}

	// Nq > Nk: rows i >= Nk see every key, like the non-causal result.
	s = Shape{1, 1, 6, 2, 3}
	in = newInputs(rng, s)
	oc, lc := Forward(in.q, in.k, in.v, s, true, 1)
	on, ln := Forward(in.q, in.k, in.v, s, false, 1)
	for i := 1; i < s.Nq; i++ {
		if lc[i] != ln[i] || relDiff(oc[i*s.D:(i+1)*s.D], on[i*s.D:(i+1)*s.D]) != 0 {
			t.Fatalf("row %d: causal and non-causal differ though the row sees all keys", i)
		}
	}
	if lc[0] == ln[0] {
		t.Fatal("row 0 should see only key 0 under the causal mask")
	}
}

func TestReferenceInvariances(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 26))
	s := Shape{2, 2, 6, 9, 5}
	in := newInputs(rng, s)
	o, lse := Forward(in.q, in.k, in.v, s, false, 0.7)

	// Permuting keys together with their values leaves O and LSE unchanged.
	perm := rng.Perm(s.Nk)
	pk, pv := make([]float64, len(in.k)), make([]float64, len(in.v))
	for bh := range s.B * s.H {
		for j, pj := range perm {
			copy(pk[(bh*s.Nk+j)*s.D:][:s.D], in.k[(bh*s.Nk+pj)*s.D:][:s.D])
			copy(pv[(bh*s.Nk+j)*s.D:][:s.D], in.v[(bh*s.Nk+pj)*s.D:][:s.D])
		}
	}
	po, plse := Forward(in.q, pk, pv, s, false, 0.7)
	if d := relDiff(po, o); d > 1e-14 {
		t.Errorf("permuting keys changed O by %.2g", d)
	}
	if d := relDiff(plse, lse); d > 1e-14 {
		t.Errorf("permuting keys changed LSE by %.2g", d)
	}

	// O is a convex combination of V rows: adding a constant to every V
	// entry adds it to every O entry.
	shifted := make([]float64, len(in.v))
	for i, x := range in.v {
		shifted[i] = x + 3
	}
	so, _ := Forward(in.q, in.k, shifted, s, false, 0.7)
	for i := range so {
		if math.Abs(so[i]-o[i]-3) > 1e-12 {
			t.Fatalf("O[%d]: shifting V by 3 moved it by %v", i, so[i]-o[i])
		}
	}
}

func TestReferenceLargeScoresStayFinite(t *testing.T) {
	rng := rand.New(rand.NewPCG(27, 28))
	s := Shape{1, 1, 8, 8, 16}
	in := newInputs(rng, s)
	// Scores reach thousands: exp would overflow without max subtraction.
	o, lse := Forward(in.q, in.k, in.v, s, true, 500)
	dq, dk, dv := Backward(in.q, in.k, in.v, o, lse, in.dout, s, true, 500)
	for name, x := range map[string][]float64{"O": o, "LSE": lse, "dQ": dq, "dK": dk, "dV": dv} {
		for i, v := range x {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("%s[%d] = %v", name, i, v)
			}
		}
	}
}

func TestReferenceNoKeys(t *testing.T) {
	s := Shape{1, 2, 3, 0, 4}
	q := make([]float64, s.QLen())
	for i := range q {
		q[i] = 1
	}
	o, lse := Forward(q, nil, nil, s, true, 1)
	for i := range o {
		if o[i] != 0 {
			t.Fatalf("O[%d] = %v, want 0 for a row with no keys", i, o[i])
		}
	}
	for i := range lse {
		if !math.IsInf(lse[i], -1) {
			t.Fatalf("LSE[%d] = %v, want -Inf for a row with no keys", i, lse[i])
		}
	}
	dq, dk, dv := Backward(q, nil, nil, o, lse, q, s, true, 1)
	if len(dk) != 0 || len(dv) != 0 {
		t.Fatal("dK, dV should be empty")
	}
	for i := range dq {
		if dq[i] != 0 {
			t.Fatalf("dQ[%d] = %v, want 0", i, dq[i])
		}
	}
}

// loss is sum(dout ∘ O), the function whose gradient Backward gives.
func loss(in attnInputs, s Shape, causal bool, scale float64) float64 {
	o, _ := Forward(in.q, in.k, in.v, s, causal, scale)
	var l float64
	for i := range o {
		l += in.dout[i] * o[i]
	}
	return l
}

func TestReferenceBackwardFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(29, 30))
	shapes := []Shape{
		{1, 1, 1, 1, 1},
		{1, 1, 4, 4, 3},
		{2, 2, 5, 3, 1}, // Nq > Nk, D = 1
		{1, 2, 3, 7, 5}, // Nq < Nk, D odd
		{1, 1, 6, 6, 8},
	}
	const h = 1e-5
	for _, s := range shapes {
		for _, causal := range []bool{false, true} {
			in := newInputs(rng, s)
			scale := DefaultScale(s.D) * 1.3
			o, lse := Forward(in.q, in.k, in.v, s, causal, scale)
			dq, dk, dv := Backward(in.q, in.k, in.v, o, lse, in.dout, s, causal, scale)
			for _, g := range []struct {
				name     string
				x        []float64
				analytic []float64
			}{{"dQ", in.q, dq}, {"dK", in.k, dk}, {"dV", in.v, dv}} {
				numeric := make([]float64, len(g.x))
				for i := range g.x {
					x0 := g.x[i]
					g.x[i] = x0 + h
					lp := loss(in, s, causal, scale)
					g.x[i] = x0 - h
					lm := loss(in, s, causal, scale)
					g.x[i] = x0
					numeric[i] = (lp - lm) / (2 * h)
				}
				if d := relDiff(g.analytic, numeric); d > 1e-8 {
					t.Errorf("%+v causal=%v: %s differs from central differences by %.2g\n analytic %.6g\n numeric  %.6g",
						s, causal, g.name, d, g.analytic, numeric)
				}
			}
		}
	}
}

// The rows of dS sum to zero, so dK summed over keys vanishes per head.
func TestReferenceBackwardKeySumIsZero(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	s := Shape{2, 2, 9, 13, 6}
	in := newInputs(rng, s)
	o, lse := Forward(in.q, in.k, in.v, s, true, 0.4)
	_, dk, _ := Backward(in.q, in.k, in.v, o, lse, in.dout, s, true, 0.4)
	for bh := range s.B * s.H {
		for c := range s.D {
			var sum, mag float64
			for j := range s.Nk {
				sum += dk[(bh*s.Nk+j)*s.D+c]
				mag += math.Abs(dk[(bh*s.Nk+j)*s.D+c])
			}
			if math.Abs(sum) > 1e-12*mag {
				t.Fatalf("head %d column %d: sum of dK = %g (magnitude %g)", bh, c, sum, mag)
			}
		}
	}
}

// Heads are independent: the parallel run over B*H heads gives, bit for bit,
// what each head computed alone gives.
func TestReferenceHeadsIndependent(t *testing.T) {
	rng := rand.New(rand.NewPCG(33, 34))
	s := Shape{3, 5, 6, 7, 4}
	in := newInputs(rng, s)
	o, lse := Forward(in.q, in.k, in.v, s, true, 0.5)
	dq, dk, dv := Backward(in.q, in.k, in.v, o, lse, in.dout, s, true, 0.5)
	one := Shape{1, 1, s.Nq, s.Nk, s.D}
	qn, kn := one.QLen(), one.KVLen()
	for bh := range s.B * s.H {
		q, k, v := in.q[bh*qn:][:qn], in.k[bh*kn:][:kn], in.v[bh*kn:][:kn]
		ho, hl := Forward(q, k, v, one, true, 0.5)
		hq, hk, hv := Backward(q, k, v, ho, hl, in.dout[bh*qn:][:qn], one, true, 0.5)
		for _, c := range []struct {
			name      string
			all, head []float64
			n         int
		}{{"O", o, ho, qn}, {"LSE", lse, hl, s.Nq}, {"dQ", dq, hq, qn}, {"dK", dk, hk, kn}, {"dV", dv, hv, kn}} {
			for i, x := range c.head {
				if c.all[bh*c.n+i] != x {
					t.Fatalf("head %d: %s[%d] = %v in the batched run, %v alone", bh, c.name, i, c.all[bh*c.n+i], x)
				}
			}
		}
	}
}

func TestReferencePanicsOnBadLengths(t *testing.T) {
	s := Shape{1, 2, 3, 4, 5}
	defer func() {
		r := recover()
		if msg, _ := r.(string); !strings.Contains(msg, "len(k) = 39, shape") || !strings.Contains(msg, "needs 40") {
			t.Fatalf("panic %v", r)
		}
	}()
	Forward(make([]float64, s.QLen()), make([]float64, s.KVLen()-1), make([]float64, s.KVLen()), s, false, 1)
}

func TestAttnShape(t *testing.T) {
	s := Shape{B: 2, H: 3, Nq: 5, Nk: 7, D: 11}
	if s.QLen() != 330 || s.KVLen() != 462 || s.Rows() != 30 {
		t.Fatalf("lengths %d %d %d", s.QLen(), s.KVLen(), s.Rows())
	}
	if s.Validate() != nil {
		t.Fatal(s.Validate())
	}
	if err := (Shape{1, 1, 4, 4, 0}).Validate(); err == nil || !strings.Contains(err.Error(), "D >= 1") {
		t.Fatalf("D = 0: %v", err)
	}
	if err := (Shape{1, -1, 4, 4, 4}).Validate(); err == nil {
		t.Fatal("negative H accepted")
	}
	if DefaultScale(64) != 0.125 || DefaultScale(1) != 1 {
		t.Fatalf("DefaultScale(64) = %v", DefaultScale(64))
	}
}

func BenchmarkReferenceForward(b *testing.B) {
	s := Shape{B: 1, H: 1, Nq: 256, Nk: 256, D: 64}
	in := newInputs(rand.New(rand.NewPCG(1, 1)), s)
	scale := DefaultScale(s.D)
	b.ReportAllocs()
	for b.Loop() {
		Forward(in.q, in.k, in.v, s, false, scale)
	}
}

func BenchmarkReferenceBackward(b *testing.B) {
	s := Shape{B: 1, H: 1, Nq: 256, Nk: 256, D: 64}
	in := newInputs(rand.New(rand.NewPCG(1, 1)), s)
	scale := DefaultScale(s.D)
	o, lse := Forward(in.q, in.k, in.v, s, false, scale)
	b.ReportAllocs()
	for b.Loop() {
		Backward(in.q, in.k, in.v, o, lse, in.dout, s, false, scale)
	}
}

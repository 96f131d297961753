package metalkern

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// SmokeCase is one shape of the built-in smoke suite.
type SmokeCase struct {
	Shape  AttnShape
	Causal bool
	DType  DType
}

// Name is a stable, readable id: "f32-causal-b1h2-77x77-d80".
func (c SmokeCase) Name() string {
	dt := "f32"
	if c.DType == Float16 {
		dt = "f16"
	}
	mask := "full"
	if c.Causal {
		mask = "causal"
	}
	s := c.Shape
	return fmt.Sprintf("%s-%s-b%dh%d-%dx%d-d%d", dt, mask, s.B, s.H, s.Nq, s.Nk, s.D)
}

// SmokeSuite returns the built-in cases: awkward sizes (tails in every
// dimension), head dims 1..256, Nq ≠ Nk, causal and not, float32 and
// float16, several batch×heads. 44 cases.
//
// Composition (docs/perf.md: the suite must stay within a few seconds on
// fibers; a case costs roughly Nq·Nk·bd·B·H):
//   - the small and the odd shapes (1×1 … 99×35, 33×256 at the largest head
//     dim, and Nq ≠ Nk both ways) run all four dtype × mask combinations,
//     the tiny ones with B·H = 6 and the others with B·H = 2;
//   - the four large shapes run two cases each, chosen so that each of them
//     still sees both dtypes AND both masks: (float32, causal) + (float16,
//     full) or the converse, alternating so that every combination occurs
//     on a large shape too; the largest, 384×384 at D=95, runs one head
//     (it alone was half of the suite's time), 256×64 keeps B·H = 2.
func SmokeSuite() []SmokeCase {
	type combo struct {
		dt     DType
		causal bool
	}
	all := []combo{{Float32, false}, {Float32, true}, {Float16, false}, {Float16, true}}
	f32CausalF16Full := []combo{{Float32, true}, {Float16, false}}
	f32FullF16Causal := []combo{{Float32, false}, {Float16, true}}
	shapes := []struct {
		nq, nk, d, b, h int
		combos          []combo
	}{
		{1, 1, 1, 2, 3, all}, {4, 4, 1, 2, 3, all}, {10, 10, 3, 2, 3, all}, {64, 64, 64, 2, 3, all},
		{77, 77, 80, 1, 2, all}, {99, 99, 35, 1, 2, all},
		{128, 128, 128, 1, 2, f32FullF16Causal}, {192, 192, 77, 1, 2, f32CausalF16Full},
		{256, 256, 64, 1, 2, f32FullF16Causal}, {384, 384, 95, 1, 1, f32CausalF16Full},
		{33, 33, 256, 1, 2, all}, {50, 130, 64, 1, 2, all}, {130, 50, 64, 1, 2, all},
	}
	var out []SmokeCase
	for _, s := range shapes {
		for _, c := range s.combos {
			out = append(out, SmokeCase{Shape: AttnShape{B: s.b, H: s.h, Nq: s.nq, Nk: s.nk, D: s.d}, Causal: c.causal, DType: c.dt})
		}
	}
	return out
}

// RaceSuite is the few small cases run under ThreadSanitizer.
func RaceSuite() []SmokeCase {
	return []SmokeCase{
		{Shape: AttnShape{B: 1, H: 1, Nq: 20, Nk: 20, D: 16}, Causal: true, DType: Float32},
		{Shape: AttnShape{B: 1, H: 1, Nq: 17, Nk: 9, D: 8}, Causal: false, DType: Float16},
	}
}

// CaseResult is one case's outcome: relative errors per output.
type CaseResult struct {
	Case       SmokeCase
	Errors     map[string]float64 // o, lse, dq, dk, dv -> ‖out−ref‖/‖ref‖
	Failures   []string           // what broke the criteria
	Dispatches map[string]int
	Elapsed    time.Duration
	Err        error // the runner failed
}

// Forward and Backward say whether the case passed each half.
func (r CaseResult) passed(outputs ...string) bool {
	if r.Err != nil {
		return false
	}
	for _, f := range r.Failures {
		for _, o := range outputs {
			if strings.HasPrefix(f, o+":") {
				return false
			}
		}
	}
	return true
}

// ForwardOK reports whether O and L met the criteria.
func (r CaseResult) ForwardOK() bool { return r.passed("o", "lse") }

// BackwardOK reports whether dQ, dK and dV met the criteria.
func (r CaseResult) BackwardOK() bool { return r.passed("dq", "dk", "dv") }

// RunSmoke runs cases through the runner against the float64 reference.
// Inputs are fresh normal values from seed (never zeros) written as .npy in
// dir/<case>/; the reference for each case is computed while the runner
// works.
func RunSmoke(ctx context.Context, exec Exec, r Runner, dir string, seed uint64, cases []SmokeCase, mode string, env []string, progress func(i int, c SmokeCase)) []CaseResult {
	rng := rand.New(rand.NewPCG(seed, 0x6f7263686172640a))
	out := make([]CaseResult, 0, len(cases))
	for i, c := range cases {
		if ctx.Err() != nil {
			break
		}
		if progress != nil {
			progress(i, c)
		}
		out = append(out, runCase(ctx, exec, r, filepath.Join(dir, c.Name()), rng, c, mode, env))
	}
	return out
}

func runCase(ctx context.Context, exec Exec, r Runner, dir string, rng *rand.Rand, c SmokeCase, mode string, env []string) CaseResult {
	res := CaseResult{Case: c, Errors: map[string]float64{}}
	start := time.Now()
	s := c.Shape
	qs := []int{s.B, s.H, s.Nq, s.D}
	ks := []int{s.B, s.H, s.Nk, s.D}
	in := map[string]*Array{
		"q":  {Shape: qs, DType: c.DType, Data: RandNormal(rng, s.QLen())},
		"k":  {Shape: ks, DType: c.DType, Data: RandNormal(rng, s.KVLen())},
		"v":  {Shape: ks, DType: c.DType, Data: RandNormal(rng, s.KVLen())},
		"do": {Shape: qs, DType: c.DType, Data: RandNormal(rng, s.QLen())},
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		res.Err = err
		return res
	}
	for name, a := range in {
		if c.DType == Float16 {
			for i, v := range a.Data {
				a.Data[i] = RoundToFloat16(v) // the reference sees what the kernel sees
			}
		}
		if err := WriteNPY(filepath.Join(dir, name+".npy"), a); err != nil {
			res.Err = err
			return res
		}
	}
	scale := DefaultScale(s.D)
	type ref struct{ o, lse, dq, dk, dv []float64 }
	refc := make(chan ref, 1)
	go func() {
		q, k, v, do := Float64s(in["q"].Data), Float64s(in["k"].Data), Float64s(in["v"].Data), Float64s(in["do"].Data)
		o, lse := ReferenceForward(q, k, v, s, c.Causal, scale)
		dq, dk, dv := ReferenceBackward(q, k, v, o, lse, do, s, c.Causal, scale)
		refc <- ref{o, lse, dq, dk, dv}
	}()
	outDir := filepath.Join(dir, "out")
	os.RemoveAll(outDir)
	st, err := r.Run(ctx, exec, Request{
		Q: filepath.Join(dir, "q.npy"), K: filepath.Join(dir, "k.npy"), V: filepath.Join(dir, "v.npy"),
		DO: filepath.Join(dir, "do.npy"), Causal: c.Causal, Out: outDir, Mode: mode, Env: env,
	})
	rf := <-refc
	res.Elapsed = time.Since(start)
	res.Dispatches = st.Dispatches
	if err != nil {
		res.Err = err
		return res
	}
	tol, _ := ToleranceFor(c.DType)
	for _, o := range []struct {
		name string
		ref  []float64
		tol  float64
	}{{"o", rf.o, tol.MaxRelErr}, {"lse", rf.lse, tol.MaxRelErr}, {"dq", rf.dq, tol.MaxRelErr}, {"dk", rf.dk, tol.MaxRelErr}, {"dv", rf.dv, tol.MaxRelErr}} {
		a, err := ReadNPY(filepath.Join(outDir, o.name+".npy"))
		if err != nil {
			res.Failures = append(res.Failures, fmt.Sprintf("%s: %v", o.name, err))
			continue
		}
		if len(a.Data) != len(o.ref) {
			res.Failures = append(res.Failures, fmt.Sprintf("%s: %d elements, want %d", o.name, len(a.Data), len(o.ref)))
			continue
		}
		if i, bad := HasNonFinite(a.Data); bad {
			res.Failures = append(res.Failures, fmt.Sprintf("%s: element %d is %v (unwritten or overflow)", o.name, i, a.Data[i]))
			continue
		}
		e := RelErr(a.Data, o.ref)
		res.Errors[o.name] = e
		if !(e <= o.tol) {
			res.Failures = append(res.Failures, fmt.Sprintf("%s: relative error %.2e > %.0e", o.name, e, o.tol))
		}
	}
	return res
}

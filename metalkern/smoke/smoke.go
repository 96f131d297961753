// Package smoke is the built-in smoke suite: the awkward shapes, dtypes and
// masks the kernels must get right, run through the runner and compared with
// the float64 reference, case by case.
package smoke

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/orchardkit/orchard/metalkern"
	"github.com/orchardkit/orchard/metalkern/npy"
	"github.com/orchardkit/orchard/metalkern/reference"
)

// Case is one shape of the built-in smoke suite.
type Case struct {
	Shape  reference.Shape
	Causal bool
	DType  npy.DType
	// Storage is where the runner keeps the tensors (metalkern.Storages;
	// "" = the runner's default, shared).
	Storage string
	// BufferOffset binds every tensor this many bytes into its buffer (a
	// multiple of 4; the runner's --buffer-offset test knob). 0 = none.
	BufferOffset int
}

// StorageName is the case's storage mode, "shared" when unset.
func (c Case) StorageName() string {
	if c.Storage == "" {
		return metalkern.StorageShared
	}
	return c.Storage
}

// Name is a stable, readable id: "f32-causal-b1h2-77x77-d80".
func (c Case) Name() string {
	dt := "f32"
	if c.DType == npy.Float16 {
		dt = "f16"
	}
	mask := "full"
	if c.Causal {
		mask = "causal"
	}
	s := c.Shape
	return fmt.Sprintf("%s-%s-b%dh%d-%dx%d-d%d", dt, mask, s.B, s.H, s.Nq, s.Nk, s.D)
}

// Suite returns the built-in cases: awkward sizes (tails in every
// dimension), head dims 1..256, Nq ≠ Nk, causal and not, float32 and
// float16, several batch×heads. 44 cases, half in shared and half in
// private storage, so that the host's direct path and its staging path
// (private: a shared staging buffer and a copy) both run on every backend
// at no cost in cases.
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
//     (it alone was half of the suite's time), 256×64 keeps B·H = 2;
//   - storage: a four-combination shape runs shared, private, private,
//     shared (or the converse, alternating by shape), so it runs each dtype
//     and each mask in both modes (the staging copies differ by element
//     size) and the suite every dtype × mask combination in both; a
//     two-case shape runs one case in each mode.
func Suite() []Case {
	type combo struct {
		dt     npy.DType
		causal bool
	}
	all := []combo{{npy.Float32, false}, {npy.Float32, true}, {npy.Float16, false}, {npy.Float16, true}}
	f32CausalF16Full := []combo{{npy.Float32, true}, {npy.Float16, false}}
	f32FullF16Causal := []combo{{npy.Float32, false}, {npy.Float16, true}}
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
	var out []Case
	for k, s := range shapes {
		for j, c := range s.combos {
			out = append(out, Case{Shape: reference.Shape{B: s.b, H: s.h, Nq: s.nq, Nk: s.nk, D: s.d}, Causal: c.causal, DType: c.dt,
				Storage: metalkern.Storages[(j+j/2+k)%2]})
		}
	}
	return out
}

// RaceSuite is the few small cases run under ThreadSanitizer, one in each
// storage mode.
func RaceSuite() []Case {
	return []Case{
		{Shape: reference.Shape{B: 1, H: 1, Nq: 20, Nk: 20, D: 16}, Causal: true, DType: npy.Float32, Storage: metalkern.StorageShared},
		{Shape: reference.Shape{B: 1, H: 1, Nq: 17, Nk: 9, D: 8}, Causal: false, DType: npy.Float16, Storage: metalkern.StoragePrivate},
	}
}

// CaseResult is one case's outcome: each output measured against the
// float64 reference.
type CaseResult struct {
	Case Case
	// Compared maps o, lse, dq, dk, dv to the output's comparison (absent
	// when the output could not be read).
	Compared map[string]reference.Comparison
	// Errors maps the same names to ‖out−ref‖/‖ref‖ (NaN for an output with
	// a non-finite element).
	Errors     map[string]float64
	Failures   []string // what broke the criteria, one "<output>: why" each
	Dispatches map[string]int
	Elapsed    time.Duration
	// Err: the case could not run — the runner itself failed (crashed, was
	// killed, hung, exited with an error of its own) or its inputs could
	// not be written. Run stops at such a case.
	Err error
}

// Outputs are the names of the outputs every case checks, in report order.
var Outputs = []string{"o", "lse", "dq", "dk", "dv"}

// OutputShape is the shape of output name ("o", "lse", "dq", "dk", "dv").
func (c Case) OutputShape(name string) []int {
	s := c.Shape
	switch name {
	case "lse":
		return []int{s.B, s.H, s.Nq}
	case "dk", "dv":
		return []int{s.B, s.H, s.Nk, s.D}
	}
	return []int{s.B, s.H, s.Nq, s.D}
}

// Figure is output name's error figure for a report: "3.1e-07", "NaN at
// [0,1,4,2]", or "-" when it was not measured.
func (r CaseResult) Figure(name string) string {
	c, ok := r.Compared[name]
	if !ok {
		return "-"
	}
	return c.String(r.Case.OutputShape(name)...)
}

// Badness is the worst of the named outputs (reference.Comparison.Badness;
// +Inf for a non-finite or unreadable output).
func (r CaseResult) Badness(outputs ...string) float64 {
	w := 0.0
	for _, o := range outputs {
		c, ok := r.Compared[o]
		if !ok {
			return math.Inf(1)
		}
		w = max(w, c.Badness())
	}
	return w
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

// Run runs cases through the runner against the float64 reference.
// Inputs are fresh normal values from seed (never zeros) written as .npy in
// dir/<case>/; the reference for each case is computed while the runner
// works. Run stops after the first case that could not run (its Err is
// set: the runner crashed, hung or failed on its own), so the result may
// be shorter than cases; a case whose kernels ran but computed wrong
// numbers does not stop it.
func Run(ctx context.Context, exec metalkern.Exec, r metalkern.Runner, dir string, seed uint64, cases []Case, mode string, env []string, progress func(i int, c Case)) []CaseResult {
	rng := rand.New(rand.NewPCG(seed, 0x6f7263686172640a))
	out := make([]CaseResult, 0, len(cases))
	for i, c := range cases {
		if ctx.Err() != nil {
			break
		}
		if progress != nil {
			progress(i, c)
		}
		res := runCase(ctx, exec, r, filepath.Join(dir, c.Name()), rng, c, mode, env)
		out = append(out, res)
		if res.Err != nil {
			break
		}
	}
	return out
}

func runCase(ctx context.Context, exec metalkern.Exec, r metalkern.Runner, dir string, rng *rand.Rand, c Case, mode string, env []string) CaseResult {
	res := CaseResult{Case: c, Errors: map[string]float64{}, Compared: map[string]reference.Comparison{}}
	start := time.Now()
	s := c.Shape
	qs := []int{s.B, s.H, s.Nq, s.D}
	ks := []int{s.B, s.H, s.Nk, s.D}
	in := map[string]*npy.Array{
		"q":  {Shape: qs, DType: c.DType, Data: reference.RandNormal(rng, s.QLen())},
		"k":  {Shape: ks, DType: c.DType, Data: reference.RandNormal(rng, s.KVLen())},
		"v":  {Shape: ks, DType: c.DType, Data: reference.RandNormal(rng, s.KVLen())},
		"do": {Shape: qs, DType: c.DType, Data: reference.RandNormal(rng, s.QLen())},
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		res.Err = err
		return res
	}
	for name, a := range in {
		if c.DType == npy.Float16 {
			for i, v := range a.Data {
				a.Data[i] = npy.RoundToFloat16(v) // the reference sees what the kernel sees
			}
		}
		if err := npy.Write(filepath.Join(dir, name+".npy"), a); err != nil {
			res.Err = err
			return res
		}
	}
	scale := reference.DefaultScale(s.D)
	type ref struct{ o, lse, dq, dk, dv []float64 }
	refc := make(chan ref, 1)
	go func() {
		q, k, v, do := reference.Float64s(in["q"].Data), reference.Float64s(in["k"].Data), reference.Float64s(in["v"].Data), reference.Float64s(in["do"].Data)
		o, lse := reference.Forward(q, k, v, s, c.Causal, scale)
		dq, dk, dv := reference.Backward(q, k, v, o, lse, do, s, c.Causal, scale)
		refc <- ref{o, lse, dq, dk, dv}
	}()
	outDir := filepath.Join(dir, "out")
	os.RemoveAll(outDir)
	st, err := r.Run(ctx, exec, metalkern.Request{
		Q: filepath.Join(dir, "q.npy"), K: filepath.Join(dir, "k.npy"), V: filepath.Join(dir, "v.npy"),
		DO: filepath.Join(dir, "do.npy"), Causal: c.Causal, Out: outDir, Mode: mode, Env: env,
		Storage: c.Storage, BufferOffset: c.BufferOffset,
	})
	rf := <-refc
	res.Elapsed = time.Since(start)
	res.Dispatches = st.Dispatches
	if err != nil {
		res.Err = err
		return res
	}
	tol, _ := reference.ToleranceFor(c.DType)
	for _, o := range []struct {
		name string
		ref  []float64
		tol  float64
	}{{"o", rf.o, tol.MaxRelErr}, {"lse", rf.lse, tol.MaxRelErr}, {"dq", rf.dq, tol.MaxRelErr}, {"dk", rf.dk, tol.MaxRelErr}, {"dv", rf.dv, tol.MaxRelErr}} {
		a, err := npy.Read(filepath.Join(outDir, o.name+".npy"))
		if err != nil {
			res.Failures = append(res.Failures, fmt.Sprintf("%s: %v", o.name, err))
			continue
		}
		if len(a.Data) != len(o.ref) {
			res.Failures = append(res.Failures, fmt.Sprintf("%s: %d elements, want %d", o.name, len(a.Data), len(o.ref)))
			continue
		}
		cmp := reference.Compare(a.Data, o.ref)
		res.Compared[o.name], res.Errors[o.name] = cmp, cmp.RelErr
		switch {
		case !cmp.Finite():
			res.Failures = append(res.Failures, fmt.Sprintf("%s: %s (the first non-finite element; NaN often means it was never written)",
				o.name, cmp.String(c.OutputShape(o.name)...)))
		case !cmp.Within(o.tol):
			res.Failures = append(res.Failures, fmt.Sprintf("%s: relative error %.2e > %.0e", o.name, cmp.RelErr, o.tol))
		}
	}
	return res
}

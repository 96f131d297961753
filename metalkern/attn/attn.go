// Package attn runs the runtime's attention on a user's .npy tensors: it
// validates the inputs (headers first, against the runtime's limits and the
// memory the run needs, before any data is read), runs the built runner or
// the float64 reference, and writes the outputs into a directory
// all-or-nothing.
package attn

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"

	"github.com/orchardkit/orchard/metalkern"
	"github.com/orchardkit/orchard/metalkern/npy"
	"github.com/orchardkit/orchard/metalkern/reference"
)

// The --scale range the kernels accept. They hold scale and
// scale·log2(e) as float32 (AttnParams in include/orchard/params.h) and
// compute scores as (q·k)·scale·log2(e) in the exp2 domain, where a masked
// key scores kMaskScore = -1e30 (kernels/attn_common.h).
const (
	// MinScale is the smallest normal float32 (2^-126 ≈ 1.2e-38): GPUs
	// flush smaller (subnormal) values to zero.
	MinScale = 0x1p-126
	// MaxScale is 1e30·ln 2 ≈ 6.9e29, so scale·log2(e) ≤ 1e30: beyond it
	// even a unit dot product would score like a masked key.
	MaxScale = 1e30 * math.Ln2
)

// MaxElements is the most elements one tensor may hold: the kernels index
// with 32-bit ints (the runner refuses more; host/runner.cpp).
const MaxElements = math.MaxInt32

// MaxHeadDim is the largest head dim D the kernels support
// (kMaxHeadDim in host/select.h).
const MaxHeadDim = 256

// Outputs are the files Run writes into Options.Out, in order; the last
// three only with Options.DO. Run removes no other file.
var Outputs = []string{"o.npy", "lse.npy", "dq.npy", "dk.npy", "dv.npy"}

// Options is one run.
type Options struct {
	Q, K, V string // [B,H,Nq,D], [B,H,Nk,D], [B,H,Nk,D] .npy files
	DO      string // optional [B,H,Nq,D] output gradient: also compute dq, dk, dv
	Causal  bool
	Scale   float64 // 0: 1/sqrt(D); otherwise in [MinScale, MaxScale]
	Out     string  // output directory, created if missing
	// Storage is where the runner keeps the tensors: metalkern.StorageShared
	// or StoragePrivate ("" = shared). Unused with Reference.
	Storage string
	// AllowNonFinite accepts NaN and ±Inf in the inputs.
	AllowNonFinite bool
	// Reference computes in float64 in Go instead of running the runner.
	Reference bool
	// Runner returns the built runner. It is called only once the inputs
	// are valid, so bad input never starts a build. Unused with Reference.
	Runner func(context.Context) (metalkern.Runner, error)
	// Exec runs the runner process (e.g. PlainExec).
	Exec metalkern.Exec
	// Memory reports the bytes the run may use; ok false means unknown (no
	// check). Nil: the system's available memory (SystemMemory).
	Memory func() (avail uint64, ok bool)
}

// Result says what Run wrote.
type Result struct {
	Dir   string   // Options.Out
	Files []string // the outputs written, in Outputs order
}

// InputError is bad input: a flag, a tensor or the output directory.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

func inputErrorf(format string, args ...any) error {
	return &InputError{Msg: fmt.Sprintf(format, args...)}
}

// CheckScale returns an *InputError when a scale given explicitly is
// outside [MinScale, MaxScale].
func CheckScale(scale float64) error {
	if !(scale >= MinScale && scale <= MaxScale) {
		return inputErrorf("--scale must be between %.2g and %.2g (the kernels' float32 range; see 'orchard attn --help'), not %v", MinScale, MaxScale, scale)
	}
	return nil
}

// CheckStorage returns an *InputError unless storage is "", shared or private.
func CheckStorage(storage string) error {
	if storage != "" && !slices.Contains(metalkern.Storages, storage) {
		return inputErrorf("--storage must be shared or private, not %q", storage)
	}
	return nil
}

// Run validates the inputs, computes the attention and writes the outputs
// into opts.Out. Afterwards opts.Out holds exactly this run's outputs (the
// gradients of an earlier run are removed when opts.DO is empty); on any
// error it is as it was.
func Run(ctx context.Context, opts Options) (Result, error) {
	for _, r := range []struct{ name, v string }{{"--q", opts.Q}, {"--k", opts.K}, {"--v", opts.V}, {"--out", opts.Out}} {
		if r.v == "" {
			return Result{}, inputErrorf("%s is required; see 'orchard attn --help'", r.name)
		}
	}
	if opts.Scale != 0 {
		if err := CheckScale(opts.Scale); err != nil {
			return Result{}, err
		}
	}
	if err := CheckStorage(opts.Storage); err != nil {
		return Result{}, err
	}
	if !opts.Reference && (opts.Runner == nil || opts.Exec == nil) {
		return Result{}, errors.New("attn: Options.Runner and Options.Exec are required without Reference")
	}
	in, err := checkInputs(opts)
	if err != nil {
		return Result{}, err
	}
	if !opts.AllowNonFinite && !opts.Reference {
		// The reference checks while it loads; the runner's inputs are
		// scanned here, chunk by chunk.
		for _, t := range in.tensors() {
			if err := scanFinite(t); err != nil {
				return Result{}, err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	names := slices.Clone(Outputs[:2])
	if in.do != nil {
		names = slices.Clone(Outputs)
	}
	st, err := newStage(opts.Out)
	if err != nil {
		return Result{}, err
	}
	defer st.discard()
	if opts.Reference {
		// The float64 loops do not watch ctx: on Ctrl-C return at once
		// (the process is exiting; the next run sweeps the stage).
		done := make(chan error, 1)
		go func() { done <- runReference(in, opts, st) }()
		select {
		case err = <-done:
		case <-ctx.Done():
			return Result{}, ctx.Err()
		}
	} else {
		err = runRunner(ctx, in, opts, st)
	}
	if err != nil {
		return Result{}, err
	}
	for _, n := range names {
		if !st.has(n) {
			return Result{}, fmt.Errorf("the runner did not write %s", n)
		}
	}
	if err := st.commit(names, Outputs); err != nil {
		return Result{}, err
	}
	return Result{Dir: opts.Out, Files: names}, nil
}

// runRunner builds (through opts.Runner) and runs the runner, which writes
// into the stage.
func runRunner(ctx context.Context, in *inputs, opts Options, st *stage) error {
	r, err := opts.Runner(ctx)
	if err != nil {
		return err
	}
	req := metalkern.Request{Q: abs(opts.Q), K: abs(opts.K), V: abs(opts.V), Causal: opts.Causal, Scale: opts.Scale, Out: st.dir,
		Storage: opts.Storage}
	if in.do != nil {
		req.DO = abs(opts.DO)
	}
	if _, err := r.Run(ctx, opts.Exec, req); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return st.reword(err)
	}
	return nil
}

// runReference computes in float64 and writes in the input dtype (lse in
// float32). Each input is checked while it loads and kept only as float64.
func runReference(in *inputs, opts Options, st *stage) error {
	load := func(t *tensor) ([]float64, error) {
		a, err := npy.Read(t.path)
		if err != nil {
			return nil, inputErrorf("%s: %v", t.flag, err)
		}
		if !opts.AllowNonFinite {
			if i, bad := reference.HasNonFinite(a.Data); bad {
				return nil, nonFinite(t, i, a.Data[i])
			}
		}
		return reference.Float64s(a.Data), nil
	}
	var q, k, v, do []float64
	var err error
	for _, x := range []struct {
		t   *tensor
		dst *[]float64
	}{{in.q, &q}, {in.k, &k}, {in.v, &v}, {in.do, &do}} {
		if x.t == nil {
			continue
		}
		if *x.dst, err = load(x.t); err != nil {
			return err
		}
	}
	s := in.shape
	scale := opts.Scale
	if scale == 0 {
		scale = reference.DefaultScale(s.D)
	}
	dt := in.q.h.DType
	o, lse := reference.Forward(q, k, v, s, opts.Causal, scale)
	if err := st.write("o.npy", in.q.h.Shape, dt, o); err != nil {
		return err
	}
	if err := st.write("lse.npy", []int{s.B, s.H, s.Nq}, npy.Float32, lse); err != nil {
		return err
	}
	if do == nil {
		return nil
	}
	dq, dk, dv := reference.Backward(q, k, v, o, lse, do, s, opts.Causal, scale)
	for _, x := range []struct {
		n     string
		shape []int
		d     []float64
	}{{"dq.npy", in.q.h.Shape, dq}, {"dk.npy", in.k.h.Shape, dk}, {"dv.npy", in.v.h.Shape, dv}} {
		if err := st.write(x.n, x.shape, dt, x.d); err != nil {
			return err
		}
	}
	return nil
}

func abs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

// gib renders bytes as GiB with one decimal.
func gib(b uint64) string { return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30)) }

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/orchardkit/orchard/metalkern"
	"github.com/orchardkit/orchard/steps"
	"github.com/spf13/cobra"
)

// AttnOptions holds `orchard attn`'s inputs.
type AttnOptions struct {
	F              *Factory
	Q, K, V, DO    string
	Causal         bool
	Scale          float64
	Out            string
	AllowNonFinite bool
}

func newAttnCmd(f *Factory, runF func(*AttnOptions) error) *cobra.Command {
	opts := &AttnOptions{F: f}
	cmd := &cobra.Command{
		Use:   "attn --q Q.npy --k K.npy --v V.npy [--do DO.npy] --out DIR",
		Short: "Run the embedded attention on your own tensors",
		Long: `Run the runtime's attention on .npy tensors (float32 or float16, C order).
Q is [B,H,Nq,D]; K and V are [B,H,Nk,D]; DO (optional) is like Q; D ≤ 256.

Writes DIR/o.npy ([B,H,Nq,D], input dtype) and DIR/lse.npy ([B,H,Nq],
float32, natural log); with --do also dq.npy, dk.npy and dv.npy. Causal masking
follows PyTorch's is_causal: query i sees keys j ≤ i. The scale defaults to
1/sqrt(D). --backend reference computes in float64 in Go instead.

The runtime is built first if needed (as 'orchard rebuild' would, without the
smoke suite). Bad input is an error naming the file and the problem (exit 2),
and leaves no partial outputs in DIR.`,
		Example: `  orchard attn --q q.npy --k k.npy --v v.npy --out out/
  orchard attn --q q.npy --k k.npy --v v.npy --do do.npy --causal --out grads/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, r := range []struct{ name, v string }{{"--q", opts.Q}, {"--k", opts.K}, {"--v", opts.V}, {"--out", opts.Out}} {
				if r.v == "" {
					return usageErrorf("%s is required; see 'orchard attn --help'", r.name)
				}
			}
			if cmd.Flags().Changed("scale") && (opts.Scale <= 0 || math.IsInf(opts.Scale, 0) || math.IsNaN(opts.Scale)) {
				return usageErrorf("--scale must be a positive finite number, not %v", opts.Scale)
			}
			if runF != nil {
				return runF(opts)
			}
			return runAttn(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Q, "q", "", "queries `Q.npy` [B,H,Nq,D]")
	fl.StringVar(&opts.K, "k", "", "keys `K.npy` [B,H,Nk,D]")
	fl.StringVar(&opts.V, "v", "", "values `V.npy` [B,H,Nk,D]")
	fl.StringVar(&opts.DO, "do", "", "output gradient `DO.npy` [B,H,Nq,D]: also compute dq, dk, dv")
	fl.BoolVar(&opts.Causal, "causal", false, "causal mask (query i sees keys j ≤ i)")
	fl.Float64Var(&opts.Scale, "scale", 0, "softmax scale `X` (default 1/sqrt(D))")
	fl.StringVar(&opts.Out, "out", "", "output `DIR` (created if missing)")
	fl.BoolVar(&opts.AllowNonFinite, "allow-nonfinite", false, "accept NaN/Inf in the inputs")
	addTargetFlags(cmd, f.Global, backendsAttn)
	addColorFlag(cmd, f.Global)
	addVerboseFlag(cmd, f.Global)
	setExitCodes(cmd, exitCodesAttn)
	return cmd
}

// attnInputs are the validated tensors.
type attnInputs struct {
	q, k, v, do *metalkern.Array
	shape       metalkern.AttnShape
}

func loadAttnInputs(opts *AttnOptions) (*attnInputs, error) {
	read := func(flag, path string) (*metalkern.Array, error) {
		a, err := metalkern.ReadNPY(path)
		if err != nil {
			return nil, usageErrorf("%s: %v", flag, err)
		}
		if len(a.Shape) != 4 {
			return nil, usageErrorf("%s %s: shape %v has %d dimensions; want 4: [B,H,N,D]", flag, path, a.Shape, len(a.Shape))
		}
		if !opts.AllowNonFinite {
			if i, bad := metalkern.HasNonFinite(a.Data); bad {
				return nil, usageErrorf("%s %s: element %d is %v; pass --allow-nonfinite to accept non-finite values", flag, path, i, a.Data[i])
			}
		}
		return a, nil
	}
	in := &attnInputs{}
	var err error
	if in.q, err = read("--q", opts.Q); err != nil {
		return nil, err
	}
	if in.k, err = read("--k", opts.K); err != nil {
		return nil, err
	}
	if in.v, err = read("--v", opts.V); err != nil {
		return nil, err
	}
	if opts.DO != "" {
		if in.do, err = read("--do", opts.DO); err != nil {
			return nil, err
		}
	}
	q, k, v := in.q.Shape, in.k.Shape, in.v.Shape
	in.shape = metalkern.AttnShape{B: q[0], H: q[1], Nq: q[2], Nk: k[2], D: q[3]}
	switch {
	case in.shape.D < 1 || in.shape.D > 256:
		return nil, usageErrorf("--q %s: head dim D=%d; the kernels support 1..256", opts.Q, in.shape.D)
	case in.shape.Nq < 1 || in.shape.Nk < 1 || in.shape.B < 1 || in.shape.H < 1:
		return nil, usageErrorf("empty tensors: Q %v, K %v; every dimension must be ≥ 1", q, k)
	case k[0] != q[0] || k[1] != q[1] || k[3] != q[3]:
		return nil, usageErrorf("--k %s: shape %v does not match Q %v: want [%d,%d,Nk,%d]", opts.K, k, q, q[0], q[1], q[3])
	case !equalInts(v, k):
		return nil, usageErrorf("--v %s: shape %v must equal K's %v", opts.V, v, k)
	case in.k.DType != in.q.DType || in.v.DType != in.q.DType:
		return nil, usageErrorf("dtypes differ: Q %s, K %s, V %s; save all three as float32 or all as float16", in.q.DType, in.k.DType, in.v.DType)
	}
	if in.do != nil {
		if !equalInts(in.do.Shape, q) {
			return nil, usageErrorf("--do %s: shape %v must equal Q's %v", opts.DO, in.do.Shape, q)
		}
		if in.do.DType != in.q.DType {
			return nil, usageErrorf("--do %s: dtype %s differs from Q's %s", opts.DO, in.do.DType, in.q.DType)
		}
	}
	return in, nil
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func runAttn(ctx context.Context, opts *AttnOptions) error {
	f := opts.F
	in, err := loadAttnInputs(opts)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(opts.Out, 0o755); err != nil {
		return usageErrorf("--out %s: %v", opts.Out, err)
	}
	// Outputs go to a temp dir beside them and are moved in only when all
	// exist: a failure leaves DIR as it was.
	tmp, err := os.MkdirTemp(opts.Out, ".orchard-attn-*")
	if err != nil {
		return usageErrorf("--out %s: %v", opts.Out, err)
	}
	defer os.RemoveAll(tmp)

	if f.Global.Backend == "reference" {
		err = attnReference(in, opts, tmp)
	} else {
		err = attnRunner(ctx, f, in, opts, tmp)
	}
	if err != nil {
		return err
	}
	names := []string{"o.npy", "lse.npy"}
	if in.do != nil {
		names = append(names, "dq.npy", "dk.npy", "dv.npy")
	}
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(tmp, n)); err != nil {
			return fmt.Errorf("the runner did not write %s", n)
		}
	}
	for _, n := range names {
		if err := os.Rename(filepath.Join(tmp, n), filepath.Join(opts.Out, n)); err != nil {
			return err
		}
	}
	fmt.Fprintf(f.IO.ErrOut, "wrote %s to %s\n", strings.Join(names, ", "), opts.Out)
	return nil
}

// attnReference computes in float64 and writes in the input dtype (lse in
// float32).
func attnReference(in *attnInputs, opts *AttnOptions, dir string) error {
	s := in.shape
	scale := opts.Scale
	if scale == 0 {
		scale = metalkern.DefaultScale(s.D)
	}
	q, k, v := metalkern.Float64s(in.q.Data), metalkern.Float64s(in.k.Data), metalkern.Float64s(in.v.Data)
	o, lse := metalkern.ReferenceForward(q, k, v, s, opts.Causal, scale)
	dt := in.q.DType
	write := func(name string, shape []int, dt metalkern.DType, x []float64) error {
		data := make([]float32, len(x))
		for i, e := range x {
			data[i] = float32(e)
		}
		return metalkern.WriteNPY(filepath.Join(dir, name), &metalkern.Array{Shape: shape, DType: dt, Data: data})
	}
	if err := write("o.npy", in.q.Shape, dt, o); err != nil {
		return err
	}
	if err := write("lse.npy", []int{s.B, s.H, s.Nq}, metalkern.Float32, lse); err != nil {
		return err
	}
	if in.do == nil {
		return nil
	}
	dq, dk, dv := metalkern.ReferenceBackward(q, k, v, o, lse, metalkern.Float64s(in.do.Data), s, opts.Causal, scale)
	for _, x := range []struct {
		n     string
		shape []int
		d     []float64
	}{{"dq.npy", in.q.Shape, dq}, {"dk.npy", in.k.Shape, dk}, {"dv.npy", in.v.Shape, dv}} {
		if err := write(x.n, x.shape, dt, x.d); err != nil {
			return err
		}
	}
	return nil
}

// attnRunner builds the runtime if needed (cached steps, progress on
// stderr) and runs the runner on the inputs.
func attnRunner(ctx context.Context, f *Factory, in *attnInputs, opts *AttnOptions, dir string) error {
	t, err := f.resolveTarget(ctx, steps.NewProber(f.IO.Getenv), 0, false)
	if err != nil {
		return err
	}
	b := t.build
	shaders := &steps.ShadersStep{B: b}
	kernel := &steps.KernelStep{B: b, Shaders: shaders}
	prog := newProgress(f.IO.ErrOut, f.IO.ErrTTY && f.IO.Getenv("CI") == "", false, renderer(f.IO.ErrOut, f.ErrColor(), f.IO.Getenv))
	run, err := steps.New(steps.Options{BuildDir: t.dir, Backend: t.backend, Who: "orchard attn", Getenv: f.IO.Getenv, Events: prog.Event}).
		Run(ctx, []steps.Step{b.Toolchain, shaders, kernel})
	prog.Close()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return envErrorf("%v", err)
	}
	if run.Failed {
		if run.EnvFailure {
			return envErrorf("the environment cannot build the runtime: run 'orchard doctor --fix'")
		}
		return fmt.Errorf("the runtime failed to build: run 'orchard rebuild' to see the checklist")
	}
	req := metalkern.Request{Q: abs(opts.Q), K: abs(opts.K), V: abs(opts.V), Causal: opts.Causal, Scale: opts.Scale, Out: dir}
	if opts.DO != "" {
		req.DO = abs(opts.DO)
	}
	r := metalkern.Runner{Path: kernel.Out.Runner}
	if kernel.Out.Metallib != "" {
		r.Args = []string{"--library", kernel.Out.Metallib}
	}
	_, err = r.Run(ctx, plainExec(f.IO.ErrOut), req)
	return err
}

func abs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

// plainExec runs the runner directly; its stderr (one line saying what went
// wrong) becomes the error.
func plainExec(errOut io.Writer) metalkern.Exec {
	return func(ctx context.Context, argv, env []string, stdout io.Writer) error {
		var stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdout, cmd.Stderr = stdout, &stderr
		err := cmd.Run()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var xe *exec.ExitError
		if errors.As(err, &xe) {
			msg := strings.TrimSpace(stderr.String())
			if xe.ExitCode() == exitUsage {
				return usageErrorf("%s", strings.TrimPrefix(msg, "orchard-runner: "))
			}
			return fmt.Errorf("%s", msg)
		}
		return err
	}
}

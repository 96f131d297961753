package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/orchardkit/orchard/metalkern"
	"github.com/orchardkit/orchard/metalkern/attn"
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
	Storage        string
	RunnerTimeout  time.Duration
}

func newAttnCmd(f *Factory, runF func(*AttnOptions) error) *cobra.Command {
	opts := &AttnOptions{F: f}
	cmd := &cobra.Command{
		Use:   "attn --q Q.npy --k K.npy --v V.npy [--do DO.npy] --out DIR",
		Short: "Run the embedded attention on your own tensors",
		Long: `Run the runtime's attention on .npy tensors (float32 or float16, C order).
Q is [B,H,Nq,D]; K and V are [B,H,Nk,D]; DO (optional) is like Q; D ≤ 256;
at most 2147483647 elements per tensor (the kernels index with 32-bit ints).

Writes DIR/o.npy ([B,H,Nq,D], input dtype) and DIR/lse.npy ([B,H,Nq],
float32, natural log); with --do also dq.npy, dk.npy and dv.npy. Causal masking
follows PyTorch's is_causal: query i sees keys j ≤ i. --backend reference
computes in float64 in Go instead.

The scale defaults to 1/sqrt(D); --scale must lie in [1.2e-38, 6.9e29]: the
kernels keep it in float32 (smaller values are subnormal and flush to zero)
and score scale·log2(e)·q·k against a mask score of -1e30.

The runtime is built first if needed (as 'orchard rebuild' would, without the
smoke suite). Inputs are checked before any work: shapes, dtypes and limits
from the headers, then the memory the run needs against the memory available,
then NaN/Inf. Bad input is an error naming the file and the problem (exit 2).
DIR is written all-or-nothing: afterwards it holds exactly this run's outputs
(dq, dk, dv of an earlier run are removed when there is no --do; no other file
is touched), and after any failure it is as it was.

--storage private keeps the tensors in GPU-only (private) buffers, as a
PyTorch MPS tensor may be: the runner uploads and reads them back through a
shared staging buffer and a blit copy (on emu through the same copy, with the
memory unreachable from the host). The default, shared, lets the host read and
write the buffers directly. Results are the same either way.

The runner gets --runner-timeout (default 10m); a runner that crashes is
reported with its signal and its last lines of stderr. Ctrl-C, SIGTERM and
SIGHUP kill the runner's whole process group and exit 130 at once.`,
		Example: `  orchard attn --q q.npy --k k.npy --v v.npy --out out/
  orchard attn --q q.npy --k k.npy --v v.npy --do do.npy --causal --out grads/
  orchard attn --q q.npy --k k.npy --v v.npy --storage private --out out/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, r := range []struct{ name, v string }{{"--q", opts.Q}, {"--k", opts.K}, {"--v", opts.V}, {"--out", opts.Out}} {
				if r.v == "" {
					return usageErrorf("%s is required; see 'orchard attn --help'", r.name)
				}
			}
			if cmd.Flags().Changed("scale") {
				if err := attn.CheckScale(opts.Scale); err != nil {
					return usageErrorf("%v", err)
				}
			}
			if err := attn.CheckStorage(opts.Storage); err != nil {
				return usageErrorf("%v", err)
			}
			if opts.RunnerTimeout <= 0 {
				return usageErrorf("--runner-timeout must be positive, got %s", opts.RunnerTimeout)
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
	fl.Float64Var(&opts.Scale, "scale", 0, "softmax `SCALE` in [1.2e-38, 6.9e29] (default 1/sqrt(D))")
	fl.StringVar(&opts.Out, "out", "", "output `DIR` (created if missing)")
	fl.BoolVar(&opts.AllowNonFinite, "allow-nonfinite", false, "accept NaN/Inf in the inputs")
	fl.StringVar(&opts.Storage, "storage", "shared", "buffer storage `MODE`: shared (host-visible) or private (GPU-only, staged through a blit)")
	fl.DurationVar(&opts.RunnerTimeout, "runner-timeout", attn.DefaultRunnerTimeout, "time limit for the runner as `DURATION` (its process group is killed then)")
	addTargetFlags(cmd, f.Global, backendsAttn)
	addColorFlag(cmd, f.Global)
	addVerboseFlag(cmd, f.Global)
	setExitCodes(cmd, exitCodesAttn)
	return cmd
}

func runAttn(ctx context.Context, opts *AttnOptions) error {
	f := opts.F
	res, err := attn.Run(ctx, attn.Options{
		Q: opts.Q, K: opts.K, V: opts.V, DO: opts.DO,
		Causal: opts.Causal, Scale: opts.Scale, Out: opts.Out,
		AllowNonFinite: opts.AllowNonFinite,
		Storage:        opts.Storage,
		Reference:      f.Global.Backend == "reference",
		Runner:         func(ctx context.Context) (metalkern.Runner, error) { return buildRunner(ctx, f) },
		Exec:           attn.RunnerExec(opts.RunnerTimeout),
	})
	var ie *attn.InputError
	if errors.As(err, &ie) {
		return usageErrorf("%s", ie.Msg)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(f.IO.ErrOut, "wrote %s to %s\n", strings.Join(res.Files, ", "), res.Dir)
	return nil
}

// buildRunner builds the runtime if needed (cached steps, progress on
// stderr) and returns its runner.
func buildRunner(ctx context.Context, f *Factory) (metalkern.Runner, error) {
	t, err := f.resolveTarget(ctx, f.newProber(), 0, false)
	if err != nil {
		return metalkern.Runner{}, err
	}
	return buildRunnerFor(ctx, f, t, "orchard attn")
}

// buildRunnerFor is buildRunner for a target already resolved; who names
// the command in the build dir's lock.
func buildRunnerFor(ctx context.Context, f *Factory, t *target, who string) (metalkern.Runner, error) {
	b := t.build
	shaders := &steps.ShadersStep{B: b}
	kernel := &steps.KernelStep{B: b, Shaders: shaders}
	prog := newProgress(f.IO.ErrOut, f.IO.liveProgress(), false, renderer(f.IO.ErrOut, f.ErrColor(), f.IO.Getenv))
	prog.width = f.IO.ErrWidth
	run, err := steps.New(steps.Options{BuildDir: t.dir, Backend: t.backend, Who: who, Getenv: f.IO.Getenv, Events: prog.Event}).
		Run(ctx, []steps.Step{b.Toolchain, shaders, kernel})
	prog.Close()
	if err != nil {
		if ctx.Err() != nil {
			return metalkern.Runner{}, ctx.Err()
		}
		return metalkern.Runner{}, envErrorf("%v", err)
	}
	if run.Failed {
		if run.EnvFailure {
			return metalkern.Runner{}, envErrorf("the environment cannot build the runtime: run 'orchard doctor --fix'")
		}
		return metalkern.Runner{}, fmt.Errorf("the runtime failed to build: run 'orchard rebuild' to see the checklist")
	}
	r := metalkern.Runner{Path: kernel.Out.Runner}
	if kernel.Out.Metallib != "" {
		r.Args = []string{"--library", kernel.Out.Metallib}
	}
	return r, nil
}

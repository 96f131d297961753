package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"time"

	"github.com/orchardkit/orchard/metalkern"
	"github.com/orchardkit/orchard/metalkern/attn"
	"github.com/orchardkit/orchard/metalkern/bench"
	"github.com/orchardkit/orchard/metalkern/npy"
	"github.com/orchardkit/orchard/steps"
	"github.com/spf13/cobra"
)

// BenchOptions holds `orchard bench`'s inputs (flags parsed and checked).
type BenchOptions struct {
	F        *Factory
	Shapes   []bench.Shape
	DTypes   []npy.DType
	Passes   []string
	Warmup   int
	Repeat   int
	Counters bool
	Seed     uint64
	// Shapes nil: bench.DefaultShapes of the backend.
	// RunnerTimeout bounds each runner call.
	RunnerTimeout time.Duration
}

// emuWatchdogEnv is the emu's per-dispatch hang detector (host/emu_backend.cpp; default 20 s).
const emuWatchdogEnv = "ORCHARD_EMU_WATCHDOG_SECONDS"

// maxRepeats bounds --warmup and --repeat (each is a runner process per variant).
const maxRepeats = 1000

func newBenchCmd(f *Factory, runF func(*BenchOptions) error) *cobra.Command {
	opts := &BenchOptions{F: f}
	var shapes, dtypes, passes string
	cmd := &cobra.Command{
		Use:   "bench [--shapes LIST] [--dtype f16,f32] [--pass fwd,bwd]",
		Short: "Time the built attention against a plain baseline",
		Long: `Time the runtime's flash-attention kernels per shape, dtype and pass (fwd,
bwd), and the same work done by plain attention (S = QKᵀ materialised in device
memory, softmax, O = PV; kernels/attn_plain.metal) in the same runner.

Each case runs --warmup untimed and --repeat timed runner processes per
variant; the runner times each dispatch itself, so the figures hold only the
pass's dispatches: GPU time on Metal (command-buffer timestamps), emulation
time on emu (the CPU running the kernels: useful to compare kernels with each
other on emu, not a GPU figure; docs/perf.md). Per case: min/median/max ms,
GFLOP/s from the counted work (fwd 4·pairs·D, bwd 2.5× that, pairs = B·H·Nq·Nk
or the exact unmasked pairs under --causal), the baseline's median and the
speed-up (baseline / flash median).

--shapes takes BxHxNqxNkxD with an optional :causal, comma-separated. The
default on emu is 1x2x128x128x64, the same :causal and 1x1x128x128x128 (seconds
in all); on Metal 1x8x1024x1024x64, the same :causal and 1x8x1024x1024x128.
--counters adds each pass's work counters from the emu counting build.
The runtime is built first if needed (as 'orchard attn' does). --json prints
the report as JSON on stdout (docs/json.md), the table otherwise. On emu one
dispatch may run for a quarter of --runner-timeout (at least 20 s) before the
emu's hang detector stops it (ORCHARD_EMU_WATCHDOG_SECONDS, when unset).`,
		Example: `  orchard bench
  orchard bench --shapes 1x8x1024x1024x64:causal --dtype f16 --repeat 10
  orchard bench --pass fwd --json > bench.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			opts.Shapes = nil // the backend's default set
			if cmd.Flags().Changed("shapes") {
				if opts.Shapes, err = bench.ParseShapes(shapes); err != nil {
					return usageErrorf("%v", err)
				}
			}
			if opts.DTypes, err = bench.ParseDTypes(dtypes); err != nil {
				return usageErrorf("%v", err)
			}
			if opts.Passes, err = bench.ParsePasses(passes); err != nil {
				return usageErrorf("%v", err)
			}
			if opts.Warmup < 0 || opts.Warmup > maxRepeats {
				return usageErrorf("--warmup must be in 0..%d, got %d", maxRepeats, opts.Warmup)
			}
			if opts.Repeat < 1 || opts.Repeat > maxRepeats {
				return usageErrorf("--repeat must be in 1..%d, got %d", maxRepeats, opts.Repeat)
			}
			if opts.RunnerTimeout <= 0 {
				return usageErrorf("--runner-timeout must be positive, got %s", opts.RunnerTimeout)
			}
			if !cmd.Flags().Changed("seed") {
				opts.Seed = rand.Uint64()
			}
			if runF != nil {
				return runF(opts)
			}
			return runBench(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&shapes, "shapes", "", "shapes `LIST`: BxHxNqxNkxD[:causal],... (default: the backend's set, above)")
	fl.StringVar(&dtypes, "dtype", "f16,f32", "dtypes `LIST`: f16, f32 or both")
	fl.StringVar(&passes, "pass", "fwd,bwd", "passes `LIST`: fwd, bwd or both")
	fl.IntVar(&opts.Warmup, "warmup", 1, "`N` untimed runs per case and variant (each a runner process)")
	fl.IntVar(&opts.Repeat, "repeat", 3, "`N` timed runs per case and variant (each a runner process)")
	fl.BoolVar(&opts.Counters, "counters", false, "add each pass's work counters (the emu counting build)")
	fl.Uint64Var(&opts.Seed, "seed", 0, "seed `N` for the random inputs (default: a fresh one)")
	fl.DurationVar(&opts.RunnerTimeout, "runner-timeout", attn.DefaultRunnerTimeout, "time limit for each runner call as `DURATION`")
	addTargetFlags(cmd, f.Global, backendsRun)
	addJSONFlag(cmd, f.Global, "print the results as JSON on stdout (docs/json.md)")
	addColorFlag(cmd, f.Global)
	addVerboseFlag(cmd, f.Global)
	setExitCodes(cmd, exitCodesBench)
	return cmd
}

func runBench(ctx context.Context, opts *BenchOptions) error {
	f := opts.F
	t, err := f.resolveTarget(ctx, f.newProber(), 0, false)
	if err != nil {
		return err
	}
	runner, err := buildRunnerFor(ctx, f, t, "orchard bench")
	if err != nil {
		return err
	}
	if opts.Shapes == nil {
		opts.Shapes = bench.DefaultShapes(t.backend)
	}
	var counting *metalkern.Runner
	if opts.Counters {
		r, err := steps.CountingRunner(ctx, steps.Options{BuildDir: t.dir, Backend: t.backend, Who: "orchard bench", Getenv: f.IO.Getenv}, t.build)
		if err != nil {
			return fmt.Errorf("build the counting runner: %w", err)
		}
		counting = &r
	}
	var progress func(string)
	if f.IO.ErrTTY || f.Global.Verbose {
		progress = func(msg string) { fmt.Fprintln(f.IO.ErrOut, "bench "+msg) }
	}
	var env []string
	if t.backend == steps.BackendEmu && f.IO.Getenv(emuWatchdogEnv) == "" {
		// A bench case is one user-sized dispatch per pass: let the emu's
		// hang detector wait up to a quarter of the runner's time limit.
		env = append(env, fmt.Sprintf("%s=%d", emuWatchdogEnv, max(20, int(opts.RunnerTimeout/4/time.Second))))
	}
	rep, err := bench.Run(ctx, bench.Options{
		Runner: runner, Exec: attn.RunnerExec(opts.RunnerTimeout), Dir: filepath.Join(t.dir, "bench"),
		Shapes: opts.Shapes, DTypes: opts.DTypes, Passes: opts.Passes, Warmup: opts.Warmup, Repeat: opts.Repeat,
		Seed: opts.Seed, Counting: counting, Progress: progress, Env: env,
	})
	var ie *attn.InputError
	if errors.As(err, &ie) {
		return usageErrorf("%s", ie.Msg)
	}
	if err != nil {
		return err
	}
	if f.Global.JSON {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(f.IO.Out, "%s\n", b)
		return err
	}
	return bench.WriteTable(f.IO.Out, rep, f.IO.OutTTY)
}

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/orchardkit/orchard/steps"
	"github.com/spf13/cobra"
)

// VerifyOptions holds `orchard verify`'s inputs.
type VerifyOptions struct {
	F *Factory
	ReportOptions
	NoWait bool
	// Validate runs the runner with Metal API and shader validation on.
	Validate bool
	Seed     uint64
	Timeout  time.Duration
	// RunnerTimeout bounds each runner call (a smoke case, runner info).
	RunnerTimeout time.Duration
	// Python is --python: the torch steps' interpreter.
	Python  string
	seedSet bool
}

func newVerifyCmd(f *Factory, runF func(*VerifyOptions) error) *cobra.Command {
	opts := &VerifyOptions{F: f}
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Re-check an existing build without rebuilding",
		Long: `Re-check the runtime already built in the build dir: the runner loads
(runtime-loads), the smoke suite's forward and backward match the float64
reference, and this run's kernel-call log lines are complete and clean;
then, when the PyTorch op library was built (torch-extension), it is
imported and its pytest suite run again with --python's interpreter.
Nothing is rebuilt and nothing comes from the cache. When there is no build
yet, it says so (exit 3): run 'orchard rebuild' first, with the same
--build-dir, --backend and --runtime.

--timeout bounds each child process a step starts (the runner; default
20m): one that runs longer is killed and its step fails.`,
		Example: `  orchard verify
  orchard verify --build-dir /tmp/b --seed 7
  orchard verify --json | jq .ok`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.seedSet = cmd.Flags().Changed("seed")
			if opts.RunnerTimeout <= 0 {
				return usageErrorf("--runner-timeout must be positive, got %s", opts.RunnerTimeout)
			}
			if err := f.checkPython(opts.Python); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runVerify(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&opts.NoWait, "no-wait", false, "fail at once (exit 3) if another run is using the build dir")
	fl.BoolVar(&opts.Validate, "validate", false, validateUsage)
	fl.Uint64Var(&opts.Seed, "seed", 0, "seed `N` for the smoke inputs (default: a fresh one, printed in the report)")
	fl.StringVar(&opts.JUnit, "junit", "", "also write the checklist as JUnit XML to `FILE`")
	fl.DurationVar(&opts.RunnerTimeout, "runner-timeout", steps.DefaultRunnerTimeout, "time limit for each runner call (one smoke case, runner info) as `DURATION`; the emu watchdog is a quarter of it")
	addPythonFlag(cmd, &opts.Python)
	addTargetFlags(cmd, f.Global, backendsRun)
	addReportFlags(cmd, f.Global)
	setExitCodes(cmd, exitCodesPipeline)
	return cmd
}

func runVerify(ctx context.Context, opts *VerifyOptions) error {
	f := opts.F
	t, err := f.resolveTarget(ctx, f.newProber(), opts.Seed, opts.seedSet)
	if err != nil {
		return f.preflightFailed("verify", opts.ReportOptions, err)
	}
	b, backend, dir := t.build, t.backend, t.dir
	b.RunnerTimeout = opts.RunnerTimeout
	b.Validate = opts.Validate
	f.pythonFor(b, opts.Python)
	shaders := &steps.ShadersStep{B: b}
	kernel := &steps.KernelStep{B: b, Shaders: shaders}
	err = steps.LoadOutput(dir, "shaders", &shaders.Out)
	if err == nil {
		err = steps.LoadOutput(dir, "kernel", &kernel.Out)
	}
	if err != nil {
		pe := steps.Preflight("build", "A build to verify", "run '"+b.Rerun("rebuild")+"' first", true,
			fmt.Sprintf("the build in %s is incomplete (%v)", dir, err))
		if errors.Is(err, os.ErrNotExist) {
			pe.Check.Evidence = []string{fmt.Sprintf("no build of the %s backend in %s", backend, dir)}
		}
		return reportPreflight(f, "verify", backend, dir, opts.ReportOptions, pe)
	}
	// verify is rebuild's checking tail: same steps, never from the cache.
	smoke := &steps.SmokeStep{B: b, Kernel: kernel}
	pipeline := []steps.Step{
		&steps.RuntimeLoadsStep{B: b, Shaders: shaders, Kernel: kernel},
		smoke,
		&steps.LogInspectStep{Smoke: smoke},
	}
	// The op library as built: import it and run its suite again (without
	// a build of it, the two are skipped with the reason).
	ext := &steps.TorchExtensionStep{B: b, Shaders: shaders}
	_ = steps.LoadOutput(dir, ext.Name(), &ext.Out)
	pipeline = append(pipeline, torchSteps(b, shaders, ext)...)
	return runPipeline(ctx, f, pipeline, pipelineRun{
		command: "verify", backend: backend, dir: dir,
		opts: steps.Options{NoCache: true, NoWait: opts.NoWait, StepTimeout: opts.Timeout},
		ro:   opts.ReportOptions,
	})
}

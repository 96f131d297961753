package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"math/rand/v2"

	"github.com/orchardkit/orchard/checks"
	"github.com/orchardkit/orchard/logs"
	"github.com/orchardkit/orchard/metalkern"
	"github.com/orchardkit/orchard/steps"
	"github.com/spf13/cobra"
)

// RebuildOptions holds `orchard rebuild`'s inputs.
type RebuildOptions struct {
	F *Factory
	ReportOptions
	Force  bool
	NoWait bool
	Fix    bool
	Race   bool
	// Validate runs the runner with Metal API and shader validation on.
	Validate bool
	Seed     uint64
	Timeout  time.Duration
	// RunnerTimeout bounds each runner call (a smoke case, runner info).
	RunnerTimeout time.Duration
	// Bench adds the performance item (PerformanceStep) after the smoke
	// suite; BenchMinSpeedup (> 0) is its warning threshold.
	Bench           bool
	BenchMinSpeedup float64
	// Python is --python: the torch steps' interpreter ("": the default search).
	Python  string
	seedSet bool
}

func newRebuildCmd(f *Factory, runF func(*RebuildOptions) error) *cobra.Command {
	opts := &RebuildOptions{F: f}
	cmd := &cobra.Command{
		Use:   "rebuild",
		Short: "Check the environment, build the runtime and verify it",
		Long: `Run the rebuild pipeline and print a checklist of results:

  toolchain      environment check: CMake, a C++20 compiler (on macOS also
                 the Metal toolchain and GPU)
  shaders        compile each .metal file (emu: pre-pass + C++; Mac: xcrun
                 metal + metallib)
  kernel         CMake configure + build of the runner
  runtime-loads  the runner starts and reports the requested backend and
                 every kernel
  races          (--race) a few cases under ThreadSanitizer, with the .metal
                 line of a race
  smoke          forward/backward of the built-in suite against a float64
                 reference
  logs           this run's kernel-call log lines: every dispatch logged, no
                 errors or CPU fallbacks, on the requested backend
  torch-extension  the PyTorch op library (orchard_ops), built against the
                 PyTorch of --python (default: $ORCHARD_PYTHON, else the first
                 python3 on PATH that has torch, else /usr/bin/python3)
  torch-import   import orchard_ops with that interpreter
  torch-smoke    the runtime's pytest suite: forward and backward through
                 autograd vs float64 on CPU tensors (emu), on a Mac also MPS
                 The three torch steps are skipped, with the fix, when the
                 interpreter has no PyTorch >= 1.13 (docs/pytorch.md).
  performance    (--bench) the flash kernels timed against plain attention
                 ('orchard bench' with its default shapes, 3 repeats): a
                 warning, never a failure, when any case's speed-up is below
                 --bench-min-speedup X (which implies --bench); no threshold:
                 the figures only. On emu the times are emulation time.

Each step is cached: a step whose inputs, commands, tool versions and
allowlisted environment are unchanged, and whose outputs still exist, is not
run again. --force reruns everything; --explain says why each step ran.

Two runs on one build dir never interleave: the second waits (or, with
--no-wait, fails at once, exit 3). Ctrl-C stops the running step and its
child processes, records nothing for it and exits 130; the next run resumes.
Each step's full output is in <build-dir>/logs/steps/<step>.log.

Time limits: --timeout bounds each build tool call (cmake, the compiler;
default 20m); --runner-timeout each runner call (runner info, one smoke or
race case; default 1m), and on emu the kernels' watchdog
(ORCHARD_EMU_WATCHDOG_SECONDS) is set to a quarter of it. A runner that
crashes, hangs or fails with an error of its own stops the smoke step at
that case, with its exit status or signal and the end of its stderr.`,
		Example: `  orchard rebuild
  orchard rebuild --fix          # install what is missing first (asks nothing)
  orchard rebuild --explain
  orchard rebuild --runtime ./runtime --build-dir /tmp/b
  orchard rebuild --json > report.json
  orchard rebuild --junit orchard.xml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.seedSet = cmd.Flags().Changed("seed")
			if opts.Timeout <= 0 {
				return usageErrorf("--timeout must be positive, e.g. --timeout 30m, not %v", opts.Timeout)
			}
			if opts.RunnerTimeout <= 0 {
				return usageErrorf("--runner-timeout must be positive, got %s", opts.RunnerTimeout)
			}
			if cmd.Flags().Changed("bench-min-speedup") {
				if !(opts.BenchMinSpeedup > 0) || math.IsInf(opts.BenchMinSpeedup, 0) {
					return usageErrorf("--bench-min-speedup must be a positive speed-up over plain attention (e.g. 1.5), got %v", opts.BenchMinSpeedup)
				}
				opts.Bench = true
			}
			if err := f.checkPython(opts.Python); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runRebuild(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&opts.Force, "force", false, "rerun every step, ignoring the cache")
	fl.BoolVar(&opts.Explain, "explain", false, "say why each step ran or was reused")
	fl.BoolVar(&opts.NoWait, "no-wait", false, "fail at once (exit 3) if another run is using the build dir")
	fl.BoolVar(&opts.Fix, "fix", false, "install missing tools first (the commands 'orchard doctor --fix' prints)")
	fl.BoolVar(&opts.Race, "race", false, "also build the ThreadSanitizer runner and run a few cases under it (emu)")
	fl.BoolVar(&opts.Validate, "validate", false, validateUsage)
	fl.BoolVar(&opts.Bench, "bench", false, "also time the kernels against plain attention after the smoke suite (a warning item, never a failure)")
	fl.Float64Var(&opts.BenchMinSpeedup, "bench-min-speedup", 0, "warn when a bench case's speed-up over plain attention is below `X` (implies --bench)")
	fl.Uint64Var(&opts.Seed, "seed", 0, "seed `N` for the smoke inputs (default: a fresh one, printed in the report)")
	fl.StringVar(&opts.JUnit, "junit", "", "also write the checklist as JUnit XML to `FILE`")
	fl.DurationVar(&opts.Timeout, "timeout", 20*time.Minute, "time limit for each build tool call (cmake, the compiler) as `DURATION`")
	fl.DurationVar(&opts.RunnerTimeout, "runner-timeout", steps.DefaultRunnerTimeout, "time limit for each runner call (one smoke case, runner info) as `DURATION`; the emu watchdog is a quarter of it")
	addPythonFlag(cmd, &opts.Python)
	addTargetFlags(cmd, f.Global, backendsRun)
	addReportFlags(cmd, f.Global)
	setExitCodes(cmd, exitCodesPipeline)
	return cmd
}

func runRebuild(ctx context.Context, opts *RebuildOptions) error {
	f := opts.F
	prober := f.newProber()
	if opts.Fix {
		if err := fixEnvironment(ctx, f, prober); err != nil {
			var ee *exitError
			if ctx.Err() == nil && errors.As(err, &ee) && ee.code == exitEnvironment {
				// A failed install still ends with the report; the message
				// stays on stderr.
				pe := steps.Preflight("fix", "Install what is missing", "run that command by hand to see why it failed (docs/troubleshooting.md)", true, ee.msg)
				_ = reportPreflight(f, "rebuild", f.Global.Backend, "", opts.ReportOptions, pe)
			}
			return err
		}
	}
	t, err := f.resolveTarget(ctx, prober, opts.Seed, opts.seedSet)
	if err != nil {
		return f.preflightFailed("rebuild", opts.ReportOptions, err)
	}
	t.build.Race = opts.Race
	t.build.Validate = opts.Validate
	t.build.RunnerTimeout = opts.RunnerTimeout
	f.pythonFor(t.build, opts.Python)
	p := rebuildPipeline(t.build)
	if opts.Bench {
		// Last: timing means something only for kernels that compute the
		// right numbers, and a slow case is a warning, never a failure.
		p = append(p, &steps.PerformanceStep{B: t.build, Kernel: kernelOf(p), MinSpeedup: opts.BenchMinSpeedup})
	}
	return runPipeline(ctx, f, p, pipelineRun{
		command: "rebuild", backend: t.backend, dir: t.dir,
		opts: steps.Options{Force: opts.Force, NoWait: opts.NoWait, StepTimeout: opts.Timeout},
		ro:   opts.ReportOptions,
	})
}

// rebuildPipeline is the rebuild's steps in order, with why each is there.
func rebuildPipeline(b *steps.Build) []steps.Step {
	shaders := &steps.ShadersStep{B: b}
	kernel := &steps.KernelStep{B: b, Shaders: shaders}
	smoke := &steps.SmokeStep{B: b, Kernel: kernel}
	p := []steps.Step{
		// Everything after needs CMake and a C++20 compiler (and on Metal the
		// Metal toolchain and a usable GPU): fail early with the fix.
		b.Toolchain,
		// Kernel errors are cheapest to find per .metal file, with file:line.
		shaders,
		// The runner program, from the runtime's CMakeLists.txt.
		kernel,
		// The runner starts and is the backend we asked for.
		&steps.RuntimeLoadsStep{B: b, Shaders: shaders, Kernel: kernel},
	}
	if b.Race {
		// Before the smoke suite: a race (say, a missing barrier) is named
		// with its .metal line, where a numeric mismatch would only say "wrong".
		p = append(p, &steps.RacesStep{B: b, Kernel: kernel})
	}
	p = append(p,
		// The kernels compute what the float64 reference computes.
		smoke,
		// Every dispatch was logged, cleanly, on the backend we asked for.
		&steps.LogInspectStep{Smoke: smoke},
	)
	return append(p, torchSteps(b, shaders, nil)...)
}

// torchSteps are the orchard_ops steps, after the runner has proven the
// kernels: a failure there is the binding's, not the kernels'. Without
// PyTorch for the interpreter (--python) they are skipped with the fix.
// ext, when not nil, is an op library already built (verify).
func torchSteps(b *steps.Build, shaders *steps.ShadersStep, ext *steps.TorchExtensionStep) []steps.Step {
	var p []steps.Step
	if ext == nil {
		// The op library, against the interpreter's PyTorch, from the same
		// generated kernels (and metallib) as the runner.
		ext = &steps.TorchExtensionStep{B: b, Shaders: shaders}
		p = append(p, ext)
	}
	return append(p,
		// The user's 'import orchard_ops' works and registers the ops.
		&steps.TorchImportStep{B: b, Ext: ext},
		// Forward and backward through autograd match float64 math attention.
		&steps.TorchSmokeStep{B: b, Ext: ext},
	)
}

// kernelOf is the pipeline's kernel step.
func kernelOf(p []steps.Step) *steps.KernelStep {
	for _, st := range p {
		if k, ok := st.(*steps.KernelStep); ok {
			return k
		}
	}
	return nil
}

// target is what a command that builds or uses the runtime resolves first.
type target struct {
	backend, reason string
	dir             string
	build           *steps.Build
}

// resolveTarget resolves --backend (with the prober's reasons), the build
// dir and the runtime source (--runtime) into the build the steps share.
func (f *Factory) resolveTarget(ctx context.Context, p *steps.Prober, seed uint64, seedSet bool) (*target, error) {
	backend, reason, err := steps.ResolveBackend(ctx, f.Global.Backend, p)
	if err != nil {
		return nil, steps.Preflight("backend", "Backend "+f.Global.Backend+" available",
			"use --backend emu, or see what is missing with 'orchard doctor --backend "+f.Global.Backend+"'", true, err.Error())
	}
	dir, err := f.resolveBuildDir(backend)
	if err != nil {
		return nil, err
	}
	src, err := f.runtimeSource()
	if err != nil {
		return nil, err
	}
	if f.Global.Verbose {
		fmt.Fprintf(f.IO.ErrOut, "backend %s: %s\nbuild dir %s\n", backend, reason, dir)
	}
	b := newBuild(src, p, seed, seedSet)
	b.RerunFlags = f.rerunFlags()
	return &target{backend: backend, reason: reason, dir: dir, build: b}, nil
}

// newBuild gathers what the runtime steps share for one run.
func newBuild(src metalkern.Source, p *steps.Prober, seed uint64, seedSet bool) *steps.Build {
	if !seedSet {
		seed = rand.Uint64() >> 12 // short enough to type
	}
	return &steps.Build{
		Source:    src,
		Toolchain: &steps.ToolchainStep{Prober: p},
		Seed:      seed,
		SeedSet:   seedSet,
		EmuMode:   "fibers",
		RunID:     logs.NewRunID(),
	}
}

type pipelineRun struct {
	command, backend, dir string
	opts                  steps.Options
	ro                    ReportOptions
}

// runPipeline runs steps under the engine with live progress on stderr and
// prints the report; it maps the outcome to an error for exitCode.
func runPipeline(ctx context.Context, f *Factory, pipeline []steps.Step, pr pipelineRun) error {
	prog := newProgress(f.IO.ErrOut, f.IO.liveProgress(), f.IO.Getenv("GITHUB_ACTIONS") == "true",
		renderer(f.IO.ErrOut, f.ErrColor(), f.IO.Getenv))
	prog.width = f.IO.ErrWidth
	// The live progress leaves each step's final line on the screen the
	// report goes to: the report does not list the steps again.
	pr.ro.stepsShown = prog.live && f.IO.OutTTY
	o := pr.opts
	o.BuildDir, o.Backend, o.Who = pr.dir, pr.backend, "orchard "+pr.command
	o.Verbose = f.Global.Verbose
	o.Getenv = f.IO.Getenv
	o.Events = prog.Event
	run, err := steps.New(o).Run(ctx, pipeline)
	prog.Close()

	switch {
	case asPreflight(err) != nil:
		return reportPreflight(f, pr.command, pr.backend, pr.dir, pr.ro, err)
	case err != nil && run == nil:
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	steps.AttributeChecks(pipeline, pr.backend, run.Checks)
	r := &checks.Report{Command: pr.command, Backend: pr.backend, BuildDir: pr.dir, Steps: run.Steps, Checks: run.Checks}
	if err != nil {
		// Interrupted: show what ran, then exit 130.
		r.Checks = append(r.Checks, checks.Check{ID: "interrupted", Title: "run interrupted", Status: checks.Fail,
			Evidence: []string{"the run was interrupted; the interrupted step left no stamp"}, Hint: "run the command again to resume"})
		return finishReport(f, r, pr.ro, err)
	}
	r.Finish()
	var outcome error
	switch {
	case run.EnvFailure:
		outcome = envErrorf("the environment cannot run the steps; run 'orchard doctor --fix' to see how to fix it")
	case !r.OK:
		outcome = errSilent
	}
	return finishReport(f, r, pr.ro, outcome)
}

// preflightFailed reports a failure before the pipeline (the backend cannot
// run here, say) as a report of that one check; other errors (usage) are
// returned as they are.
func (f *Factory) preflightFailed(command string, ro ReportOptions, err error) error {
	backend, dir := f.Global.Backend, ""
	if backend != "" && backend != steps.BackendAuto {
		if d, derr := f.resolveBuildDir(backend); derr == nil {
			dir = d
		}
	}
	return reportPreflight(f, command, backend, dir, ro, err)
}

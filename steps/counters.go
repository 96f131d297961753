package steps

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"

	"github.com/orchardkit/orchard/checks"
	"github.com/orchardkit/orchard/metalkern/emugen"
)

// CountersRunnerName is the counting emu runner's CMake target and program.
const CountersRunnerName = "orchard-runner-emu-counters"

// CountersOut is the counters-runner step's typed output.
type CountersOut struct {
	// Runner is orchard-runner-emu-counters: its `run` JSON has "counters"
	// in every pass (docs/perf.md "Work counters").
	Runner string `json:"runner"`
	// GenDir holds the counting translation units (emugen.GenerateCounting).
	GenDir string `json:"gen_dir"`
}

// CountersStep builds the counting emu runner (orchard bench --counters):
// the kernels generated with emugen.GenerateCounting into
// <build-dir>/counters/gen and compiled in a CMake tree of their own
// (<build-dir>/counters/cmake/<id>, -DORCHARD_COUNTERS=ON), so the smoke
// suite's runner is never rebuilt for it and pays nothing. It always builds
// for emu, whatever the run's backend: the counters are the emulation's.
// It needs the toolchain step to have run (B.Toolchain.Out); cached like
// the kernel step, and CMake's own build is incremental underneath.
type CountersStep struct {
	B   *Build
	Out CountersOut
}

func (s *CountersStep) Name() string  { return "counters-runner" }
func (s *CountersStep) Title() string { return "Counting runner build (emu work counters)" }
func (s *CountersStep) Output() any   { return &s.Out }

// CheckIDs: the build is one item.
func (s *CountersStep) CheckIDs(string) []string { return []string{"counters-runner"} }

func (s *CountersStep) tree(sc *Context) cmakeTree {
	return treeFor(filepath.Join(sc.BuildDir, "counters"), s.B.SourceID(), s.B.RuntimeRoot(sc.BuildDir))
}

func (s *CountersStep) genDir(sc *Context) string {
	return filepath.Join(sc.BuildDir, "counters", "gen")
}

func (s *CountersStep) configure(sc *Context) []string {
	return []string{s.B.Toolchain.Out.CMakePath, "-S", s.B.RuntimeRoot(sc.BuildDir), "-B", s.tree(sc).Dir,
		"-DCMAKE_BUILD_TYPE=Release", "-DORCHARD_BACKEND=" + BackendEmu,
		"-DCMAKE_CXX_COMPILER=" + s.B.Toolchain.Out.CXXPath,
		"-DORCHARD_GEN_DIR=" + s.genDir(sc), "-DORCHARD_COUNTERS=ON"}
}

func (s *CountersStep) buildArgs(sc *Context) []string {
	return []string{s.B.Toolchain.Out.CMakePath, "--build", s.tree(sc).Dir, "--parallel",
		strconv.Itoa(runtime.NumCPU()), "--target", CountersRunnerName}
}

func (s *CountersStep) outputs(sc *Context) CountersOut {
	return CountersOut{Runner: filepath.Join(s.tree(sc).Dir, CountersRunnerName), GenDir: s.genDir(sc)}
}

// Key: the runtime but torch/ and python/ file by file (kernels, shim, host, CMake), the
// tools, the commands and the environment CMake's configure reads.
func (s *CountersStep) Key(sc *Context) (KeyInputs, error) {
	files, err := s.B.sourceFiles(runnerFile)
	if err != nil {
		return KeyInputs{}, err
	}
	k := KeyInputs{
		Version:  "1",
		Config:   map[string]string{"runtime": s.B.SourceID()},
		Files:    files,
		Commands: [][]string{s.configure(sc), s.buildArgs(sc)},
		Env:      ConfigureEnv,
		Tools:    s.B.Toolchain.Out.Tools(),
		Outputs:  []string{s.outputs(sc).Runner},
	}
	kernels, err := s.B.Source.KernelFiles()
	if err != nil {
		return k, err
	}
	for _, f := range kernels {
		k.Outputs = append(k.Outputs, filepath.Join(s.genDir(sc), emugen.OutputName(f)))
	}
	return k, nil
}

func (s *CountersStep) Run(ctx context.Context, sc *Context) (Result, error) {
	root, err := s.B.materialize(sc.BuildDir)
	if err != nil {
		return Result{}, err
	}
	files, err := s.B.Source.KernelFiles()
	if err != nil {
		return Result{}, err
	}
	if len(files) == 0 {
		return Result{}, fmt.Errorf("the runtime at %s has no kernels/*.metal files", root)
	}
	gen := s.genDir(sc)
	if err := os.MkdirAll(gen, 0o755); err != nil {
		return Result{}, err
	}
	var units []string
	for _, f := range files {
		p := filepath.Join(root, filepath.FromSlash(f))
		src, err := os.ReadFile(p)
		if err != nil {
			return Result{}, err
		}
		cpp, _, err := emugen.GenerateCounting(p, src, filepath.Join(root, "include"))
		if err != nil {
			c := checks.Check{ID: "counters-runner", Title: s.Title(), Status: checks.Fail, Evidence: []string{err.Error()},
				Hint: "the counting build counts through device/threadgroup pointers and one-dimensional threadgroup arrays (docs/emu.md, the counting build)"}
			var se *emugen.SourceError
			if errors.As(err, &se) {
				c.File, c.Line = s.B.SourcePath(sc.BuildDir, se.File), se.Line
				c.Locations = []checks.Location{{File: c.File, Line: se.Line, Message: se.Msg}}
			}
			return Result{Checks: []checks.Check{c}, Detail: "the counting pre-pass rejected a kernel"}, nil
		}
		out := filepath.Join(gen, emugen.OutputName(f))
		// Unchanged units keep their time stamps: CMake recompiles only what changed.
		if old, err := os.ReadFile(out); err != nil || !bytes.Equal(old, cpp) {
			if err := WriteFileAtomic(out, cpp, 0o644); err != nil {
				return Result{}, err
			}
		}
		units = append(units, out)
	}
	if err := pruneUnits(gen, units); err != nil {
		return Result{}, err
	}
	tree, fresh := s.tree(sc), configureValues(sc.Getenv)
	fresh["compiler"] = s.B.Toolchain.Out.CXXPath
	why, err := tree.prepare(fresh)
	if err != nil {
		return Result{}, err
	}
	if why != "" && sc.Log != nil {
		fmt.Fprintf(sc.Log, "# starting the CMake tree %s afresh: %s\n", tree.Dir, why)
	}
	if err := tree.forget(); err != nil {
		return Result{}, err
	}
	sc.Progress("cmake configure (counting runner)")
	env := envList(configureValues(sc.Getenv))
	if err := sc.Exec(ctx, Cmd{Args: s.configure(sc), Env: env}); err != nil {
		return Result{}, withHint(err, "CMake could not configure the counting runner; the step log has its full output: "+
			filepath.Join(sc.BuildDir, "logs", "steps", s.Name()+".log"))
	}
	if err := tree.record(fresh); err != nil {
		return Result{}, err
	}
	onLine := func(l string) {
		if m := percentRE.FindStringSubmatch(l); m != nil {
			sc.Progress("[" + m[1] + "%] " + m[2])
		}
	}
	if err := sc.Exec(ctx, Cmd{Args: s.buildArgs(sc), Env: env, OnLine: onLine}); err != nil {
		return Result{}, withHint(err, "the counting runner failed to build; the compiler's errors are in "+
			filepath.Join(sc.BuildDir, "logs", "steps", s.Name()+".log"))
	}
	s.Out = s.outputs(sc)
	return Result{Detail: "built " + CountersRunnerName}, nil
}

// CountersRunner builds (or reuses, from the stamps) the counting emu runner
// for b and returns its path: one engine run of b.Toolchain and a
// CountersStep, with opts (BuildDir, Getenv, Events ...; Backend is ignored:
// the counting runner is always emu). It is what `orchard bench --counters`
// calls; a failure's checklist items are in the returned *Run.
func CountersRunner(ctx context.Context, opts Options, b *Build) (string, *Run, error) {
	opts.Backend = BackendEmu
	step := &CountersStep{B: b}
	run, err := New(opts).Run(ctx, []Step{b.Toolchain, step})
	if err != nil {
		return "", run, err
	}
	if run.Failed {
		return "", run, fmt.Errorf("the counting runner (%s) failed to build: see %s", CountersRunnerName,
			filepath.Join(opts.BuildDir, "logs", "steps", step.Name()+".log"))
	}
	return step.Out.Runner, run, nil
}

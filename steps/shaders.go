package steps

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/orchardkit/orchard/metalkern/emugen"

	"github.com/orchardkit/orchard/checks"
)

// ShadersOut is the shader step's typed output.
type ShadersOut struct {
	// RuntimeDir is the runtime source root on disk (materialised, or the
	// ejected directory).
	RuntimeDir string `json:"runtime_dir"`
	// GenDir holds the emu translation units (<kernel file>.emu.cpp).
	GenDir string `json:"gen_dir"`
	// Kernels are the host names found in the .metal files.
	Kernels []string `json:"kernels"`
	// Metallib is the compiled Metal library (Metal toolchain present).
	Metallib string `json:"metallib,omitempty"`
}

// ShadersStep compiles every .metal file. emu: the Go pre-pass and binding
// generation, then a C++ syntax check of each translation unit. metal (or
// any machine with the Metal toolchain): `xcrun -sdk macosx metal` per file,
// then `metallib`. Diagnostics point at the .metal file and line.
type ShadersStep struct {
	B   *Build
	Out ShadersOut
}

func (s *ShadersStep) Name() string  { return "shaders" }
func (s *ShadersStep) Title() string { return "Shaders compile" }
func (s *ShadersStep) Output() any   { return &s.Out }

// CheckIDs: one "shaders" item, whatever the number of files.
func (s *ShadersStep) CheckIDs(string) []string { return []string{"shaders"} }

func (s *ShadersStep) metal() bool {
	return s.B.Toolchain != nil && s.B.Toolchain.Out.MetalPath != ""
}

// Key: the kernels, headers and shim (not the hosts: editing a host reruns
// only the kernel build), the compilers and the flags.
func (s *ShadersStep) Key(sc *Context) (KeyInputs, error) {
	srcFiles, err := s.B.sourceFiles(func(p string) bool {
		return strings.HasPrefix(p, "kernels/") || strings.HasPrefix(p, "include/") || strings.HasPrefix(p, "emu/")
	})
	if err != nil {
		return KeyInputs{}, err
	}
	k := KeyInputs{
		Version: "2",
		Config:  map[string]string{"backend": sc.Backend, "runtime_dir": s.B.RuntimeRoot(sc.BuildDir), "metal": fmt.Sprint(s.metal())},
		Files:   srcFiles,
		Env:     []string{"CXX", "CXXFLAGS"},
		Tools:   s.B.Toolchain.Out.Tools(),
	}
	if s.metal() {
		k.Config["metal_flags"] = strings.Join(MetalFlags, " ")
	}
	files, err := s.B.Source.KernelFiles()
	if err != nil {
		return k, err
	}
	gen := filepath.Join(sc.BuildDir, "gen")
	for _, f := range files {
		k.Outputs = append(k.Outputs, filepath.Join(gen, emugen.OutputName(f)))
	}
	if s.metal() {
		k.Outputs = append(k.Outputs, filepath.Join(sc.BuildDir, "metal", "orchard.metallib"))
	}
	return k, nil
}

func (s *ShadersStep) Run(ctx context.Context, sc *Context) (Result, error) {
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
	gen := filepath.Join(sc.BuildDir, "gen")
	if err := os.MkdirAll(gen, 0o755); err != nil {
		return Result{}, err
	}
	s.Out = ShadersOut{RuntimeDir: root, GenDir: gen}

	// Pre-pass + bindings: a parse error is reported like a compile error.
	var res Result
	var units []string
	for _, f := range files {
		p := filepath.Join(root, filepath.FromSlash(f))
		src, err := os.ReadFile(p)
		if err != nil {
			return Result{}, err
		}
		cpp, sigs, err := emugen.Generate(p, src, filepath.Join(root, "include"))
		if err != nil {
			c := checks.Check{ID: "shaders", Title: s.Title(), Status: checks.Fail, Evidence: []string{err.Error()},
				Hint: "follow the emu conventions for kernel signatures and threadgroup memory (docs/emu.md)"}
			var se *emugen.SourceError
			if errors.As(err, &se) {
				c.File, c.Line = s.B.SourcePath(sc.BuildDir, se.File), se.Line
				c.Locations = []checks.Location{{File: c.File, Line: se.Line, Message: se.Msg}}
			}
			res.Checks = append(res.Checks, c)
			continue
		}
		for _, k := range sigs {
			s.Out.Kernels = append(s.Out.Kernels, k.HostName)
		}
		out := filepath.Join(gen, emugen.OutputName(f))
		if err := WriteFileAtomic(out, cpp, 0o644); err != nil {
			return Result{}, err
		}
		units = append(units, out)
	}
	if len(res.Checks) > 0 {
		res.Checks = mergeChecks(res.Checks)
		res.Detail = "the emu pre-pass rejected a kernel"
		return res, nil
	}
	// CMake globs the gen dir: drop units of kernels this runtime does not
	// have (another --runtime's, or a deleted kernel's).
	if err := pruneUnits(gen, units); err != nil {
		return Result{}, err
	}

	// Compile each unit (syntax and semantics, no code generation: the
	// kernel build compiles for real), two at a time.
	sc.Progress(fmt.Sprintf("compiling %d kernel files for emu", len(units)))
	type outcome struct {
		out string
		err error
	}
	outs := make([]outcome, len(units))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for i, u := range units {
		wg.Add(1)
		go func(i int, u string) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			var mu sync.Mutex
			var b strings.Builder
			args := append([]string{s.B.Toolchain.Out.CXXPath}, emuCompileFlags(root)...)
			args = append(args, "-fsyntax-only", u)
			err := sc.Exec(ctx, Cmd{Args: args, OnLine: func(l string) { mu.Lock(); b.WriteString(l + "\n"); mu.Unlock() }})
			outs[i] = outcome{b.String(), err}
		}(i, u)
	}
	wg.Wait()
	if ctx.Err() != nil {
		return Result{}, ctx.Err()
	}
	failed := 0
	where := func(f string) string { return s.B.SourcePath(sc.BuildDir, f) }
	for _, o := range outs {
		if o.err == nil {
			continue
		}
		failed++
		var ee *ExecError
		if !errors.As(o.err, &ee) {
			return Result{}, o.err
		}
		res.Checks = append(res.Checks, diagnosticsCheck("shaders", s.Title(), o.out, []string{o.err.Error()},
			"fix the error at the .metal line above, then rerun '"+s.B.Rerun("rebuild")+"'", where))
	}
	if failed > 0 {
		res.Checks = mergeChecks(res.Checks)
		res.Detail = fmt.Sprintf("%d of %d kernel files failed to compile", failed, len(units))
		return res, nil
	}

	ev := []string{fmt.Sprintf("emu: %d files, %d kernels (pre-pass + %s)", len(units), len(s.Out.Kernels), path.Base(s.B.Toolchain.Out.CXXPath))}
	if s.metal() {
		lib, mres, err := s.compileMetal(ctx, sc, root, files)
		if err != nil {
			return Result{}, err
		}
		if mres != nil {
			return Result{Checks: []checks.Check{*mres}, Detail: "the Metal compiler rejected a kernel"}, nil
		}
		s.Out.Metallib = lib
		ev = append(ev, "metal: "+lib)
	}
	res.Checks = []checks.Check{{ID: "shaders", Title: s.Title(), Status: checks.Pass, Evidence: ev}}
	res.Detail = fmt.Sprintf("%d kernels from %d files", len(s.Out.Kernels), len(units))
	return res, nil
}

// The Metal compile's language version and deployment target: the defaults
// of the runtime's CMakeLists.txt (ORCHARD_METAL_STD, ORCHARD_MACOS_MIN),
// which a test holds equal. Without -mmacosx-version-min the target is the
// SDK's, and the library fails to load on an older macOS.
const (
	MetalStd      = "metal3.0"
	MetalMacOSMin = "13.0"
)

// MetalFlags are the flags of every `xcrun metal` compile, as in the
// runtime's CMakeLists.txt. -fno-fast-math: Metal's default fast math leaves
// INFINITY and NaN undefined (the forward pass writes -INFINITY for an
// empty row's log-sum-exp); the kernels ask for fast:: where they want it
// (fast::exp2 in the softmax), as MLX and PyTorch do.
var MetalFlags = []string{"-std=" + MetalStd, "-mmacosx-version-min=" + MetalMacOSMin, "-fno-fast-math", "-O3", "-Wall"}

// metalCompileArgs is the command compiling one .metal file to AIR.
func metalCompileArgs(root, src, air string) []string {
	args := append([]string{"xcrun", "-sdk", "macosx", "metal"}, MetalFlags...)
	return append(args, "-I", filepath.Join(root, "include"), "-I", filepath.Join(root, "kernels"), "-c", src, "-o", air)
}

// compileMetal runs the Metal compiler on every file (so one run reports
// every file's errors, each at its file:line:col) and links a metallib.
func (s *ShadersStep) compileMetal(ctx context.Context, sc *Context, root string, files []string) (string, *checks.Check, error) {
	dir := filepath.Join(sc.BuildDir, "metal")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, err
	}
	where := func(f string) string { return s.B.SourcePath(sc.BuildDir, f) }
	var airs []string
	var failed []checks.Check
	for _, f := range files {
		sc.Progress("metal " + f)
		air := filepath.Join(dir, strings.TrimSuffix(path.Base(f), ".metal")+".air")
		var b strings.Builder
		args := metalCompileArgs(root, filepath.Join(root, filepath.FromSlash(f)), air)
		if err := sc.Exec(ctx, Cmd{Args: args, OnLine: func(l string) { b.WriteString(l + "\n") }}); err != nil {
			var ee *ExecError
			if !errors.As(err, &ee) {
				return "", nil, err
			}
			hint := "fix the error at the .metal line above (the Metal compiler is stricter than emu), then rerun '" + s.B.Rerun("rebuild") + "'"
			if missingMetalToolchain(b.String()) {
				hint = "xcodebuild -downloadComponent MetalToolchain"
			}
			failed = append(failed, diagnosticsCheck("shaders", s.Title(), b.String(), append([]string{err.Error()}, ee.Tail...), hint, where))
			continue
		}
		airs = append(airs, air)
	}
	if len(failed) > 0 {
		c := mergeChecks(failed)[0]
		return "", &c, nil
	}
	lib := filepath.Join(dir, "orchard.metallib")
	args := append([]string{"xcrun", "-sdk", "macosx", "metallib"}, airs...)
	args = append(args, "-o", lib)
	if err := sc.Exec(ctx, Cmd{Args: args}); err != nil {
		var ee *ExecError
		if !errors.As(err, &ee) {
			return "", nil, err
		}
		c := checks.Check{ID: "shaders", Title: s.Title(), Status: checks.Fail, Evidence: append([]string{err.Error()}, ee.Tail...)}
		if missingMetalToolchain(strings.Join(ee.Tail, "\n")) {
			c.Hint = "xcodebuild -downloadComponent MetalToolchain"
		}
		return "", &c, nil
	}
	return lib, nil, nil
}

// emuCompileFlags are the flags the runtime's CMakeLists.txt compiles the
// generated units with (kept in step with it: docs/emu.md).
func emuCompileFlags(root string) []string {
	return []string{"-std=c++20", "-pthread", "-Wno-attributes",
		"-I", filepath.Join(root, "emu", "include"), "-I", filepath.Join(root, "include"), "-I", filepath.Join(root, "emu")}
}

// pruneUnits removes the generated *.emu.cpp files in gen that are not keep.
func pruneUnits(gen string, keep []string) error {
	old, err := filepath.Glob(filepath.Join(gen, "*.emu.cpp"))
	if err != nil {
		return err
	}
	for _, p := range old {
		if !slices.Contains(keep, p) {
			if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
				return err
			}
		}
	}
	return nil
}

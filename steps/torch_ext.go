package steps

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/orchardkit/orchard/checks"
)

// TorchExtOut is the torch-extension step's typed output: what `orchard
// env` and the later torch steps need to use the op library.
type TorchExtOut struct {
	// Library is the built op library (liborchard_ops.so).
	Library string `json:"library"`
	// PackageDir is the directory holding the orchard_ops package (for
	// PYTHONPATH): <runtime>/python.
	PackageDir string `json:"package_dir"`
	// Python is the interpreter it was built for.
	Python PythonInfo `json:"python"`
	// TorchCMake is the TorchConfig.cmake CMake used.
	TorchCMake string `json:"torch_cmake,omitempty"`
}

// TorchExtensionStep configures and builds the op library
// (<runtime>/torch/CMakeLists.txt, find_package(Torch)) against the
// PyTorch of the chosen interpreter, from the shader step's generated
// kernels (and on Metal its metallib, for the MPS ops), in
// <build-dir>/torch/<tree>. The contract (flags, outputs) is at the top of
// runtime/torch/CMakeLists.txt.
type TorchExtensionStep struct {
	B       *Build
	Shaders *ShadersStep
	Out     TorchExtOut
}

func (s *TorchExtensionStep) Name() string  { return "torch-extension" }
func (s *TorchExtensionStep) Title() string { return "PyTorch op library (orchard_ops)" }
func (s *TorchExtensionStep) Output() any   { return &s.Out }

// CheckIDs: the build is one item.
func (s *TorchExtensionStep) CheckIDs(string) []string { return []string{"torch-extension"} }

// TorchLibraryName is the op library's file name: .so on every platform,
// macOS too, as PyTorch's own extensions (runtime/torch/CMakeLists.txt).
const TorchLibraryName = "liborchard_ops.so"

// TorchTarget is the op library's CMake target.
const TorchTarget = "orchard_ops"

func (s *TorchExtensionStep) py(sc *Context) PythonInfo { return s.B.python().Info(sc) }

// tree is the op library's CMake tree: one per runtime source, as the runner's.
func (s *TorchExtensionStep) tree(sc *Context) cmakeTree {
	sum := sha256.Sum256([]byte(s.B.SourceID()))
	return cmakeTree{Dir: filepath.Join(sc.BuildDir, "torch", hex.EncodeToString(sum[:])[:12]),
		Source: filepath.Join(s.B.RuntimeRoot(sc.BuildDir), "torch")}
}

// fresh: a new compiler or another torch needs a new CMake cache (Torch_DIR
// and the compiler are cached at the first configure).
func (s *TorchExtensionStep) fresh(sc *Context) map[string]string {
	m := configureValues(sc.Getenv)
	py := s.py(sc)
	m["compiler"] = s.B.Toolchain.Out.CXXPath
	m["python"] = py.Path
	m["torch"] = py.Torch + " " + py.TorchDir
	return m
}

// torchConfigDir is the TorchConfig.cmake directory when orchard knows it:
// torch.utils.cmake_prefix_path (pip), else /usr/lib/<triplet>/cmake/Torch
// (Debian's libtorch-dev). "" leaves it to CMake's own search.
func (s *TorchExtensionStep) torchConfigDir(py PythonInfo) string {
	if p := py.CMakePrefix(); p != "" {
		return filepath.Join(p, "Torch")
	}
	if m, _ := filepath.Glob("/usr/lib/*/cmake/Torch/TorchConfig.cmake"); len(m) > 0 {
		return filepath.Dir(m[0])
	}
	return ""
}

func (s *TorchExtensionStep) configure(sc *Context) []string {
	t := s.tree(sc)
	args := []string{s.B.Toolchain.Out.CMakePath, "-S", t.Source, "-B", t.Dir,
		"-DCMAKE_BUILD_TYPE=Release", "-DCMAKE_CXX_COMPILER=" + s.B.Toolchain.Out.CXXPath,
		"-DORCHARD_GEN_DIR=" + s.Shaders.Out.GenDir}
	if d := s.torchConfigDir(s.py(sc)); d != "" {
		args = append(args, "-DTorch_DIR="+d)
	}
	if s.Shaders.Out.Metallib != "" {
		args = append(args, "-DORCHARD_METALLIB="+s.Shaders.Out.Metallib)
	}
	return args
}

func (s *TorchExtensionStep) buildArgs(sc *Context) []string {
	return []string{s.B.Toolchain.Out.CMakePath, "--build", s.tree(sc).Dir, "--parallel", strconv.Itoa(runtime.NumCPU()), "--target", TorchTarget}
}

func (s *TorchExtensionStep) library(sc *Context) string {
	return filepath.Join(s.tree(sc).Dir, TorchLibraryName)
}

// Key: the runtime's sources but the Python package and tests (the op
// library's C++, the host code, the kernels, the CMake files), the
// generated kernels, the interpreter and its torch, the tools, the
// commands and CMake's environment.
func (s *TorchExtensionStep) Key(sc *Context) (KeyInputs, error) {
	files, err := s.B.sourceFiles(func(p string) bool { return !strings.HasPrefix(p, "python/") })
	if err != nil {
		return KeyInputs{}, err
	}
	py := s.py(sc)
	k := KeyInputs{
		Version: "1",
		Config: map[string]string{"runtime": s.B.SourceID(), "backend": sc.Backend, "python": py.Path, "python_version": py.Version,
			"torch": py.Torch, "torch_dir": py.TorchDir, "problem": py.Problem},
		Files:    files,
		Commands: [][]string{s.configure(sc), s.buildArgs(sc)},
		Env:      ConfigureEnv,
		Tools:    s.B.Toolchain.Out.Tools(),
		Inputs:   []string{s.Shaders.Out.GenDir},
	}
	if s.Shaders.Out.Metallib != "" {
		k.Inputs = append(k.Inputs, s.Shaders.Out.Metallib)
	}
	if s.Out.Library != "" {
		k.Outputs = []string{s.Out.Library}
	}
	return k, nil
}

// noTorch is the skipped check of a torch step when the interpreter cannot
// be used; the reason is also the step's detail.
func noTorch(id, title string, py PythonInfo) Result {
	return Result{Detail: "skipped: " + py.Problem, Checks: []checks.Check{{ID: id, Title: title, Status: checks.Skip,
		Evidence: []string{py.Problem, py.Describe()}, Hint: TorchFix}}}
}

func (s *TorchExtensionStep) Run(ctx context.Context, sc *Context) (Result, error) {
	py := s.py(sc)
	s.Out = TorchExtOut{Python: py}
	if py.Problem != "" {
		return noTorch(s.Name(), s.Title(), py), nil
	}
	root, err := s.B.materialize(sc.BuildDir)
	if err != nil {
		return Result{}, err
	}
	if _, err := os.Stat(filepath.Join(root, "torch", "CMakeLists.txt")); err != nil {
		return Result{}, withHint(fmt.Errorf("the runtime in %s has no torch/CMakeLists.txt", root),
			"eject the runtime again ('orchard eject DIR') to get the op library's sources, or drop --runtime")
	}
	cfgDir := s.torchConfigDir(py)
	if cfgDir == "" {
		// CMake may still find it; if not, its error is hinted below.
		fmt.Fprintln(sc.Log, "# no TorchConfig.cmake known for this torch: CMake searches its default prefixes")
	}
	tree, fresh := s.tree(sc), s.fresh(sc)
	why, err := tree.prepare(fresh)
	if err != nil {
		return Result{}, err
	}
	if why != "" {
		fmt.Fprintf(sc.Log, "# starting the CMake tree %s afresh: %s\n", tree.Dir, why)
	}
	if err := tree.forget(); err != nil {
		return Result{}, err
	}
	logPath := filepath.Join(sc.BuildDir, "logs", "steps", s.Name()+".log")
	env := envList(configureValues(sc.Getenv))
	sc.Progress("cmake configure (PyTorch " + py.Torch + ")")
	if err := sc.Exec(ctx, Cmd{Args: s.configure(sc), Env: env}); err != nil {
		r := failed(s, withHint(err, "CMake could not configure the op library against PyTorch "+py.Torch+
			"; if it cannot find Torch, install its CMake package ('sudo apt-get install libtorch-dev' on Debian; pip's torch has it) — the full output is in "+logPath))
		r.EnvFailure = cfgDir == ""
		return r, nil
	}
	if err := tree.record(fresh); err != nil {
		return Result{}, err
	}
	onLine := func(l string) {
		if m := percentRE.FindStringSubmatch(strings.TrimSpace(l)); m != nil {
			sc.Progress("[" + m[1] + "%] " + m[2])
		}
	}
	if err := sc.Exec(ctx, Cmd{Args: s.buildArgs(sc), Env: env, OnLine: onLine}); err != nil {
		return Result{}, withHint(err, "the op library failed to build; the compiler's errors are above and in "+logPath)
	}
	lib := s.library(sc)
	if _, err := os.Stat(lib); err != nil {
		return Result{}, fmt.Errorf("the build finished but made no %s in %s", filepath.Base(lib), tree.Dir)
	}
	s.Out.Library = lib
	s.Out.PackageDir = filepath.Join(root, "python")
	if cfgDir != "" {
		s.Out.TorchCMake = filepath.Join(cfgDir, "TorchConfig.cmake")
	}
	ev := []string{"library " + lib, fmt.Sprintf("PyTorch %s (%s)", py.Torch, py.TorchDir), py.Describe()}
	if s.Out.TorchCMake != "" {
		ev = append(ev, "CMake package "+s.Out.TorchCMake)
	}
	return Result{Detail: fmt.Sprintf("built %s against PyTorch %s", filepath.Base(lib), py.Torch),
		Checks: []checks.Check{{ID: s.Name(), Title: s.Title(), Status: checks.Pass, Evidence: ev}}}, nil
}

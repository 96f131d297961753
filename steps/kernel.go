package steps

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
)

// KernelOut is the kernel step's typed output: the runner programs.
type KernelOut struct {
	Runner     string `json:"runner"`
	TSanRunner string `json:"tsan_runner,omitempty"`
	Metallib   string `json:"metallib,omitempty"`
}

// KernelStep configures and builds the runner with CMake (from the
// runtime's CMakeLists.txt) and reports CMake's [NN%] progress.
type KernelStep struct {
	B       *Build
	Shaders *ShadersStep
	Out     KernelOut
}

func (s *KernelStep) Name() string  { return "kernel" }
func (s *KernelStep) Title() string { return "Kernel build (runner)" }
func (s *KernelStep) Output() any   { return &s.Out }

// CheckIDs: the build is one item.
func (s *KernelStep) CheckIDs(string) []string { return []string{"kernel"} }

// tree is the CMake tree of this run's runtime source.
func (s *KernelStep) tree(sc *Context) cmakeTree {
	return treeFor(sc.BuildDir, s.B.SourceID(), s.B.RuntimeRoot(sc.BuildDir))
}

func (s *KernelStep) cmakeDir(sc *Context) string { return s.tree(sc).Dir }

// fresh are the values whose change needs a new CMake cache for the tree.
func (s *KernelStep) fresh(sc *Context) map[string]string {
	m := configureValues(sc.Getenv)
	m["compiler"] = s.B.Toolchain.Out.CXXPath
	return m
}

func (s *KernelStep) runnerName(sc *Context) string { return "orchard-runner-" + sc.Backend }

func (s *KernelStep) configure(sc *Context) []string {
	args := []string{s.B.Toolchain.Out.CMakePath, "-S", s.Shaders.Out.RuntimeDir, "-B", s.cmakeDir(sc),
		"-DCMAKE_BUILD_TYPE=Release", "-DORCHARD_BACKEND=" + sc.Backend,
		"-DCMAKE_CXX_COMPILER=" + s.B.Toolchain.Out.CXXPath}
	if sc.Backend == BackendEmu {
		args = append(args, "-DORCHARD_GEN_DIR="+s.Shaders.Out.GenDir)
	}
	if sc.Backend == BackendMetal && s.Shaders.Out.Metallib != "" {
		// The shader step compiled the library: CMake builds only the host.
		args = append(args, "-DORCHARD_PREBUILT_METALLIB="+s.Shaders.Out.Metallib)
	}
	args = append(args, "-DORCHARD_TSAN="+onOff(s.B.Race))
	return args
}

func (s *KernelStep) buildArgs(sc *Context) []string {
	args := []string{s.B.Toolchain.Out.CMakePath, "--build", s.cmakeDir(sc), "--parallel", strconv.Itoa(runtime.NumCPU()), "--target", s.runnerName(sc)}
	if s.B.Race && sc.Backend == BackendEmu {
		args = append(args, s.runnerName(sc)+"-tsan")
	}
	return args
}

func onOff(b bool) string {
	if b {
		return "ON"
	}
	return "OFF"
}

func (s *KernelStep) outputs(sc *Context) KernelOut {
	o := KernelOut{Runner: filepath.Join(s.cmakeDir(sc), s.runnerName(sc))}
	if sc.Backend == BackendMetal {
		// The runner loads the library the shader step compiled.
		o.Metallib = s.Shaders.Out.Metallib
	}
	if s.B.Race && sc.Backend == BackendEmu {
		o.TSanRunner = o.Runner + "-tsan"
	}
	return o
}

// Key: the runtime but torch/ and python/ (hosts, launcher, CMake files) file by file, the
// generated translation units, the tools, the build configuration and the
// environment CMake's configure reads.
func (s *KernelStep) Key(sc *Context) (KeyInputs, error) {
	files, err := s.B.sourceFiles(runnerFile)
	if err != nil {
		return KeyInputs{}, err
	}
	o := s.outputs(sc)
	k := KeyInputs{
		Version:  "2",
		Config:   map[string]string{"runtime": s.B.SourceID(), "race": fmt.Sprint(s.B.Race)},
		Files:    files,
		Commands: [][]string{s.configure(sc), s.buildArgs(sc)},
		Env:      ConfigureEnv,
		Tools:    s.B.Toolchain.Out.Tools(),
		Inputs:   []string{s.Shaders.Out.GenDir},
		Outputs:  []string{o.Runner},
	}
	if o.TSanRunner != "" {
		k.Outputs = append(k.Outputs, o.TSanRunner)
	}
	if o.Metallib != "" {
		k.Inputs = append(k.Inputs, o.Metallib)
	}
	return k, nil
}

var percentRE = regexp.MustCompile(`^\[\s*(\d+)%\]\s*(.*)$`)

func (s *KernelStep) Run(ctx context.Context, sc *Context) (Result, error) {
	// The shaders step may have been cached: bring the sources up to date.
	if _, err := s.B.materialize(sc.BuildDir); err != nil {
		return Result{}, err
	}
	// A tree configured elsewhere (a copied or moved build dir), for other
	// sources, or with other compiler flags cannot be configured again:
	// start it afresh.
	tree, fresh := s.tree(sc), s.fresh(sc)
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
	sc.Progress("cmake configure")
	if err := sc.Exec(ctx, Cmd{Args: s.configure(sc), Env: envList(configureValues(sc.Getenv))}); err != nil {
		return Result{}, withHint(err, "CMake could not configure the runtime; the step log has its full output: "+filepath.Join(sc.BuildDir, "logs", "steps", "kernel.log"))
	}
	if err := tree.record(fresh); err != nil {
		return Result{}, err
	}
	onLine := func(l string) {
		if m := percentRE.FindStringSubmatch(strings.TrimSpace(l)); m != nil {
			sc.Progress("[" + m[1] + "%] " + m[2])
		}
	}
	// The same environment: the build reruns the configure when a CMake file changed.
	if err := sc.Exec(ctx, Cmd{Args: s.buildArgs(sc), Env: envList(configureValues(sc.Getenv)), OnLine: onLine}); err != nil {
		return Result{}, withHint(err, "the runner failed to build; the compiler's errors are above and in "+filepath.Join(sc.BuildDir, "logs", "steps", "kernel.log"))
	}
	s.Out = s.outputs(sc)
	detail := "built " + filepath.Base(s.Out.Runner)
	if s.Out.TSanRunner != "" {
		detail += " and " + filepath.Base(s.Out.TSanRunner)
	}
	return Result{Detail: detail}, nil
}

// hinted is an error with a fix.
type hinted struct {
	error
	hint string
}

func (h hinted) Hint() string  { return h.hint }
func (h hinted) Unwrap() error { return h.error }

func withHint(err error, hint string) error { return hinted{err, hint} }

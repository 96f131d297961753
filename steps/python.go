package steps

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/orchardkit/orchard/internal/proc"
)

// MinTorchOps is the oldest PyTorch the op library supports (Debian's
// 1.13: TORCH_LIBRARY, torch.ops.load_library, torch.autograd.Function).
const MinTorchOps = "1.13"

// DefaultPython is the interpreter used when no python3 on PATH has torch:
// Debian's python3-torch belongs to it.
const DefaultPython = "/usr/bin/python3"

// TorchFix is how to get PyTorch and pytest for the interpreter.
const TorchFix = "install PyTorch and pytest for it: 'sudo apt-get install python3-torch libtorch-dev python3-pytest' (Debian, for /usr/bin/python3) or 'python3 -m pip install torch pytest'; or name another interpreter with --python PATH"

// PythonInfo is what orchard found out about the interpreter the torch
// steps use. It is part of their typed outputs and cache keys.
type PythonInfo struct {
	// Path is the interpreter as orchard runs it (absolute).
	Path string `json:"path"`
	// Why it was chosen ("--python", "the first python3 on PATH with torch", …).
	Why string `json:"why"`
	// Version is Python's version ("3.11.2").
	Version string `json:"version,omitempty"`
	// Torch is torch's version ("1.13.0a0+gitunknown"); "" when it has none.
	Torch string `json:"torch,omitempty"`
	// TorchDir is the torch package's directory.
	TorchDir string `json:"torch_dir,omitempty"`
	// Pytest is pytest's version; "" when it has none.
	Pytest string `json:"pytest,omitempty"`
	// Problem says why the torch steps cannot use it ("" when they can).
	Problem string `json:"problem,omitempty"`
	// SysPath are the directories of its sys.path (and the real
	// executable): the python probe cache's key stats them.
	SysPath []string `json:"sys_path,omitempty"`
}

// Describe is the interpreter in one line for evidence.
func (p PythonInfo) Describe() string {
	s := "python " + p.Path
	if p.Version != "" {
		s += " (" + p.Version + ")"
	}
	if p.Why != "" {
		s += ": " + p.Why
	}
	return s
}

// CMakePrefix is torch.utils.cmake_prefix_path (<torch>/share/cmake) when
// it holds Torch's CMake package (pip's torch); "" otherwise (Debian's
// torch has none there: CMake finds /usr/lib/<triplet>/cmake/Torch).
func (p PythonInfo) CMakePrefix() string {
	if p.TorchDir == "" {
		return ""
	}
	prefix := filepath.Join(p.TorchDir, "share", "cmake")
	if _, err := os.Stat(filepath.Join(prefix, "Torch", "TorchConfig.cmake")); err != nil {
		return ""
	}
	return prefix
}

// Python is the --python choice, resolved once per run (lazily: only a
// pipeline with the torch steps asks).
type Python struct {
	// Flag is --python (or $ORCHARD_PYTHON) as given ("": the default search).
	Flag string
	// From names where Flag came from ("--python", "ORCHARD_PYTHON").
	From string

	once sync.Once
	info PythonInfo
}

// Info resolves the interpreter: --python when given, else the first
// python3 on PATH whose torch is importable, else /usr/bin/python3. The
// answers are remembered in the build dir (pythonCache), so a no-op
// rebuild costs a few stats, not an interpreter start per candidate.
func (p *Python) Info(sc *Context) PythonInfo {
	p.once.Do(func() {
		c := loadPythonCache(sc.BuildDir, sc.Force, sc.Getenv)
		p.info = resolvePythonWith(p.Flag, sc.Getenv, c.probe)
		c.save()
		if p.Flag != "" && p.From != "" {
			p.info.Why = p.From
		}
	})
	return p.info
}

func resolvePython(flag string, getenv func(string) string) PythonInfo {
	return resolvePythonWith(flag, getenv, probePython)
}

func resolvePythonWith(flag string, getenv func(string) string, probePython func(string) PythonInfo) PythonInfo {
	if flag != "" {
		path, err := lookPath(flag, getenv("PATH"))
		if err != nil {
			return PythonInfo{Path: flag, Why: "--python", Problem: fmt.Sprintf("--python %s: %v", flag, err)}
		}
		info := probePython(path)
		info.Why = "--python"
		return info
	}
	seen := map[string]bool{}
	for _, dir := range filepath.SplitList(getenv("PATH")) {
		if dir == "" || !filepath.IsAbs(dir) {
			continue
		}
		cand := filepath.Join(dir, "python3")
		if seen[cand] || !isExecutable(cand) {
			continue
		}
		seen[cand] = true
		if info := probePython(cand); info.Torch != "" {
			info.Why = "the first python3 on PATH that has torch"
			info.Problem = torchProblem(info)
			return info
		}
	}
	if !isExecutable(DefaultPython) {
		return PythonInfo{Path: DefaultPython, Why: "no python3 on PATH has torch", Problem: "no python3 on PATH has torch, and there is no " + DefaultPython}
	}
	info := probePython(DefaultPython)
	info.Why = "no python3 on PATH has torch; the default " + DefaultPython
	if info.Problem == "" {
		info.Problem = torchProblem(info)
	}
	return info
}

// probeScript prints what the torch steps need to know, without importing
// torch (which takes a second or more): its version comes from the package
// metadata, or from torch/version.py.
const probeScript = `
import sys, os, json, importlib.util as u
out = {"version": "%d.%d.%d" % tuple(sys.version_info[:3])}
try:
    import importlib.metadata as m
except ImportError:
    m = None
def version(name):
    if m is not None:
        try:
            return m.version(name)
        except Exception:
            pass
    return ""
s = u.find_spec("torch")
out["sys_path"] = [os.path.realpath(sys.executable)] + [p for p in sys.path if p and os.path.isdir(p)]
if s is not None and s.origin:
    d = os.path.dirname(s.origin)
    out["torch_dir"] = d
    v = version("torch")
    if not v:
        try:
            for l in open(os.path.join(d, "version.py")):
                if l.startswith("__version__"):
                    v = l.split("=", 1)[1].strip().strip("'\"")
        except OSError:
            pass
    out["torch"] = v or "unknown"
if u.find_spec("pytest") is not None:
    out["pytest"] = version("pytest") or "unknown"
print(json.dumps(out))
`

// probePython asks the interpreter at path for its version, torch and pytest.
func probePython(path string) PythonInfo {
	info := PythonInfo{Path: path}
	var out bytes.Buffer
	var errOut bytes.Buffer
	err := proc.Run(context.Background(), proc.Cmd{Args: []string{path, "-c", probeScript}, Dir: os.TempDir(), Timeout: 30 * time.Second,
		Stdout: &out, Output: &errOut})
	if err != nil {
		info.Problem = fmt.Sprintf("%s does not run as a Python interpreter (%v)", path, err)
		return info
	}
	var got struct {
		Version  string   `json:"version"`
		Torch    string   `json:"torch"`
		TorchDir string   `json:"torch_dir"`
		Pytest   string   `json:"pytest"`
		SysPath  []string `json:"sys_path"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(out.Bytes()), &got); err != nil {
		info.Problem = fmt.Sprintf("%s printed no answer orchard understands (%v)", path, err)
		return info
	}
	info.Version, info.Torch, info.TorchDir, info.Pytest, info.SysPath = got.Version, got.Torch, got.TorchDir, got.Pytest, got.SysPath
	info.Problem = torchProblem(info)
	return info
}

// torchProblem says why info's torch cannot be used ("" when it can).
func torchProblem(info PythonInfo) string {
	if info.Torch == "" {
		return fmt.Sprintf("no PyTorch for %s (import torch would fail)", info.Path)
	}
	if !TorchSupported(info.Torch) {
		return fmt.Sprintf("PyTorch %s for %s is older than %s, the oldest orchard_ops supports", info.Torch, info.Path, MinTorchOps)
	}
	return ""
}

var torchVersionRE = regexp.MustCompile(`^(\d+)\.(\d+)`)

// TorchSupported reports whether torch version v (as torch reports it:
// "1.13.0a0+gitunknown", "2.5.1") is MinTorchOps or newer. Only major.minor
// count: Debian's 1.13.0a0 is a 1.13.
func TorchSupported(v string) bool {
	m := torchVersionRE.FindStringSubmatch(v)
	if m == nil {
		return false
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	return major > 1 || major == 1 && minor >= 13
}

// LookPython finds the --python value name (a path, or a command on path)
// as orchard will run it: an absolute path.
func LookPython(name, path string) (string, error) { return lookPath(name, path) }

// lookPath finds name as exec.LookPath does, against the given PATH.
func lookPath(name, path string) (string, error) {
	if strings.ContainsRune(name, filepath.Separator) {
		abs, err := filepath.Abs(name)
		if err != nil {
			return "", err
		}
		if !isExecutable(abs) {
			return "", fmt.Errorf("no executable file at %s", abs)
		}
		return abs, nil
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			continue
		}
		if c := filepath.Join(dir, name); isExecutable(c) {
			return filepath.Abs(c)
		}
	}
	return "", fmt.Errorf("%s is not on PATH", name)
}

package steps

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/orchardkit/orchard/checks"
)

// EnvOpsLibrary names the op library orchard_ops loads (when unset: the one
// next to the package).
const EnvOpsLibrary = "ORCHARD_OPS_LIBRARY"

// TorchEnv is the environment that makes `import orchard_ops` use the build
// in out: PYTHONPATH (the package first, then the one given) and
// ORCHARD_OPS_LIBRARY.
func TorchEnv(out TorchExtOut, pythonPath string) []string {
	pp := out.PackageDir
	if pythonPath != "" {
		pp += string(filepath.ListSeparator) + pythonPath
	}
	return []string{"PYTHONPATH=" + pp, EnvOpsLibrary + "=" + out.Library}
}

// TorchImportOut is the torch-import step's typed output.
type TorchImportOut struct {
	Module    string   `json:"module"`
	Torch     string   `json:"torch"`
	TorchFile string   `json:"torch_file"`
	Ops       []string `json:"ops"`
}

// TorchImportStep imports orchard_ops with the chosen interpreter, as a
// user's `import orchard_ops` would after `eval "$(orchard env)"`, and
// reports the module file, torch's version and the registered ops.
type TorchImportStep struct {
	B   *Build
	Ext *TorchExtensionStep
	Out TorchImportOut
}

func (s *TorchImportStep) Name() string  { return "torch-import" }
func (s *TorchImportStep) Title() string { return "import orchard_ops" }
func (s *TorchImportStep) Output() any   { return &s.Out }

// CheckIDs: one item.
func (s *TorchImportStep) CheckIDs(string) []string { return []string{"torch-import"} }

// TorchOps are the ops the library registers (TORCH_LIBRARY(orchard, …)).
var TorchOps = []string{"flash_attn_fwd", "flash_attn_bwd"}

const importScript = `
import json, torch, orchard_ops
ops = []
for n in %s:
    try:
        getattr(torch.ops.orchard, n)
        ops.append(n)
    except Exception:
        pass
print("ORCHARD-IMPORT " + json.dumps({"module": orchard_ops.__file__, "torch": torch.__version__, "torch_file": torch.__file__, "ops": ops}))
`

func (s *TorchImportStep) script() string {
	q := make([]string, len(TorchOps))
	for i, o := range TorchOps {
		q[i] = fmt.Sprintf("%q", o)
	}
	return fmt.Sprintf(importScript, "["+strings.Join(q, ", ")+"]")
}

// Key: the library, the package's files, the interpreter and its torch.
func (s *TorchImportStep) Key(sc *Context) (KeyInputs, error) {
	files, err := s.B.sourceFiles(func(p string) bool { return strings.HasPrefix(p, "python/orchard_ops/") })
	if err != nil {
		return KeyInputs{}, err
	}
	py := s.B.python().Info(sc)
	k := KeyInputs{
		Version: "1",
		Config: map[string]string{"python": py.Path, "python_version": py.Version, "torch": py.Torch,
			"problem": py.Problem, "built_for": s.Ext.Out.Python.Path, "package": s.Ext.Out.PackageDir},
		Commands: [][]string{{py.Path, "-c", s.script()}},
		Files:    files,
		Env:      []string{"PYTHONPATH"},
	}
	if s.Ext.Out.Library != "" {
		k.Inputs = []string{s.Ext.Out.Library}
	}
	return k, nil
}

// usable says why the op library cannot be used with py ("" when it can).
func usable(ext TorchExtOut, py PythonInfo) string {
	switch {
	case py.Problem != "":
		return py.Problem
	case ext.Library == "":
		return "the op library is not built (the torch-extension step did not build it)"
	case ext.Python.Path != py.Path || ext.Python.Torch != py.Torch:
		return fmt.Sprintf("the op library was built for %s (PyTorch %s), not %s (PyTorch %s): run 'orchard rebuild --python %s'",
			ext.Python.Path, ext.Python.Torch, py.Path, py.Torch, py.Path)
	}
	return ""
}

func (s *TorchImportStep) Run(ctx context.Context, sc *Context) (Result, error) {
	py := s.B.python().Info(sc)
	if py.Problem != "" {
		return noTorch(s.Name(), s.Title(), py), nil
	}
	if why := usable(s.Ext.Out, py); why != "" {
		return Result{}, Skip(why)
	}
	// The earlier steps may have been cached: bring the package up to date
	// with this orchard's runtime.
	if _, err := s.B.materialize(sc.BuildDir); err != nil {
		return Result{}, err
	}
	var out bytes.Buffer
	err := sc.Exec(ctx, Cmd{Args: []string{py.Path, "-c", s.script()}, Dir: sc.BuildDir,
		Env: TorchEnv(s.Ext.Out, sc.Getenv("PYTHONPATH")), Stdout: &out})
	if err != nil {
		return Result{}, withHint(err, "import orchard_ops failed with "+py.Path+"; its traceback is above and in "+
			filepath.Join(sc.BuildDir, "logs", "steps", s.Name()+".log"))
	}
	fmt.Fprint(sc.Log, out.String())
	var got TorchImportOut
	found := false
	for _, l := range strings.Split(out.String(), "\n") {
		if j, ok := strings.CutPrefix(strings.TrimSpace(l), "ORCHARD-IMPORT "); ok {
			found = json.Unmarshal([]byte(j), &got) == nil
		}
	}
	if !found {
		return Result{}, fmt.Errorf("the import printed no result line (stdout: %q)", strings.TrimSpace(out.String()))
	}
	s.Out = got
	c := checks.Check{ID: s.Name(), Title: s.Title(), Status: checks.Pass, Evidence: []string{
		"orchard_ops from " + got.Module,
		fmt.Sprintf("torch %s from %s", got.Torch, got.TorchFile),
		"ops: torch.ops.orchard." + strings.Join(got.Ops, ", torch.ops.orchard."),
		py.Describe(),
	}}
	if len(got.Ops) != len(TorchOps) {
		c.Status = checks.Fail
		c.Evidence[2] = fmt.Sprintf("ops registered: %v; expected %v", got.Ops, TorchOps)
		c.Hint = "the library loaded but does not register every op: check TORCH_LIBRARY(orchard, …) in the runtime's torch/ sources"
	}
	return Result{Detail: fmt.Sprintf("torch %s, %s", got.Torch, got.Module), Checks: []checks.Check{c}}, nil
}

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orchardkit/orchard/checks"
	"github.com/orchardkit/orchard/metalkern"
	"github.com/orchardkit/orchard/steps"
)

// The torch steps for real, with Debian's PyTorch (/usr/bin/python3; .ci/run
// installs it): one op-library build, then everything else reuses it.

// torchPython is /usr/bin/python3 when it has torch and pytest; the test is
// skipped (with why) otherwise.
func torchPython(t *testing.T) string {
	t.Helper()
	py := steps.DefaultPython
	if err := exec.Command(py, "-c", "import torch, pytest").Run(); err != nil {
		t.Skipf("%s cannot import torch and pytest (%v): sudo apt-get install python3-torch libtorch-dev python3-pytest (.ci/run does)", py, err)
	}
	return py
}

func torchCheck(r *checks.Report, id string) checks.Check {
	for _, c := range r.Checks {
		if c.ID == id {
			return c
		}
	}
	return checks.Check{}
}

// trainingStep is a training step on CPU tensors through orchard_ops:
// forward, a loss, backward; the gradients are held to float64 math
// attention (1e-5 relative for float32, 5e-3 for float16).
const trainingStep = `
import math, torch, orchard_ops
torch.manual_seed(0)
def math_attn(q, k, v, causal):
    s = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    if causal:
        s = s.masked_fill(torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).triu(1), float("-inf"))
    return s.softmax(-1) @ v
def rel(a, b):
    return ((a.double() - b).norm() / b.norm()).item()
for dtype, tol in ((torch.float32, 1e-5), (torch.float16, 5e-3)):
    q = torch.randn(2, 3, 37, 64, dtype=dtype, requires_grad=True)
    k = torch.randn(2, 3, 45, 64, dtype=dtype, requires_grad=True)
    v = torch.randn(2, 3, 45, 64, dtype=dtype, requires_grad=True)
    w = torch.randn(2, 3, 37, 64, dtype=torch.float64)
    o = orchard_ops.flash_attn(q, k, v, causal=True)
    (o.double() * w).sum().backward()
    r = [x.detach().double().requires_grad_() for x in (q, k, v)]
    o64 = math_attn(*r, causal=True)
    (o64 * w).sum().backward()
    errs = {"o": rel(o.detach(), o64.detach()), "dq": rel(q.grad, r[0].grad), "dk": rel(k.grad, r[1].grad), "dv": rel(v.grad, r[2].grad)}
    bad = {n: e for n, e in errs.items() if not e <= tol}
    assert not bad, (dtype, bad)
    print("TRAINING-STEP", dtype, "ok", errs)
`

func TestTorchSteps(t *testing.T) {
	py := torchPython(t)
	dir := t.TempDir()
	env := []string{"ORCHARD_PYTHON=" + py}
	// An ejected runtime, so that the suite can gain a failing test below
	// (the embedded runtime's copy in the build dir is kept equal to it).
	rt := filepath.Join(t.TempDir(), "rt")
	if _, err := metalkern.Embedded().Eject(rt, false); err != nil {
		t.Fatal(err)
	}
	target := []string{"--runtime", rt, "--build-dir", dir}

	// First run: the op library is built against the interpreter's torch,
	// imported, and the shipped pytest suite passes on CPU tensors (emu).
	r, code, stderr := runJSONEnv(t, env, append([]string{"rebuild"}, target...)...)
	mustPass(t, "rebuild", r, code, stderr)
	for _, id := range []string{"torch-extension", "torch-import", "torch-smoke"} {
		c := torchCheck(r, id)
		if c.Status != checks.Pass {
			t.Fatalf("%s: %s %q, want pass", id, c.Status, c.Evidence)
		}
		if st := stepByName(r, id); st.Cached {
			t.Errorf("%s cached on the first run", id)
		}
		// The report says which interpreter was used.
		if ev := strings.Join(c.Evidence, "\n"); !strings.Contains(ev, "python "+py+" (") {
			t.Errorf("%s's evidence does not name the interpreter %s: %q", id, py, c.Evidence)
		}
	}
	smoke := strings.Join(torchCheck(r, "torch-smoke").Evidence, "\n")
	if !strings.Contains(smoke, " passed") || !strings.Contains(smoke, "kernel-call log: ") || !strings.Contains(smoke, "on emu") {
		t.Errorf("torch-smoke's evidence lacks pytest's counts or the kernel-call log lines: %q", smoke)
	}
	imp := strings.Join(torchCheck(r, "torch-import").Evidence, "\n")
	if !strings.Contains(imp, "orchard_ops from "+filepath.Join(rt, "python", "orchard_ops")) || !strings.Contains(imp, "torch 1.") && !strings.Contains(imp, "torch 2.") {
		t.Errorf("torch-import's evidence lacks the module file or torch's version: %q", imp)
	}

	// Second run: all three come from the cache.
	r, code, stderr = runJSONEnv(t, env, append([]string{"rebuild"}, target...)...)
	mustPass(t, "second rebuild", r, code, stderr)
	for _, id := range []string{"torch-extension", "torch-import", "torch-smoke"} {
		if st := stepByName(r, id); !st.Cached {
			t.Errorf("%s ran again on an unchanged second run: %s", id, st.Explain)
		}
	}

	// orchard env makes import orchard_ops work in the user's Python: a
	// training step's gradients match float64 math attention.
	script := filepath.Join(t.TempDir(), "train.py")
	if err := os.WriteFile(script, []byte(trainingStep), 0o644); err != nil {
		t.Fatal(err)
	}
	sh := exec.Command("sh", "-c", `set -e; eval "$("$0" env --build-dir "$1")"; unset ORCHARD_TEST_AS_MAIN; exec "$2" "$3"`, os.Args[0], dir, py, script)
	sh.Env = append(os.Environ(), "ORCHARD_TEST_AS_MAIN=1")
	out, err := sh.CombinedOutput()
	if err != nil || strings.Count(string(out), "TRAINING-STEP") != 2 {
		t.Fatalf("a training step after eval \"$(orchard env)\": %v\n%s", err, out)
	}

	// A failing test in the suite: only torch-smoke runs again (its key
	// has the suite's files), fails, and names the test; verify, never
	// cached, imports and tests the built library again and says the same.
	failing := filepath.Join(rt, "python", "tests", "test_zz_orchard_probe.py")
	if err := os.WriteFile(failing, []byte("def test_deliberately_failing():\n    assert 1 == 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantName := "test_zz_orchard_probe.py::test_deliberately_failing - assert 1 == 2"
	r, code, _ = runJSONEnv(t, env, append([]string{"rebuild"}, target...)...)
	c := torchCheck(r, "torch-smoke")
	if code != exitFailed || c.Status != checks.Fail || !strings.Contains(strings.Join(c.Evidence, "\n"), wantName) {
		t.Fatalf("rebuild with a failing test: exit %d, torch-smoke %s %q", code, c.Status, c.Evidence)
	}
	if !stepByName(r, "kernel").Cached || !stepByName(r, "smoke").Cached || !stepByName(r, "torch-extension").Cached ||
		!stepByName(r, "torch-import").Cached || stepByName(r, "torch-smoke").Cached {
		t.Errorf("a new test reran more or less than torch-smoke: %+v", r.Steps)
	}
	r, code, _ = runJSONEnv(t, env, append([]string{"verify"}, target...)...)
	c = torchCheck(r, "torch-smoke")
	if code != exitFailed || c.Status != checks.Fail || !strings.Contains(strings.Join(c.Evidence, "\n"), wantName) {
		t.Fatalf("verify with a failing test: exit %d, torch-smoke %s %q", code, c.Status, c.Evidence)
	}
	if imp := torchCheck(r, "torch-import"); imp.Status != checks.Pass || stepByName(r, "torch-import").Cached {
		t.Errorf("verify's torch-import: %s (cached %v)", imp.Status, stepByName(r, "torch-import").Cached)
	}
	if err := os.Remove(failing); err != nil {
		t.Fatal(err)
	}

	// Without torch for the interpreter the three are skipped with the
	// reason and the fix (verify: the two it runs).
	r, code, stderr = runJSONEnv(t, []string{"ORCHARD_PYTHON=" + pythonWithoutTorch}, append([]string{"verify"}, target...)...)
	mustPass(t, "verify without torch", r, code, stderr)
	for _, id := range []string{"torch-import", "torch-smoke"} {
		c := torchCheck(r, id)
		if c.Status != checks.Skip || !strings.Contains(c.Evidence[0], "no PyTorch for "+pythonWithoutTorch) || !strings.Contains(c.Hint, "apt-get install python3-torch libtorch-dev python3-pytest") {
			t.Errorf("%s without torch: %s %q hint %q", id, c.Status, c.Evidence, c.Hint)
		}
	}
}

// Every run of the other tests uses the no-torch double: the torch steps
// are skipped with the reason and the fix, and the run passes.
func TestTorchStepsSkippedWithoutTorch(t *testing.T) {
	r, code, stderr := runJSON(t, "rebuild", "--build-dir", sharedBuild(t))
	mustPass(t, "rebuild", r, code, stderr)
	for _, id := range []string{"torch-extension", "torch-import", "torch-smoke"} {
		c := torchCheck(r, id)
		if c.Status != checks.Skip || len(c.Evidence) == 0 || !strings.Contains(c.Evidence[0], "no PyTorch for") || c.Hint != steps.TorchFix {
			t.Errorf("%s: %s %q hint %q, want a skip with the reason and the fix", id, c.Status, c.Evidence, c.Hint)
		}
	}
	// orchard env on that build: no library, why, and the fix (exit 3).
	code, out, errOut := runCLI(t, nil, "env", "--build-dir", sharedBuild(t))
	if code != exitEnvironment || out != "" || !strings.Contains(errOut, "no PyTorch for") || !strings.Contains(errOut, "apt-get install python3-torch") {
		t.Errorf("env on a build without the op library: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestPythonFlag(t *testing.T) {
	code, out, errOut := runCLI(t, nil, "rebuild", "--python", "/no/such/python3", "--build-dir", t.TempDir())
	if code != exitUsage || out != "" || !strings.Contains(errOut, "--python /no/such/python3: no executable file at /no/such/python3") {
		t.Errorf("a missing --python: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	var got *RebuildOptions
	f := &Factory{IO: &IOStreams{Getenv: func(string) string { return "" }}, Global: &GlobalOptions{}}
	root := newRootCmd(f, func(o *RebuildOptions) error { got = o; return nil })
	self, err := os.Executable() // any executable file will do: the flag is only captured
	if err != nil {
		t.Fatal(err)
	}
	root.SetArgs([]string{"--python", self})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if got == nil || got.Python != self {
		t.Errorf("bare orchard --python %s: %+v", self, got)
	}
}

func TestEnvWithoutBuild(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{{"env", "--build-dir", dir}, {"env", "--build-dir", dir, "--json"}} {
		code, out, errOut := runCLI(t, nil, args...)
		if code != exitEnvironment || out != "" || !strings.Contains(errOut, "no op library in "+dir) || !strings.Contains(errOut, "run 'orchard rebuild --build-dir "+dir+"' first") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
}

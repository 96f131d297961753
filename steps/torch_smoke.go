package steps

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"

	"github.com/orchardkit/orchard/checks"
	"github.com/orchardkit/orchard/logs"
)

// EnvTestDevice selects the device the pytest suite runs on ("cpu": CPU
// tensors through emu; "mps": MPS tensors through Metal).
const EnvTestDevice = "ORCHARD_TEST_DEVICE"

// TorchSmokeOut is the torch-smoke step's typed output: one pytest run per
// device.
type TorchSmokeOut struct {
	Runs []TorchSmokeRun `json:"runs"`
}

// TorchSmokeRun is the suite's result on one device.
type TorchSmokeRun struct {
	Device  string        `json:"device"`
	RunID   string        `json:"run_id"`
	Summary PytestSummary `json:"summary"`
}

// TorchSmokeStep runs the pytest suite shipped in the runtime
// (<runtime>/python/tests: forward and backward through autograd against
// float64 math attention) with the chosen interpreter: on CPU tensors
// (emu) everywhere, and on a Mac's metal backend also on MPS tensors.
// Each device is a checklist item with pytest's counts and the failing
// tests' names.
type TorchSmokeStep struct {
	B   *Build
	Ext *TorchExtensionStep
	Out TorchSmokeOut
}

func (s *TorchSmokeStep) Name() string  { return "torch-smoke" }
func (s *TorchSmokeStep) Title() string { return "orchard_ops pytest suite" }
func (s *TorchSmokeStep) Output() any   { return &s.Out }

// Devices the suite runs on for backend: CPU tensors always (the emu path),
// MPS tensors on the metal backend.
func (s *TorchSmokeStep) Devices(backend string) []string {
	if backend == BackendMetal {
		return []string{"cpu", "mps"}
	}
	return []string{"cpu"}
}

// checkID is the item of device: torch-smoke (cpu), torch-smoke.mps.
func (s *TorchSmokeStep) checkID(device string) string {
	if device == "cpu" {
		return s.Name()
	}
	return s.Name() + "." + device
}

// CheckIDs: one item per device.
func (s *TorchSmokeStep) CheckIDs(backend string) []string {
	var ids []string
	for _, d := range s.Devices(backend) {
		ids = append(ids, s.checkID(d))
	}
	return ids
}

func (s *TorchSmokeStep) testsDir(sc *Context) string {
	return filepath.Join(s.B.RuntimeRoot(sc.BuildDir), "python", "tests")
}

func (s *TorchSmokeStep) command(py PythonInfo, sc *Context) []string {
	// -q: one line of dots; -rfE: the short summary names what failed or
	// errored; no cache provider: nothing is written into the sources.
	return []string{py.Path, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", s.testsDir(sc)}
}

// Key: the package and the suite, the library, the interpreter, its torch
// and pytest, the devices, and the knobs the op reads.
func (s *TorchSmokeStep) Key(sc *Context) (KeyInputs, error) {
	files, err := s.B.sourceFiles(func(p string) bool { return strings.HasPrefix(p, "python/") })
	if err != nil {
		return KeyInputs{}, err
	}
	py := s.B.python().Info(sc)
	k := KeyInputs{
		Version: "1",
		Config: map[string]string{"python": py.Path, "python_version": py.Version, "torch": py.Torch, "pytest": py.Pytest,
			"problem": py.Problem, "devices": strings.Join(s.Devices(sc.Backend), ","), "built_for": s.Ext.Out.Python.Path},
		Commands: [][]string{s.command(py, sc)},
		Files:    files,
		Env:      []string{"PYTHONPATH", "ORCHARD_DISPATCH_GROUPS", "ORCHARD_METAL_DEVICE", emuWatchdogEnv},
	}
	if s.Ext.Out.Library != "" {
		k.Inputs = []string{s.Ext.Out.Library}
	}
	return k, nil
}

func (s *TorchSmokeStep) Run(ctx context.Context, sc *Context) (Result, error) {
	py := s.B.python().Info(sc)
	devices := s.Devices(sc.Backend)
	skipAll := func(reason, hint string) Result {
		r := Result{Detail: "skipped: " + reason}
		for _, d := range devices {
			r.Checks = append(r.Checks, checks.Check{ID: s.checkID(d), Title: s.title(d), Status: checks.Skip,
				Evidence: []string{reason, py.Describe()}, Hint: hint})
		}
		return r
	}
	if py.Problem != "" {
		return skipAll(py.Problem, TorchFix), nil
	}
	if why := usable(s.Ext.Out, py); why != "" {
		return Result{}, Skip(why)
	}
	// The earlier steps may have been cached: bring the package (and the
	// suite) up to date with this orchard's runtime.
	if _, err := s.B.materialize(sc.BuildDir); err != nil {
		return Result{}, err
	}
	if py.Pytest == "" {
		return skipAll("no pytest for "+py.Path, "install it: 'sudo apt-get install python3-pytest' (Debian, for /usr/bin/python3) or '"+py.Path+" -m pip install pytest'"), nil
	}
	s.Out = TorchSmokeOut{}
	res := Result{}
	var details []string
	for _, d := range devices {
		run, c, err := s.runDevice(ctx, sc, py, d)
		if err != nil {
			return Result{}, err
		}
		s.Out.Runs = append(s.Out.Runs, run)
		res.Checks = append(res.Checks, c)
		details = append(details, d+": "+run.Summary.Line())
	}
	res.Detail = strings.Join(details, "; ")
	return res, nil
}

func (s *TorchSmokeStep) title(device string) string {
	if device == "mps" {
		return "orchard_ops pytest suite on MPS tensors (Metal)"
	}
	return "orchard_ops pytest suite on CPU tensors (emu)"
}

// maxFailedNames is how many failing tests a check names; the rest are in
// the step log.
const maxFailedNames = 10

// runDevice runs the suite on one device; the error is non-nil only when
// ctx was cancelled.
func (s *TorchSmokeStep) runDevice(ctx context.Context, sc *Context, py PythonInfo, device string) (TorchSmokeRun, checks.Check, error) {
	run := TorchSmokeRun{Device: device, RunID: logs.NewRunID()}
	c := checks.Check{ID: s.checkID(device), Title: s.title(device), Status: checks.Pass}
	logPath := filepath.Join(sc.BuildDir, "logs", "steps", s.Name()+".log")
	env := append(TorchEnv(s.Ext.Out, sc.Getenv("PYTHONPATH")), EnvTestDevice+"="+device, "PYTHONDONTWRITEBYTECODE=1")
	env = append(env, logEnv(sc, run.RunID)...)
	var out bytes.Buffer
	w := io.Writer(&out)
	if sc.Log != nil {
		w = io.MultiWriter(&out, sc.Log)
	}
	sc.Progress("pytest on " + device)
	err := sc.Exec(ctx, Cmd{Args: s.command(py, sc), Dir: filepath.Dir(s.testsDir(sc)), Env: env, Stdout: w,
		OnLine: func(l string) { sc.Progress("pytest on " + device + ": " + strings.TrimSpace(l)) }})
	if ctx.Err() != nil {
		return run, c, ctx.Err()
	}
	run.Summary = ParsePytest(out.String())
	sum := run.Summary
	rerun := fmt.Sprintf("%s=%s %s", EnvTestDevice, device, quoteArgs(s.command(py, sc)))
	var ee *ExecError
	code := 0
	if errors.As(err, &ee) {
		code = ee.ExitCode
	} else if err != nil {
		code = -1
	}
	c.Evidence = []string{fmt.Sprintf("%s (%s)", sum.Line(), device)}
	if sum.Seconds != "" {
		c.Evidence[0] = fmt.Sprintf("%s in %s (%s)", sum.Line(), sum.Seconds, device)
	}
	switch {
	case code == 0 && sum.Found:
	case code == 1 || len(sum.Failed)+len(sum.Errors) > 0:
		c.Status = checks.Fail
		c.Hint = "see the failing tests' output in " + logPath + "; rerun them with 'PYTHONPATH=" + s.Ext.Out.PackageDir + " " + EnvOpsLibrary + "=" + s.Ext.Out.Library + " " + rerun + "'"
	case code == 5:
		c.Status = checks.Fail
		c.Evidence = []string{"pytest collected no tests in " + s.testsDir(sc)}
		c.Hint = "the runtime's python/tests holds the suite: eject the runtime again or drop --runtime"
	default:
		c.Status = checks.Fail
		c.Evidence = []string{fmt.Sprintf("pytest did not finish its run: %v", err)}
		if ee != nil {
			c.Evidence = append(c.Evidence, lastLines(ee.Tail, 8)...)
		}
		c.Hint = "the full output is in " + logPath + "; run it by hand: " + rerun
	}
	names := append(append([]string{}, sum.Failed...), sum.Errors...)
	sort.Strings(names)
	for i, n := range names {
		if i == maxFailedNames {
			c.Evidence = append(c.Evidence, fmt.Sprintf("%d more in %s", len(names)-i, logPath))
			break
		}
		c.Evidence = append(c.Evidence, "FAILED "+n)
	}
	c.Evidence = append(c.Evidence, kernelLogEvidence(sc, run.RunID)...)
	c.Evidence = append(c.Evidence, py.Describe())
	return run, c, nil
}

// kernelLogEvidence is what the op wrote to the kernel-call log in this run
// (the same lines as the runner's, with storage=): the proof of which
// kernels ran, and in which storage mode.
func kernelLogEvidence(sc *Context, runID string) []string {
	path := logs.KernelLogPath(sc.BuildDir, sc.Getenv)
	sum, err := logs.Inspect(path, runID)
	if err != nil || sum.Lines == 0 {
		return []string{"kernel-call log: no lines of run " + runID + " in " + path}
	}
	var st []string
	for _, k := range sortedKeys(mapString(sum.Storage)) {
		st = append(st, fmt.Sprintf("%s %d", k, sum.Storage[k]))
	}
	line := fmt.Sprintf("kernel-call log: %d FWD, %d BWD lines of run %s on %s (storage: %s)", sum.FWD, sum.BWD, runID,
		strings.Join(sum.Backends, ", "), strings.Join(st, ", "))
	if sum.Errors+sum.Fallbacks > 0 {
		line += fmt.Sprintf("; %d ERROR, %d FALLBACK", sum.Errors, sum.Fallbacks)
	}
	return []string{line, "  (orchard tail-logs, or grep run=" + runID + " " + path + ")"}
}

func mapString(m map[string]int) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = fmt.Sprint(v)
	}
	return out
}

func lastLines(ls []string, n int) []string {
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return ls
}

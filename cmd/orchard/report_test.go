package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orchardkit/orchard/checks"
	"github.com/orchardkit/orchard/steps"
)

// decodeOne parses out as exactly one JSON document.
func decodeOne(t *testing.T, out string) checks.Report {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	var r checks.Report
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("stdout is not JSON (%v):\n%s", err, out)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); err != io.EOF {
		t.Fatalf("stdout holds more than one JSON document:\n%s", out)
	}
	return r
}

// Failures before the first step (exit 3) still end with the report, in
// every format asked for: the terminal checklist, --json, --junit and, in
// GitHub Actions, an annotation and the step summary.
func TestEarlyFailuresReportInEveryFormat(t *testing.T) {
	busyDir := t.TempDir()
	release, err := steps.Lock(context.Background(), busyDir, "orchard test", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	tests := map[string]struct {
		args   []string
		id     string
		inText string
	}{
		"verify before any build": {[]string{"verify", "--build-dir", t.TempDir()}, "build", "no build of the emu backend in"},
		"metal without Metal":     {[]string{"rebuild", "--backend", "metal", "--build-dir", t.TempDir()}, "backend", "--backend metal cannot run here"},
		"bare orchard, metal":     {[]string{"--backend", "metal", "--build-dir", t.TempDir()}, "backend", "--backend metal cannot run here"},
		"busy lock with no-wait":  {[]string{"rebuild", "--no-wait", "--build-dir", busyDir}, "build-dir.lock", "is in use by"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			// Terminal.
			code, out, _ := runCLI(t, nil, tt.args...)
			if code != exitEnvironment || !strings.Contains(out, "[✗]") || !strings.Contains(out, tt.inText) ||
				!strings.Contains(out, "→ fix:") || !strings.Contains(out, "1 of 1 check failed") {
				t.Fatalf("terminal: exit %d\n%s", code, out)
			}

			// --json, --junit, GitHub Actions, all at once.
			dir := t.TempDir()
			junit, summary := filepath.Join(dir, "orchard.xml"), filepath.Join(dir, "summary.md")
			env := map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": summary}
			args := append(tt.args, "--json")
			if tt.args[0] != "--backend" { // bare orchard takes only the global flags (for now)
				args = append(args, "--junit", junit)
			}
			code, out, errOut := runCLI(t, env, args...)
			if code != exitEnvironment {
				t.Fatalf("--json: exit %d, stderr %s", code, errOut)
			}
			r := decodeOne(t, out)
			if r.OK || len(r.Checks) != 1 || r.Checks[0].ID != tt.id || r.Checks[0].Status != checks.Fail ||
				!strings.Contains(strings.Join(r.Checks[0].Evidence, "\n"), tt.inText) || r.Checks[0].Hint == "" {
				t.Fatalf("JSON report: %+v", r)
			}
			if !strings.Contains(errOut, "::error title="+tt.id+"::") {
				t.Errorf("no annotation for %s on stderr (stdout carries JSON):\n%s", tt.id, errOut)
			}
			if tt.args[0] != "--backend" {
				assertOneFailedTestcase(t, junit, tt.id)
			}
			md, err := os.ReadFile(summary)
			if err != nil || !bytes.Contains(md, []byte("| ❌ | `"+tt.id+"`")) {
				t.Errorf("step summary (%v):\n%s", err, md)
			}
		})
	}
}

// The JUnit file is world-readable, and a path it cannot be written to is
// an error that names the path (the rest of the report is still printed).
func TestJUnitFileModeAndWriteFailure(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok.xml")
	code, _, errOut := runCLI(t, nil, "doctor", "--junit", ok)
	if code != exitOK && code != exitEnvironment {
		t.Fatalf("doctor: exit %d: %s", code, errOut)
	}
	fi, err := os.Stat(ok)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("JUnit file: %v, mode %v", err, fi.Mode().Perm())
	}

	bad := filepath.Join(dir, "missing", "orchard.xml")
	ios, out, errBuf := testIOStreams(nil)
	f := &Factory{IO: ios, Global: &GlobalOptions{}}
	r := &checks.Report{Command: "verify", Checks: []checks.Check{{ID: "forward", Status: checks.Pass}}}
	err = finishReport(f, r, ReportOptions{JUnit: bad}, nil)
	code = exitCode(context.Background(), err, ios)
	if code == exitOK || !strings.Contains(errBuf.String(), bad) || !strings.Contains(out.String(), "1 check passed") {
		t.Fatalf("unwritable --junit: exit %d, stdout %q, stderr %q", code, out, errBuf)
	}
	// A failed run keeps its own exit code; the write error is still said.
	ios, _, errBuf = testIOStreams(nil)
	f.IO = ios
	code = exitCode(context.Background(), finishReport(f, r, ReportOptions{JUnit: bad}, silentExit(exitEnvironment)), ios)
	if code != exitEnvironment || !strings.Contains(errBuf.String(), bad) {
		t.Fatalf("failed run, unwritable --junit: exit %d, stderr %q", code, errBuf)
	}
}

func assertOneFailedTestcase(t *testing.T, junit, id string) {
	t.Helper()
	data, err := os.ReadFile(junit)
	if err != nil {
		t.Fatal(err)
	}
	var suites struct {
		Suite struct {
			Cases []struct {
				Name    string    `xml:"name,attr"`
				Failure *struct{} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(data, &suites); err != nil || len(suites.Suite.Cases) != 1 ||
		suites.Suite.Cases[0].Name != id || suites.Suite.Cases[0].Failure == nil {
		t.Errorf("JUnit (%v):\n%s", err, data)
	}
}

type junitDoc struct {
	Suite struct {
		Cases []struct {
			Name    string    `xml:"name,attr"`
			Time    *float64  `xml:"time,attr"`
			Failure *struct{} `xml:"failure"`
			Skipped *struct {
				Message string `xml:"message,attr"`
			} `xml:"skipped"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func readJUnit(t *testing.T, path string) junitDoc {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d junitDoc
	if err := xml.Unmarshal(data, &d); err != nil {
		t.Fatalf("JUnit does not parse: %v\n%s", err, data)
	}
	return d
}

// A passing and a failing rebuild have the same testcases, each with a
// time; the checks of steps that did not run are skipped with the reason.
func TestJUnitSameTestcasesPassingOrFailing(t *testing.T) {
	dir := sharedBuild(t)
	pass := filepath.Join(t.TempDir(), "pass.xml")
	if code, out, errOut := runCLI(t, nil, "rebuild", "--build-dir", dir, "--junit", pass); code != exitOK {
		t.Fatalf("passing rebuild: exit %d\n%s%s", code, out, errOut)
	}
	rt := editKernel(t, "attn_fwd.metal", func(ls []string) []string {
		for i, l := range ls {
			if strings.Contains(l, "l[r] = 0.0f;") {
				ls[i] = strings.Replace(l, "l[r] = 0.0f;", "l[r] = undeclared_in_metal;", 1)
			}
		}
		return ls
	})
	fail := filepath.Join(t.TempDir(), "fail.xml")
	if code, out, errOut := runCLI(t, nil, "rebuild", "--runtime", rt, "--build-dir", t.TempDir(), "--junit", fail); code != exitFailed {
		t.Fatalf("failing rebuild: exit %d\n%s%s", code, out, errOut)
	}
	p, f := readJUnit(t, pass), readJUnit(t, fail)
	var pn, fn []string
	var timed float64
	for _, c := range p.Suite.Cases {
		pn = append(pn, c.Name)
		// The torch steps run with the no-torch double: skipped, with why.
		if strings.HasPrefix(c.Name, "torch-") && c.Skipped != nil && strings.HasPrefix(c.Skipped.Message, "no PyTorch for ") && c.Time != nil {
			continue
		}
		if c.Time == nil || c.Failure != nil || c.Skipped != nil {
			t.Errorf("passing run, testcase %s: time %v, failure %v, skipped %v", c.Name, c.Time, c.Failure, c.Skipped)
		} else {
			timed += *c.Time
		}
	}
	skipped := 0
	for _, c := range f.Suite.Cases {
		fn = append(fn, c.Name)
		if c.Time == nil {
			t.Errorf("failing run, testcase %s has no time", c.Name)
		}
		if c.Skipped != nil {
			skipped++
			if c.Skipped.Message != "not run: shaders failed" {
				t.Errorf("testcase %s skipped for %q", c.Name, c.Skipped.Message)
			}
		}
	}
	if strings.Join(pn, " ") != strings.Join(fn, " ") {
		t.Fatalf("testcases differ:\n pass: %v\n fail: %v", pn, fn)
	}
	for _, id := range []string{"shaders", "kernel", "runtime-loads", "forward", "backward", "kernel-calls-logged", "logs-clean", "on-accelerator"} {
		if !strings.Contains(" "+strings.Join(pn, " ")+" ", " "+id+" ") {
			t.Errorf("no testcase %s in %v", id, pn)
		}
	}
	// shaders' 7 followers, and the 3 torch steps.
	if skipped != 10 || timed <= 0 {
		t.Errorf("%d skipped testcases in the failing run (want 10), passing run's times sum to %v", skipped, timed)
	}
}

// Four compiler errors in an ejected runtime's kernel are four GitHub
// annotations, each at its file (relative to the workspace), line and column.
func TestFourDiagnosticsFourAnnotations(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the runtime (-short)")
	}
	var want []int
	rt := editKernel(t, "attn_fwd.metal", func(ls []string) []string {
		for i, l := range ls {
			if strings.Contains(l, "l[r] = 0.0f;") {
				var extra []string
				for n := range 4 {
					extra = append(extra, fmt.Sprintf("  float e%d = undeclared_%d;", n, n))
					want = append(want, i+2+n)
				}
				return append(ls[:i+1], append(extra, ls[i+1:]...)...)
			}
		}
		t.Fatal("anchor line not found in attn_fwd.metal")
		return ls
	})
	ws := filepath.Dir(rt)
	env := map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": ws, "PATH": os.Getenv("PATH")}
	code, out, errOut := runCLI(t, env, "rebuild", "--runtime", rt, "--build-dir", t.TempDir())
	if code != exitFailed {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	var got []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "::error ") {
			got = append(got, l)
		}
	}
	t.Logf("annotations:\n%s", strings.Join(got, "\n"))
	if len(got) != 4 {
		t.Fatalf("%d annotations, want 4:\n%s", len(got), strings.Join(got, "\n"))
	}
	file := filepath.ToSlash(filepath.Join(filepath.Base(rt), "kernels", "attn_fwd.metal"))
	for i, l := range got {
		prefix := fmt.Sprintf("::error file=%s,line=%d,col=", file, want[i])
		if !strings.HasPrefix(l, prefix) || !strings.Contains(l, fmt.Sprintf("undeclared_%d", i)) || len(l) > 2*checks.MaxAnnotation {
			t.Errorf("annotation %d: %s\nwant prefix %s", i, l, prefix)
		}
	}
}

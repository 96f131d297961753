package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/orchardkit/orchard/checks"
	"github.com/orchardkit/orchard/steps"
)

// These tests run the real probes on this machine (cmake, a C++ compiler,
// python3); a PATH without cmake is a temp dir of symlinks to everything
// else on PATH.

// doctorPathWithout is a PATH holding every executable of this machine's
// PATH except the named ones.
func doctorPathWithout(t *testing.T, exclude ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		ents, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range ents {
			link := filepath.Join(dir, e.Name())
			if slices.Contains(exclude, e.Name()) {
				continue
			}
			if _, err := os.Lstat(link); err == nil {
				continue // an earlier PATH entry wins
			}
			_ = os.Symlink(filepath.Join(d, e.Name()), link)
		}
	}
	return dir
}

// requireDebian skips assertions about apt-get on other distributions.
func requireDebian(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile("/etc/os-release")
	d := steps.ParseOSRelease(string(b))
	if err != nil || !(d.ID == "debian" || d.ID == "ubuntu" || slices.Contains(d.Like, "debian")) {
		t.Skip("the apt-get hints are checked on Debian-like machines")
	}
	if os.Geteuid() != 0 {
		t.Skip("the fix commands carry sudo when not root")
	}
}

func runOrchard(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	ios, out, errOut := testIOStreams(env)
	code := run(context.Background(), args, ios)
	return code, out.String(), errOut.String()
}

func wantAutoReason() string {
	return "Metal unavailable: not macOS (" + runtime.GOOS + "/" + runtime.GOARCH + "); using emu"
}

func TestDoctorFlags(t *testing.T) {
	f := &Factory{IO: &IOStreams{Out: io.Discard, ErrOut: io.Discard, Getenv: func(string) string { return "" }}, Global: &GlobalOptions{}}
	var got *DoctorOptions
	cmd := newDoctorCmd(f, func(o *DoctorOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"--fix", "-y", "--junit", "x.xml"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if !got.Fix || !got.Yes || got.JUnit != "x.xml" {
		t.Errorf("options: %+v", got)
	}

	code, _, errOut := runOrchard(t, nil, "doctor", "--yes")
	if code != exitUsage || !strings.Contains(errOut, "--yes only applies to --fix") {
		t.Errorf("--yes alone: exit %d, %q", code, errOut)
	}
}

func TestDoctorPassesHere(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("expects auto to pick emu")
	}
	code, out, errOut := runOrchard(t, map[string]string{"PATH": os.Getenv("PATH")}, "doctor")
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{
		"[✓] CMake >= 3.20", "[✓] C++20 compiler", "[-] Metal shader compiler (xcrun metal)",
		"[✓] Backend: auto picks emu", "Backend: auto picks emu (" + wantAutoReason() + ")",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Error("piped output carries escape sequences")
	}
	if errOut != "" {
		t.Errorf("stderr: %q", errOut)
	}
}

func TestDoctorWithoutCMake(t *testing.T) {
	requireDebian(t)
	env := map[string]string{"PATH": doctorPathWithout(t, "cmake")}
	code, out, errOut := runOrchard(t, env, "doctor", "--fix")
	if code != exitEnvironment {
		t.Fatalf("exit %d, want 3\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{
		"[✗] CMake >= 3.20", "cmake not found on PATH", "→ fix: apt-get update && apt-get install -y cmake",
		"To fix, run:\n  apt-get update\n  apt-get install -y cmake\n",
		"Backend: auto picks emu",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if want := "orchard: environment not ready: cmake not found on PATH (fix: apt-get update && apt-get install -y cmake)\n"; errOut != want {
		t.Errorf("stderr %q, want %q", errOut, want)
	}
}

func decodeReport(t *testing.T, out string) checks.Report {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	var r checks.Report
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, out)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		t.Fatalf("stdout holds more than one JSON document:\n%s", out)
	}
	return r
}

func checkByID(r checks.Report, id string) *checks.Check {
	for i := range r.Checks {
		if r.Checks[i].ID == id {
			return &r.Checks[i]
		}
	}
	return nil
}

func TestDoctorJSON(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("expects auto to pick emu")
	}
	code, out, errOut := runOrchard(t, map[string]string{"PATH": os.Getenv("PATH")}, "doctor", "--json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	r := decodeReport(t, out)
	if !r.OK || r.Command != "doctor" || r.Backend != "emu" {
		t.Errorf("report: ok=%v command=%q backend=%q", r.OK, r.Command, r.Backend)
	}
	if c := checkByID(r, "toolchain.cmake"); c == nil || c.Status != checks.Pass {
		t.Errorf("cmake check: %+v", c)
	}
	if c := checkByID(r, "backend"); c == nil || len(c.Evidence) != 1 || c.Evidence[0] != wantAutoReason() {
		t.Errorf("backend check: %+v", c)
	}
	if c := checkByID(r, "toolchain.pytorch"); c == nil || c.Status == checks.Fail {
		t.Errorf("pytorch is information only: %+v", c)
	}
	if !strings.Contains(errOut, "Backend: auto picks emu") {
		t.Errorf("stderr: %q", errOut)
	}
}

func TestDoctorJSONWithoutCMake(t *testing.T) {
	requireDebian(t)
	env := map[string]string{"PATH": doctorPathWithout(t, "cmake")}
	code, out, errOut := runOrchard(t, env, "doctor", "--json", "--fix")
	if code != exitEnvironment {
		t.Fatalf("exit %d", code)
	}
	r := decodeReport(t, out)
	if c := checkByID(r, "toolchain.cmake"); r.OK || c == nil || c.Status != checks.Fail || c.Hint != "apt-get update && apt-get install -y cmake" {
		t.Errorf("report ok=%v cmake=%+v", r.OK, c)
	}
	if !strings.Contains(errOut, "To fix, run:\n  apt-get update\n  apt-get install -y cmake\n") {
		t.Errorf("the fix plan is not on stderr:\n%s", errOut)
	}
}

// fakePackageManager stands in for apt-get (tests must not install
// packages): "installing" cmake links the real cmake into the PATH dir.
type fakePackageManager struct {
	dir   string
	calls [][]string
	fail  bool
}

func (m *fakePackageManager) run(ctx context.Context, argv []string, w io.Writer) error {
	m.calls = append(m.calls, argv)
	io.WriteString(w, "fake apt-get: "+strings.Join(argv, " ")+"\n")
	if slices.Equal(argv, []string{"apt-get", "install", "-y", "cmake"}) {
		if m.fail {
			return errors.New("exit status 100")
		}
		real, err := steps.ExecRunner{}.LookPath("cmake")
		if err != nil {
			return err
		}
		return os.Symlink(real, filepath.Join(m.dir, "cmake"))
	}
	return nil
}

func runDoctorWith(t *testing.T, env map[string]string, pm *fakePackageManager, args ...string) (int, string, string) {
	t.Helper()
	ios, out, errOut := testIOStreams(env)
	f := &Factory{IO: ios, Global: &GlobalOptions{Backend: "auto", Color: "never"}}
	cmd := newDoctorCmd(f, func(o *DoctorOptions) error {
		o.RunFix = pm.run
		return runDoctor(context.Background(), o)
	})
	cmd.SetArgs(args)
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	ctx := context.Background()
	return exitCode(ctx, cmd.ExecuteContext(ctx), ios), out.String(), errOut.String()
}

func TestDoctorFixYesRunsAndReprobes(t *testing.T) {
	requireDebian(t)
	dir := doctorPathWithout(t, "cmake")
	pm := &fakePackageManager{dir: dir}
	code, out, errOut := runDoctorWith(t, map[string]string{"PATH": dir}, pm, "--fix", "--yes")
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	want := [][]string{{"apt-get", "update"}, {"apt-get", "install", "-y", "cmake"}}
	if !slices.EqualFunc(pm.calls, want, slices.Equal) {
		t.Errorf("ran %q, want %q", pm.calls, want)
	}
	if !strings.Contains(errOut, "$ apt-get update\nfake apt-get: apt-get update\n$ apt-get install -y cmake\n") {
		t.Errorf("stderr does not stream the commands:\n%s", errOut)
	}
	before, after, ok := strings.Cut(out, "After the fixes:")
	if !ok || !strings.Contains(before, "[✗] CMake >= 3.20") || !strings.Contains(after, "[✓] CMake >= 3.20") {
		t.Errorf("want the failing checklist, then the passing one:\n%s", out)
	}
}

func TestDoctorFixYesFailingCommand(t *testing.T) {
	requireDebian(t)
	dir := doctorPathWithout(t, "cmake")
	pm := &fakePackageManager{dir: dir, fail: true}
	code, _, errOut := runDoctorWith(t, map[string]string{"PATH": dir}, pm, "--fix", "--yes")
	if code != exitEnvironment || !strings.Contains(errOut, "orchard: fix failed: apt-get install -y cmake: exit status 100") {
		t.Errorf("exit %d\nstderr:\n%s", code, errOut)
	}
}

func TestDoctorColorAlways(t *testing.T) {
	code, out, _ := runOrchard(t, map[string]string{"PATH": os.Getenv("PATH")}, "doctor", "--color", "always")
	if code != exitOK || !strings.Contains(out, "\x1b[") {
		t.Errorf("exit %d; --color always gave no escape sequences:\n%q", code, out)
	}
}

// A failed install still ends with the report: one JSON document with the
// probes and the failed fix.
func TestDoctorFixYesFailingCommandJSON(t *testing.T) {
	requireDebian(t)
	dir := doctorPathWithout(t, "cmake")
	pm := &fakePackageManager{dir: dir, fail: true}
	ios, outBuf, errBuf := testIOStreams(map[string]string{"PATH": dir})
	f := &Factory{IO: ios, Global: &GlobalOptions{}}
	cmd := newDoctorCmd(f, func(o *DoctorOptions) error {
		o.RunFix = pm.run
		return runDoctor(context.Background(), o)
	})
	cmd.SetArgs([]string{"--fix", "--yes", "--json", "--color", "never"})
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	code := exitCode(context.Background(), cmd.ExecuteContext(context.Background()), ios)
	out, errOut := outBuf.String(), errBuf.String()
	r := decodeOne(t, out)
	if code != exitEnvironment || r.OK || checkByID(r, "fix") == nil || checkByID(r, "fix").Status != checks.Fail ||
		!strings.Contains(errOut, "orchard: fix failed: apt-get install -y cmake") {
		t.Fatalf("exit %d, report %+v\nstderr:\n%s", code, r, errOut)
	}
}

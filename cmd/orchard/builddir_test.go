package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/orchardkit/orchard/checks"
	"github.com/orchardkit/orchard/steps"
)

// builtRunner is the runner the kernel step of the build in dir made.
func builtRunner(t *testing.T, dir string) string {
	t.Helper()
	var out steps.KernelOut
	if err := steps.LoadOutput(dir, "kernel", &out); err != nil {
		t.Fatalf("the kernel step's output in %s: %v", dir, err)
	}
	if !strings.HasPrefix(out.Runner, dir+string(filepath.Separator)) {
		t.Fatalf("the runner of %s is %s, outside it", dir, out.Runner)
	}
	return out.Runner
}

// runJSONEnv is runJSON with extra environment variables (KEY=VALUE).
func runJSONEnv(t *testing.T, env []string, args ...string) (*checks.Report, int, string) {
	t.Helper()
	cmd := orchardCmd(append(args, "--json")...)
	cmd.Env = append(cmd.Env, env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	var xe *exec.ExitError
	if errors.As(err, &xe) {
		code = xe.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var r checks.Report
	if jerr := json.Unmarshal(out, &r); jerr != nil {
		t.Fatalf("%v: stdout is not one JSON document (%v):\n%s\nstderr:\n%s", args, jerr, out, stderr.String())
	}
	return &r, code, stderr.String()
}

func mustPass(t *testing.T, what string, r *checks.Report, code int, stderr string) {
	t.Helper()
	if code != 0 || !r.OK {
		var bad []string
		for _, c := range r.Checks {
			if c.Status == checks.Fail {
				bad = append(bad, c.ID+": "+strings.Join(c.Evidence, " | "))
			}
		}
		t.Fatalf("%s: exit %d\n%s\nstderr:\n%s", what, code, strings.Join(bad, "\n"), stderr)
	}
}

// One build dir serves the embedded runtime and an ejected one (and back),
// survives being copied and moved, rebuilds a damaged runner, and hands a
// changed CXXFLAGS to the compiler. One test, so the builds are shared.
func TestBuildDirSwitchCopyMoveDamageAndFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the runtime several times (-short)")
	}
	root := t.TempDir()
	a := filepath.Join(root, "a")
	r, code, stderr := runJSON(t, "rebuild", "--build-dir", a)
	mustPass(t, "embedded runtime", r, code, stderr)

	// README's "Editing a kernel", on the same build dir.
	rt := filepath.Join(root, "runtime")
	if code, _, stderr := runCLI(t, nil, "eject", rt); code != 0 {
		t.Fatalf("eject: %s", stderr)
	}
	f, err := os.OpenFile(filepath.Join(rt, "kernels", "attn_fwd.metal"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("\n// edited by a test\n")
	f.Close()
	r, code, stderr = runJSON(t, "rebuild", "--runtime", rt, "--build-dir", a, "--explain")
	mustPass(t, "switch to an ejected runtime", r, code, stderr)
	if s := stepByName(r, "shaders"); !strings.HasPrefix(s.Explain, "ran: file kernels/attn_fwd.metal changed") {
		t.Errorf("shaders after editing attn_fwd.metal: %q", s.Explain)
	}
	if s := stepByName(r, "kernel"); !strings.Contains(s.Explain, `config runtime changed ("embedded" → "`+rt+`")`) {
		t.Errorf("kernel after switching runtimes: %q", s.Explain)
	}
	ejected := builtRunner(t, a)

	r, code, stderr = runJSON(t, "rebuild", "--build-dir", a)
	mustPass(t, "switch back to the embedded runtime", r, code, stderr)
	if embedded := builtRunner(t, a); embedded == ejected {
		t.Errorf("both runtimes built into one CMake tree: %s", embedded)
	}

	t.Run("copied", func(t *testing.T) {
		b := filepath.Join(root, "b")
		if out, err := exec.Command("cp", "-a", a, b).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v %s", err, out)
		}
		r, code, stderr := runJSON(t, "rebuild", "--build-dir", b, "--explain")
		mustPass(t, "a copied build dir", r, code, stderr)
		if s := stepByName(r, "kernel"); s.Cached || !strings.Contains(s.Explain, "made in "+a) {
			t.Errorf("kernel in the copy: %+v", s)
		}
		builtRunner(t, b) // its own runner, not the original's

		c := filepath.Join(root, "c")
		if err := os.Rename(b, c); err != nil {
			t.Fatal(err)
		}
		r, code, stderr = runJSON(t, "rebuild", "--build-dir", c)
		mustPass(t, "a moved build dir", r, code, stderr)
		builtRunner(t, c)
	})

	t.Run("damaged runner", func(t *testing.T) {
		runner := builtRunner(t, a)
		if err := os.WriteFile(runner, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		r, code, stderr := runJSON(t, "rebuild", "--build-dir", a, "--explain")
		mustPass(t, "rebuild after damaging the runner", r, code, stderr)
		if s := stepByName(r, "kernel"); !strings.Contains(s.Explain, "output "+runner+" changed since it was built") {
			t.Errorf("kernel explain: %q", s.Explain)
		}
		if b, _ := os.ReadFile(runner); !bytes.HasPrefix(b, []byte("\x7fELF")) {
			t.Fatalf("the runner was not rebuilt: starts %q", b[:min(len(b), 16)])
		}
	})

	t.Run("CXXFLAGS", func(t *testing.T) {
		const flag = "-forchard-no-such-flag"
		r, code, _ := runJSONEnv(t, []string{"CXXFLAGS=" + flag}, "rebuild", "--build-dir", a, "--explain")
		s := stepByName(r, "kernel")
		if code != 1 || s.Status != checks.Fail {
			t.Fatalf("a bad CXXFLAGS did not reach the compiler: exit %d, kernel %+v", code, s)
		}
		if !strings.Contains(s.Explain, `env CXXFLAGS changed ("" → "`+flag+`")`) {
			t.Errorf("kernel explain: %q", s.Explain)
		}
		log, _ := os.ReadFile(filepath.Join(a, "logs", "steps", "kernel.log"))
		if !strings.Contains(string(log), flag) || !strings.Contains(string(log), "afresh: CXXFLAGS changed") {
			t.Errorf("kernel.log does not show the flag at work:\n%s", log)
		}
	})
}

// dirState lists a tree's paths, modes and contents.
func dirState(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		b.WriteString(p + " " + fi.Mode().String())
		if fi.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			b.Write(data)
		}
		b.WriteString("\n")
		return nil
	})
	return b.String()
}

func TestUnusableBuildDirExits3NamingThePath(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "file")
	os.WriteFile(file, []byte("user data"), 0o644)
	lockDir := filepath.Join(root, "lockdir")
	os.MkdirAll(filepath.Join(lockDir, ".orchard.lock", "mine"), 0o755)
	for _, tc := range []struct{ name, dir, want string }{
		{"a file", file, file + " is a file"},
		{"under a file", filepath.Join(file, "sub"), "a parent of it is a file"},
		{"lock is a directory", lockDir, filepath.Join(lockDir, ".orchard.lock") + " is a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := dirState(t, root)
			code, out, errOut := runCLI(t, nil, "rebuild", "--build-dir", tc.dir)
			// The report (stdout) names the path and the fix.
			if code != exitEnvironment || !strings.Contains(out+errOut, tc.want) || !strings.Contains(out, "pass --build-dir DIR") {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 3 naming %q and the fix", code, out, errOut, tc.want)
			}
			if after := dirState(t, root); after != before {
				t.Errorf("files changed:\n%s\n---\n%s", before, after)
			}
		})
	}
}

// An unwritable build dir. Root ignores permission bits, so as root the
// test runs orchard as the user nobody against a root-owned directory.
func TestUnwritableBuildDirExits3(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "build")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "keep.txt"), []byte("x"), 0o644)
	args := []string{"rebuild", "--build-dir", dir}
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		for p := root; p != filepath.Dir(p) && strings.HasPrefix(p, os.TempDir()) && p != os.TempDir(); p = filepath.Dir(p) {
			os.Chmod(p, 0o755)
		}
		bin := filepath.Join(root, "orchard.test")
		copyFile(t, os.Args[0], bin)
		cmd = exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "ORCHARD_TEST_AS_MAIN=1", "NO_COLOR=1", "HOME="+root)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	} else {
		os.Chmod(dir, 0o555)
		defer os.Chmod(dir, 0o755)
		cmd = orchardCmd(args...)
	}
	before := dirState(t, dir)
	var stderr, stdout bytes.Buffer
	cmd.Stderr, cmd.Stdout = &stderr, &stdout
	err := cmd.Run()
	var xe *exec.ExitError
	if !errors.As(err, &xe) || xe.ExitCode() != exitEnvironment {
		t.Fatalf("exit: %v, stderr %q; want exit 3", err, stderr.String())
	}
	if msg := stdout.String() + stderr.String(); !strings.Contains(msg, "cannot write in "+dir) || !strings.Contains(msg, "permission denied") {
		t.Errorf("the report %q does not name the dir and the reason", msg)
	}
	if after := dirState(t, dir); after != before {
		t.Errorf("files changed:\n%s\n---\n%s", before, after)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

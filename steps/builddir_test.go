package steps

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/orchardkit/orchard/checks"
	"github.com/orchardkit/orchard/metalkern"
)

// makeStep behaves like make: it writes its output only when the output is
// missing or older than its input, so a damaged output with a fresh mtime
// looks up to date to it. Its key names runtime files one by one.
type makeStep struct {
	b       *Build
	in, out string // out: relative to the build dir
	runs    int
}

func (s *makeStep) Name() string { return "make" }
func (s *makeStep) Output() any  { return &struct{}{} }
func (s *makeStep) Key(sc *Context) (KeyInputs, error) {
	files, err := s.b.sourceFiles(nil)
	return KeyInputs{Version: "1", Files: files, Env: []string{"ORCHARD_TEST_FLAG"}, Tools: map[string]string{"cp": "cp 9.1"},
		Inputs: []string{s.in}, Outputs: []string{filepath.Join(sc.BuildDir, s.out)}}, err
}
func (s *makeStep) Run(ctx context.Context, sc *Context) (Result, error) {
	s.runs++
	out := filepath.Join(sc.BuildDir, s.out)
	script := `[ "$1" -nt "$2" ] || [ ! -e "$2" ] || exit 0; cp "$1" "$2"`
	return Result{}, sc.Exec(ctx, Cmd{Args: []string{"sh", "-c", script, "sh", s.in, out}})
}

func runMake(t *testing.T, dir string, st Step, env map[string]string) checks.StepSummary {
	t.Helper()
	e := New(Options{BuildDir: dir, Backend: "emu", Getenv: func(k string) string { return env[k] }})
	r, err := e.Run(context.Background(), []Step{st})
	if err != nil {
		t.Fatal(err)
	}
	return r.Steps[0]
}

func TestDamagedOutputIsRemovedSoTheBuildToolRemakesIt(t *testing.T) {
	root := t.TempDir()
	in := filepath.Join(root, "in.txt")
	os.WriteFile(in, []byte("the real output"), 0o644)
	dir := filepath.Join(root, "build")
	st := &makeStep{b: &Build{Source: metalkern.Source{FS: fstest.MapFS{}}}, in: in, out: "out.txt"}
	if s := runMake(t, dir, st, nil); s.Status != checks.Pass {
		t.Fatalf("first run: %+v", s)
	}
	out := filepath.Join(dir, "out.txt")
	if err := os.WriteFile(out, []byte("garbage"), 0o644); err != nil { // newer than its input
		t.Fatal(err)
	}
	s := runMake(t, dir, st, nil)
	if s.Cached || !strings.Contains(s.Explain, "output "+out+" changed") {
		t.Fatalf("after damaging the output: %+v", s)
	}
	if b, _ := os.ReadFile(out); string(b) != "the real output" {
		t.Fatalf("the damaged output was kept (and re-approved): %q", b)
	}
	if s := runMake(t, dir, st, nil); !s.Cached {
		t.Fatalf("after the remake: %+v", s)
	}
}

func TestExplainNamesTheFileEnvAndTool(t *testing.T) {
	root := t.TempDir()
	in := filepath.Join(root, "in.txt")
	os.WriteFile(in, []byte("x"), 0o644)
	fsys := fstest.MapFS{
		"kernels/attn_fwd.metal": {Data: []byte("kernel v1")},
		"host/runner.cpp":        {Data: []byte("host")},
	}
	st := &makeStep{b: &Build{Source: metalkern.Source{FS: fsys}}, in: in, out: "out.txt"}
	dir := filepath.Join(root, "build")
	env := map[string]string{}
	runMake(t, dir, st, env)

	fsys["kernels/attn_fwd.metal"] = &fstest.MapFile{Data: []byte("kernel v2")}
	if s := runMake(t, dir, st, env); s.Explain != "ran: file kernels/attn_fwd.metal changed" {
		t.Errorf("kernel edit: %q", s.Explain)
	}
	fsys["kernels/new.metal"] = &fstest.MapFile{Data: []byte("kernel")}
	delete(fsys, "host/runner.cpp")
	if s := runMake(t, dir, st, env); s.Explain != "ran: file host/runner.cpp was removed; file kernels/new.metal is new" {
		t.Errorf("file added and removed: %q", s.Explain)
	}
	env["ORCHARD_TEST_FLAG"] = "-O0"
	if s := runMake(t, dir, st, env); s.Explain != `ran: env ORCHARD_TEST_FLAG changed ("" → "-O0")` {
		t.Errorf("env change: %q", s.Explain)
	}
	st2 := *st
	st2.b = &Build{Source: metalkern.Source{FS: fsys}}
	os.WriteFile(in, []byte("y"), 0o644)
	if s := runMake(t, dir, &st2, env); s.Explain != "ran: input "+in+" changed" {
		t.Errorf("input change: %q", s.Explain)
	}
	old := map[string]string{"tool cxx": "12.2 /usr/bin/g++", "command 0": "cmake\x00-S\x00/a"}
	cur := map[string]string{"tool cxx": "13.1 /usr/bin/g++", "command 0": "cmake\x00-S\x00/b"}
	if got := diffParts(old, cur); got != `tool cxx changed ("12.2 /usr/bin/g++" → "13.1 /usr/bin/g++"); command 0 changed (argument 2: "/a" → "/b")` {
		t.Errorf("tool and command: %q", got)
	}
	// Switching runtimes changes one config value and every generated
	// kernel file: the config change is shown before the inputs it caused.
	old = map[string]string{"config runtime": "embedded", "file kernels/a.metal": "1"}
	cur = map[string]string{"config runtime": "/rt", "file kernels/a.metal": "2"}
	for _, g := range []string{"a", "b", "c", "d"} {
		old["input gen/"+g+".emu.cpp"], cur["input gen/"+g+".emu.cpp"] = "1", "2"
	}
	if got := diffParts(old, cur); !strings.HasPrefix(got, `file kernels/a.metal changed; config runtime changed ("embedded" → "/rt"); input gen/a.emu.cpp changed`) {
		t.Errorf("runtime switch: %q", got)
	}
}

func TestStampOfACopiedBuildDirIsNotTrusted(t *testing.T) {
	root := t.TempDir()
	in := filepath.Join(root, "in.txt")
	os.WriteFile(in, []byte("x"), 0o644)
	st := &makeStep{b: &Build{Source: metalkern.Source{FS: fstest.MapFS{}}}, in: in, out: "out.txt"}
	a, b := filepath.Join(root, "a"), filepath.Join(root, "b")
	runMake(t, a, st, nil)
	if out, err := exec.Command("cp", "-a", a, b).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	s := runMake(t, b, st, nil)
	if s.Cached || !strings.Contains(s.Explain, "made in "+a) {
		t.Fatalf("a copy trusted the original's stamp: %+v", s)
	}
	if s := runMake(t, b, st, nil); !s.Cached {
		t.Fatalf("the copy's own stamp: %+v", s)
	}
	var out struct{}
	if err := LoadOutput(b, "make", &out); err != nil {
		t.Fatalf("LoadOutput in the copy: %v", err)
	}
	c := filepath.Join(root, "c")
	os.Rename(b, c)
	if err := LoadOutput(c, "make", &out); err == nil || !strings.Contains(err.Error(), "copied or moved") {
		t.Fatalf("LoadOutput of a moved dir: %v", err)
	}
}

// snapshot lists a tree's paths, modes and contents, to show nothing changed.
func snapshot(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		b.WriteString(p + " " + fi.Mode().String())
		if fi.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			b.WriteString(" " + string(data))
		}
		b.WriteString("\n")
		return nil
	})
	return b.String()
}

func TestUnusableBuildDirIsAPreflightFailureAndChangesNothing(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "file")
	os.WriteFile(file, []byte("user data"), 0o644)
	lockDir := filepath.Join(root, "lockdir")
	os.MkdirAll(filepath.Join(lockDir, lockName, "inside"), 0o755)
	linked := filepath.Join(root, "linked")
	os.MkdirAll(linked, 0o755)
	os.Symlink(file, filepath.Join(linked, lockName))
	fifo := filepath.Join(root, "fifo")
	os.MkdirAll(fifo, 0o755)
	if err := exec.Command("mkfifo", filepath.Join(fifo, lockName)).Run(); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, dir, want string
	}{
		{"a file", file, file + " is a file, not a directory"},
		{"under a file", filepath.Join(file, "build"), "a parent of it is a file"},
		{"lock is a directory", lockDir, filepath.Join(lockDir, lockName) + " is a directory"},
		{"lock is a symlink", linked, filepath.Join(linked, lockName) + " is a symlink"},
		{"lock is a FIFO", fifo, filepath.Join(fifo, lockName) + " is a FIFO"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, root)
			st := &copyStep{in: file, out: filepath.Join(root, "never.txt")}
			_, err := New(Options{BuildDir: tc.dir, Backend: "emu"}).Run(context.Background(), []Step{st})
			var pe *PreflightError
			if !errors.As(err, &pe) || !pe.Env || pe.Check.ID != "build-dir" {
				t.Fatalf("err = %#v, want a *PreflightError for build-dir", err)
			}
			if ev := strings.Join(pe.Check.Evidence, "\n"); !strings.Contains(ev, tc.want) {
				t.Errorf("evidence %q lacks %q", ev, tc.want)
			}
			if !strings.Contains(pe.Check.Hint, "--build-dir") || !strings.Contains(pe.Error(), tc.dir) {
				t.Errorf("title %q / hint %q", pe.Check.Title, pe.Check.Hint)
			}
			if st.runs != 0 {
				t.Error("the step ran")
			}
			if after := snapshot(t, root); after != before {
				t.Errorf("the files changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

func TestPruneUnitsDropsOnlyOtherGeneratedUnits(t *testing.T) {
	gen := t.TempDir()
	for _, n := range []string{"attn_fwd.metal.emu.cpp", "extra.metal.emu.cpp", "notes.txt"} {
		os.WriteFile(filepath.Join(gen, n), []byte("x"), 0o644)
	}
	if err := pruneUnits(gen, []string{filepath.Join(gen, "attn_fwd.metal.emu.cpp")}); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(gen)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "attn_fwd.metal.emu.cpp notes.txt" {
		t.Fatalf("gen after pruning: %v", names)
	}
}

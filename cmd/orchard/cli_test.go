package main

import (
	"archive/zip"
	"context"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
)

// rootCapturingRebuild is the real root command whose rebuild (bare or
// named) hands its options to the test instead of running.
func rootCapturingRebuild(t *testing.T, env map[string]string) (*cobra.Command, *Factory, **RebuildOptions) {
	t.Helper()
	ios, _, _ := testIOStreams(env)
	f := &Factory{IO: ios, Global: &GlobalOptions{}}
	var got *RebuildOptions
	root := newRootCmd(f, func(o *RebuildOptions) error { got = o; return nil })
	return root, f, &got
}

func TestBareOrchardTakesRebuildFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--race", "--seed", "3", "--timeout", "5m", "--build-dir", "b", "--backend", "emu", "--json"},
		{"rebuild", "--race", "--seed", "3", "--timeout", "5m", "--build-dir", "b", "--backend", "emu", "--json"},
		// A flag before the command still reaches it.
		{"--build-dir", "b", "rebuild", "--race", "--seed", "3", "--timeout", "5m", "--backend", "emu", "--json"},
	} {
		root, f, got := rootCapturingRebuild(t, nil)
		root.SetArgs(args)
		if err := root.Execute(); err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		o := *got
		if o == nil {
			t.Fatalf("%q: rebuild did not run", args)
		}
		if !o.Race || o.Seed != 3 || !o.seedSet || o.Timeout != 5*time.Minute {
			t.Errorf("%q: options %+v", args, o)
		}
		if g := f.Global; g.BuildDir != "b" || g.Backend != "emu" || !g.JSON {
			t.Errorf("%q: global %+v", args, g)
		}
	}

	code, out, _ := runCLI(t, nil, "--help")
	for _, flag := range []string{"--race", "--seed N", "--timeout DURATION", "--explain", "-V, --version"} {
		if code != 0 || !strings.Contains(out, flag) {
			t.Errorf("orchard --help does not show %s", flag)
		}
	}
	// Rebuild's flags are not the other commands' flags.
	if code, _, errOut := runCLI(t, nil, "--race", "version"); code != exitUsage || !strings.Contains(errOut, "unknown flag: --race") {
		t.Errorf("orchard --race version: exit %d %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, nil, "--timeout", "0s"); code != exitUsage || !strings.Contains(errOut, "--timeout must be positive") {
		t.Errorf("--timeout 0s: exit %d %q", code, errOut)
	}
}

func TestRerunFlagsCarryRuntimeAndBuildDir(t *testing.T) {
	tmp := t.TempDir()
	rt := filepath.Join(tmp, "rt")
	if code, _, errOut := runCLI(t, nil, "eject", rt); code != 0 {
		t.Fatalf("eject: %d %s", code, errOut)
	}
	// Paths as typed (relative, one with a space) become absolute and quoted.
	t.Chdir(tmp)
	root, f, got := rootCapturingRebuild(t, nil)
	root.SetArgs([]string{"rebuild", "--runtime", "rt", "--build-dir", "my build", "--backend", "emu", "--seed", "3"})
	if err := root.Execute(); err != nil || *got == nil {
		t.Fatalf("execute: %v", err)
	}
	tg, err := f.resolveTarget(context.Background(), nil, 3, true)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"--runtime " + rt, "--build-dir '" + filepath.Join(tmp, "my build") + "'", "--backend emu"}
	if !slices.Equal(tg.build.RerunFlags, want) {
		t.Fatalf("RerunFlags = %q, want %q", tg.build.RerunFlags, want)
	}
	if got, want := tg.build.Rerun("rebuild", "--seed 3"), "orchard rebuild "+strings.Join(want, " ")+" --seed 3"; got != want {
		t.Errorf("Rerun = %q, want %q", got, want)
	}

	// Flags the user did not set are not repeated.
	root, f, got = rootCapturingRebuild(t, nil)
	root.SetArgs([]string{"rebuild", "--seed", "3"})
	if err := root.Execute(); err != nil || *got == nil {
		t.Fatalf("execute: %v", err)
	}
	if flags := f.rerunFlags(); len(flags) != 0 {
		t.Errorf("no flags set: %q", flags)
	}
	f.Global.BuildDir = filepath.Join(tmp, "b")
	if flags := f.rerunFlags(); len(flags) != 1 || flags[0] != "--build-dir "+filepath.Join(tmp, "b") {
		t.Errorf("only --build-dir set: %q", flags)
	}
	f.Global.BuildDir = ""
	if flags := f.rerunFlags(); len(flags) != 0 {
		t.Errorf("nothing set: %q", flags)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/tmp/b":        "/tmp/b",
		"/tmp/my build": "'/tmp/my build'",
		"it's":          `'it'\''s'`,
		"":              "''",
		"$HOME":         "'$HOME'",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

// allCommands is every command path under root, root first.
func allCommands(c *cobra.Command, path []string) [][]string {
	out := [][]string{path}
	for _, sub := range c.Commands() {
		if !sub.Hidden {
			out = append(out, allCommands(sub, append(slices.Clone(path), sub.Name()))...)
		}
	}
	return out
}

func TestHelp(t *testing.T) {
	ios, _, _ := testIOStreams(nil)
	paths := allCommands(newRootCmd(&Factory{IO: ios, Global: &GlobalOptions{}}), nil)
	paths = append(paths, []string{"help"})
	if len(paths) < 10 {
		t.Fatalf("only %d commands: %q", len(paths), paths)
	}
	// Which commands use the exit codes, and honour which shared flags.
	withExitCodes := map[string]bool{"": true, "rebuild": true, "verify": true, "doctor": true, "attn": true, "bench": true, "env": true}
	honours := map[string][]string{
		"":          {"--json", "--backend", "--build-dir", "--runtime", "--color"},
		"rebuild":   {"--json", "--backend", "--build-dir", "--runtime", "--color"},
		"verify":    {"--json", "--backend", "--build-dir", "--runtime", "--color"},
		"doctor":    {"--json", "--backend", "--color"},
		"attn":      {"--backend", "--build-dir", "--runtime", "--color"},
		"bench":     {"--json", "--backend", "--build-dir", "--runtime", "--color"},
		"tail-logs": {"--json", "--backend", "--build-dir", "--color"},
		"version":   {"--json"},
		"env":       {"--json", "--backend", "--build-dir"},
	}
	for _, p := range paths {
		name := strings.Join(p, " ")
		code, out, errOut := runCLI(t, nil, append(slices.Clone(p), "--help")...)
		if code != 0 || errOut != "" {
			t.Errorf("%q --help: exit %d, stderr %q", name, code, errOut)
			continue
		}
		for i, line := range strings.Split(out, "\n") {
			if n := utf8.RuneCountInString(line); n > helpWidth {
				t.Errorf("orchard %s --help line %d has %d columns:\n%s", name, i+1, n, line)
			}
		}
		if has := strings.Contains(out, "Exit codes:"); has != withExitCodes[name] {
			t.Errorf("orchard %s --help: exit codes shown %v, want %v", name, has, withExitCodes[name])
		}
		if strings.Contains(out, "Global Flags") {
			t.Errorf("orchard %s --help has global flags:\n%s", name, out)
		}
		for _, flag := range []string{"--json", "--backend", "--build-dir", "--runtime", "--color"} {
			want := slices.Contains(honours[name], flag)
			if has := strings.Contains(out, "  "+flag+" ") || strings.Contains(out, " "+flag+"\n"); has != want {
				t.Errorf("orchard %s --help: %s shown %v, want %v", name, flag, has, want)
			}
		}
		// --python on the commands with the torch steps.
		if has, want := strings.Contains(out, "  --python PATH "), name == "" || name == "rebuild" || name == "verify"; has != want {
			t.Errorf("orchard %s --help: --python shown %v, want %v", name, has, want)
		}
		if strings.Contains(out, "`") && name != "doctor" {
			t.Errorf("orchard %s --help shows a raw backtick", name)
		}
	}
	_, out, _ := runCLI(t, nil, "attn", "--help")
	if !strings.Contains(strings.Join(strings.Fields(out), " "), "auto, emu, metal or reference") {
		t.Errorf("attn --backend help omits reference:\n%s", out)
	}
	if code, _, _ := runCLI(t, nil, "attn", "--backend", "reference", "--help"); code != 0 {
		t.Errorf("attn --backend reference --help: exit %d", code)
	}
	if code, _, errOut := runCLI(t, nil, "rebuild", "--backend", "reference"); code != exitUsage || !strings.Contains(errOut, "must be auto, emu or metal") {
		t.Errorf("rebuild --backend reference: exit %d %q", code, errOut)
	}
}

// complete asks cobra's completion machinery, as the shell scripts do.
func complete(t *testing.T, args ...string) (lines []string, directive string) {
	t.Helper()
	code, out, errOut := runCLI(t, nil, append([]string{"__complete"}, args...)...)
	if code != 0 {
		t.Fatalf("__complete %q: exit %d %s", args, code, errOut)
	}
	lines = strings.Split(strings.TrimSpace(out), "\n")
	return lines[:len(lines)-1], lines[len(lines)-1]
}

func TestCompletionOfFlagValues(t *testing.T) {
	dirs, files, noFiles, fileExt := ":16", ":0", ":4", ":8"
	for _, tc := range []struct {
		args      []string
		want      []string // completions (before the tab)
		directive string
	}{
		{[]string{"rebuild", "--backend", ""}, []string{"auto", "emu", "metal"}, noFiles},
		{[]string{"--backend", ""}, []string{"auto", "emu", "metal"}, noFiles},
		{[]string{"attn", "--backend", ""}, []string{"auto", "emu", "metal", "reference"}, noFiles},
		{[]string{"doctor", "--color", ""}, []string{"auto", "always", "never"}, noFiles},
		{[]string{"tail-logs", "-o", ""}, []string{"text", "json"}, noFiles},
		{[]string{"rebuild", "--seed", ""}, nil, noFiles},
		{[]string{"verify", "--runner-timeout", ""}, nil, noFiles},
		{[]string{"rebuild", "--build-dir", ""}, nil, dirs},
		{[]string{"verify", "--runtime", ""}, nil, dirs},
		{[]string{"attn", "--out", ""}, nil, dirs},
		{[]string{"eject", ""}, nil, dirs},
		// cobra finds no one-letter long flag (--q, --k, --v) in completion
		// and falls back to file names, which is still what they take.
		{[]string{"attn", "--q", ""}, nil, files},
		{[]string{"attn", "--do", ""}, []string{"npy"}, fileExt},
		{[]string{"rebuild", "--junit", ""}, nil, files},
	} {
		lines, directive := complete(t, tc.args...)
		var got []string
		for _, l := range lines {
			if l != "" && !strings.HasPrefix(l, "Completion ended") {
				got = append(got, strings.SplitN(l, "\t", 2)[0])
			}
		}
		if !slices.Equal(got, tc.want) || directive != tc.directive {
			t.Errorf("complete %q = %q %s, want %q %s", tc.args, got, directive, tc.want, tc.directive)
		}
	}
	// Flag descriptions are plain text: no backticks around placeholders.
	lines, _ := complete(t, "rebuild", "--")
	joined := strings.Join(lines, "\n")
	if !strings.Contains(joined, "--runtime\tuse the runtime sources in DIR") || strings.Contains(joined, "`") {
		t.Errorf("flag descriptions:\n%s", joined)
	}
	// Help still shows the placeholders.
	if _, out, _ := runCLI(t, nil, "rebuild", "--help"); !strings.Contains(out, "--runtime DIR") {
		t.Errorf("rebuild --help lost its placeholders:\n%s", out)
	}
	_, out, _ := runCLI(t, nil, "completion", "--help")
	if !strings.Contains(out, "bash-completion package") || !strings.Contains(out, "source <(orchard completion bash)") {
		t.Errorf("completion help does not say what bash needs:\n%s", out)
	}
}

func TestVersionFromBuildInfo(t *testing.T) {
	for name, tc := range map[string]struct {
		bi   *debug.BuildInfo
		want buildVersion
		line string
	}{
		"go install @v1.2.3": {
			bi:   &debug.BuildInfo{Main: debug.Module{Path: "github.com/orchardkit/orchard", Version: "v1.2.3"}},
			want: buildVersion{Version: "v1.2.3"},
			line: "orchard v1.2.3 (go1.x, linux/amd64)",
		},
		"checkout": {
			bi: &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
				{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "7e5b7bc42a7f0123456789abcdef"},
				{Key: "vcs.time", Value: "2026-12-02T01:00:00Z"}, {Key: "vcs.modified", Value: "true"}}},
			want: buildVersion{Version: "devel", Commit: "7e5b7bc42a7f", Date: "2026-12-02T01:00:00Z", Modified: true},
			line: "orchard devel (commit 7e5b7bc42a7f, modified, 2026-12-02T01:00:00Z, go1.x, linux/amd64)",
		},
		"no VCS information": {
			bi:   &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}},
			want: buildVersion{Version: "devel"},
			line: "orchard devel (no VCS information, go1.x, linux/amd64)",
		},
		"no build info": {want: buildVersion{Version: "devel"}, line: "orchard devel (no VCS information, go1.x, linux/amd64)"},
	} {
		got := versionFromBuildInfo(tc.bi)
		if got != tc.want {
			t.Errorf("%s: %+v, want %+v", name, got, tc.want)
		}
		got.Go, got.OS, got.Arch = "go1.x", "linux", "amd64"
		if s := got.String(); s != tc.line {
			t.Errorf("%s: %q, want %q", name, s, tc.line)
		}
	}
}

func TestVersionFlag(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"-V"}, {"version"}} {
		code, out, _ := runCLI(t, nil, args...)
		if code != 0 || !strings.HasPrefix(out, "orchard ") || strings.Count(out, "\n") != 1 {
			t.Errorf("%q: exit %d %q", args, code, out)
		}
	}
}

// buildOrchard builds cmd/orchard from dir into a temp file with extra
// go build flags.
func buildOrchard(t *testing.T, dir string, flags ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "orchard")
	cmd := execCommand("go", append(append([]string{"build"}, flags...), "-o", bin, "./cmd/orchard")...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %q: %v\n%s", flags, err, out)
	}
	return bin
}

func runBinary(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := execCommand(bin, args...).Output()
	if err != nil {
		t.Fatalf("%s %q: %v", bin, args, err)
	}
	return string(out)
}

func TestVersionOfRealBuilds(t *testing.T) {
	if testing.Short() {
		t.Skip("builds orchard (-short)")
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}

	// A release build: the stamp wins over the build info.
	bin := buildOrchard(t, repo, "-ldflags", "-X main.version=v9.9.9 -X main.commit=abc1234 -X main.date=2026-01-02T03:04:05Z")
	if out := runBinary(t, bin, "--version"); !strings.HasPrefix(out, "orchard v9.9.9 (commit abc1234, 2026-01-02T03:04:05Z, go") {
		t.Errorf("ldflags build --version: %q", out)
	}
	if out := runBinary(t, bin, "version", "--json"); !strings.Contains(out, `"version":"v9.9.9","commit":"abc1234"`) {
		t.Errorf("ldflags build version --json: %q", out)
	}

	// 'go install …@v1.2.3' from a module proxy (a local one holding this
	// tree as v1.2.3; the dependencies come from the module cache).
	gobin := goInstallAsVersion(t, repo, "v1.2.3")
	if out := runBinary(t, gobin, "--version"); !strings.HasPrefix(out, "orchard v1.2.3 (go") {
		t.Errorf("go install @v1.2.3: %q", out)
	}

	// A build without VCS information says so.
	bin = buildOrchard(t, repo, "-buildvcs=false")
	if out := runBinary(t, bin, "-V"); !strings.HasPrefix(out, "orchard devel (no VCS information, go") {
		t.Errorf("-buildvcs=false build: %q", out)
	}

	// A build in a git checkout names its revision, and says when the
	// checkout was modified. The checkout is a fresh repository holding
	// this tree's files (a worktree's .git file hides the VCS from go).
	if _, err := execLookPath("git"); err != nil {
		t.Skip("no git")
	}
	co := t.TempDir()
	copyTree(t, repo, co)
	git := func(args ...string) string {
		cmd := execCommand("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"}, args...)...)
		cmd.Dir = co
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %q: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q")
	git("add", "-A")
	git("commit", "-q", "-m", "test checkout")
	rev := git("rev-parse", "--short=12", "HEAD")
	bin = buildOrchard(t, co, "-buildvcs=true")
	out := runBinary(t, bin, "-V")
	if !strings.Contains(out, "(commit "+rev+", 20") || strings.Contains(out, "modified") {
		t.Errorf("clean checkout build (HEAD %s): %q", rev, out)
	}
	if err := os.WriteFile(filepath.Join(co, "README.md"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin = buildOrchard(t, co, "-buildvcs=true")
	if out := runBinary(t, bin, "-V"); !strings.Contains(out, "(commit "+rev+", modified, 20") {
		t.Errorf("modified checkout build (HEAD %s): %q", rev, out)
	}
}

// copyTree copies the files of src that git would see (tracked and
// untracked, not ignored, at most 1 MiB) to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	cmd := execCommand("git", "ls-files", "-co", "--exclude-standard", "-z")
	cmd.Dir = src
	list, err := cmd.Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for _, rel := range strings.Split(strings.TrimRight(string(list), "\x00"), "\x00") {
		p := filepath.Join(src, rel)
		st, err := os.Lstat(p)
		if err != nil || !st.Mode().IsRegular() || st.Size() > 1<<20 {
			continue // deleted, a link, or the tracked binary
		}
		if err := os.MkdirAll(filepath.Join(dst, filepath.Dir(rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		in, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.OpenFile(filepath.Join(dst, rel), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, st.Mode().Perm())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

var (
	execCommand  = exec.Command
	execLookPath = exec.LookPath
)

// goInstallAsVersion publishes the module in repo as version v on a local
// file proxy and runs 'go install github.com/orchardkit/orchard/cmd/orchard@v'
// with it, as a user would; it returns the installed binary.
func goInstallAsVersion(t *testing.T, repo, v string) string {
	t.Helper()
	const mod = "github.com/orchardkit/orchard"
	src := t.TempDir()
	copyTree(t, repo, src)
	proxy := t.TempDir()
	dir := filepath.Join(proxy, mod, "@v")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile(filepath.Join(src, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"list":      []byte(v + "\n"),
		v + ".info": []byte(`{"Version":"` + v + `","Time":"2026-01-02T03:04:05Z"}`),
		v + ".mod":  gomod,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	zf, err := os.Create(filepath.Join(dir, v+".zip"))
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(zf)
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		w, err := zw.Create(mod + "@" + v + "/" + filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	})
	if err == nil {
		err = zw.Close()
	}
	if cerr := zf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	gomodcache, err := execCommand("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	cmd := execCommand("go", "install", mod+"/cmd/orchard@"+v)
	cmd.Dir = t.TempDir() // outside any module
	cmd.Env = append(os.Environ(),
		"GOBIN="+bin, "GOFLAGS=", "GOSUMDB=off", "GOTOOLCHAIN=local",
		"GOPROXY=file://"+filepath.ToSlash(proxy)+",file://"+filepath.ToSlash(filepath.Join(strings.TrimSpace(string(gomodcache)), "cache", "download")))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go install @%s: %v\n%s", v, err, out)
	}
	return filepath.Join(bin, "orchard")
}

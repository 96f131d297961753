package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/orchardkit/orchard/metalkern/npy"
)

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ns []string
	for _, e := range ents {
		ns = append(ns, e.Name())
	}
	return ns
}

// The flags reach the library's options, and missing ones are usage errors.
func TestNewAttnCmdFlags(t *testing.T) {
	var got *AttnOptions
	f := &Factory{IO: &IOStreams{}, Global: &GlobalOptions{}}
	cmd := newAttnCmd(f, func(o *AttnOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"--q", "q.npy", "--k", "k.npy", "--v", "v.npy", "--do", "do.npy", "--causal", "--scale", "0.5", "--out", "o", "--allow-nonfinite", "--storage", "private"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got.Q != "q.npy" || got.K != "k.npy" || got.V != "v.npy" || got.DO != "do.npy" || !got.Causal || got.Scale != 0.5 || got.Out != "o" || !got.AllowNonFinite ||
		got.Storage != "private" {
		t.Errorf("options %+v", got)
	}

	// --storage defaults to shared; anything else is a usage error naming the choices.
	cmd = newAttnCmd(f, func(o *AttnOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"--q", "q.npy", "--k", "k.npy", "--v", "v.npy", "--out", "o"})
	if err := cmd.Execute(); err != nil || got.Storage != "shared" {
		t.Errorf("default storage %q (err %v), want shared", got.Storage, err)
	}
	cmd = newAttnCmd(f, func(o *AttnOptions) error { t.Error("ran with --storage managed"); return nil })
	cmd.SetArgs([]string{"--q", "q.npy", "--k", "k.npy", "--v", "v.npy", "--out", "o", "--storage", "managed"})
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "--storage must be shared or private") {
		t.Errorf("--storage managed: %v, want a usage error naming shared and private", err)
	}
}

// A rerun without --do leaves exactly its own outputs in DIR: the earlier
// run's dq/dk/dv go, the user's other files stay.
func TestAttnRerunWithoutDORemovesStaleGradients(t *testing.T) {
	dir, _ := attnFixture(t, 1, 2, 6, 9, 5, npy.Float32)
	p := func(n string) string { return filepath.Join(dir, n) }
	out := p("out")
	args := []string{"attn", "--backend", "reference", "--out", out, "--q", p("q.npy"), "--k", p("k.npy"), "--v", p("v.npy")}
	if code, _, stderr := runCLI(t, nil, append(args, "--do", p("do.npy"))...); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	os.WriteFile(filepath.Join(out, "notes.txt"), []byte("mine"), 0o644)
	code, _, stderr := runCLI(t, nil, args...)
	if code != 0 || stderr != "wrote o.npy, lse.npy to "+out+"\n" {
		t.Fatalf("exit %d: %q", code, stderr)
	}
	if got := dirNames(t, out); !slices.Equal(got, []string{"lse.npy", "notes.txt", "o.npy"}) {
		t.Errorf("out holds %v; want this run's o.npy, lse.npy and the user's notes.txt", got)
	}
}

func TestAttnScaleOutOfRangeIsExit2(t *testing.T) {
	dir, _ := attnFixture(t, 1, 1, 2, 2, 2, npy.Float32)
	p := func(n string) string { return filepath.Join(dir, n) }
	for _, s := range []string{"0", "-1", "1e-40", "1e30", "inf", "nan"} {
		code, stdout, stderr := runCLI(t, nil, "attn", "--backend", "reference", "--out", p("out"), "--q", p("q.npy"), "--k", p("k.npy"), "--v", p("v.npy"), "--scale", s)
		if code != exitUsage || stdout != "" || !strings.Contains(stderr, "--scale must be between 1.2e-38 and 6.9e+29") {
			t.Errorf("--scale %s: exit %d, stderr %q; want exit 2 with the range", s, code, stderr)
		}
	}
	if _, err := os.Stat(p("out")); !os.IsNotExist(err) {
		t.Errorf("out was created: %v", err)
	}
}

// A hand-made header claiming 2^39 elements (a few bytes on disk) is
// refused with the numbers: exit 2, nothing built, nothing written.
func TestAttnOversizedHeaderIsExit2WithTheNumbers(t *testing.T) {
	dir := t.TempDir()
	huge := filepath.Join(dir, "huge.npy")
	dict := "{'descr': '<f4', 'fortran_order': False, 'shape': (64, 64, 1048576, 128), }"
	dict += strings.Repeat(" ", 64-(10+len(dict)+1)%64) + "\n"
	os.WriteFile(huge, append([]byte("\x93NUMPY\x01\x00"+string([]byte{byte(len(dict)), 0})+dict), 0, 0, 0, 0), 0o644)
	build := filepath.Join(dir, "build")
	code, stdout, stderr := runCLI(t, nil, "attn", "--build-dir", build, "--out", filepath.Join(dir, "out"), "--q", huge, "--k", huge, "--v", huge)
	want := fmt.Sprintf("orchard: --q %s: shape [64 64 1048576 128] has 549755813888 elements; the kernels index with 32-bit integers, at most 2147483647 elements per tensor\n", huge)
	if code != exitUsage || stdout != "" || stderr != want {
		t.Errorf("exit %d, stderr %q\nwant exit 2 and %q", code, stderr, want)
	}
	if got := dirNames(t, dir); !slices.Equal(got, []string{"huge.npy"}) {
		t.Errorf("dir holds %v: a build or an output was started", got)
	}
}

// A full disk while writing the outputs: the message names the output and
// says the disk is full, and DIR is as it was.
func TestAttnFullDiskNamesTheOutputAndKeepsDIR(t *testing.T) {
	out := fullOutDir(t)
	dir, _ := attnFixture(t, 1, 1, 64, 64, 64, npy.Float32) // 16 KiB per output
	p := func(n string) string { return filepath.Join(dir, n) }
	code, _, stderr := runCLI(t, nil, "attn", "--backend", "reference", "--out", out, "--q", p("q.npy"), "--k", p("k.npy"), "--v", p("v.npy"), "--do", p("do.npy"))
	if code == 0 || !strings.Contains(stderr, "orchard: cannot write "+out+"/") || !strings.Contains(stderr, ": no space left on device") {
		t.Errorf("exit %d, stderr %q; want the output's path and 'no space left on device'", code, stderr)
	}
	if got := dirNames(t, out); !slices.Equal(got, []string{"notes.txt"}) {
		t.Errorf("out holds %v after a failed run", got)
	}
}

// The same with the runner writing: its message names the output in DIR
// (not the stage) and the system's reason.
func TestAttnRunnerFullDiskNamesTheOutputAndKeepsDIR(t *testing.T) {
	build := sharedBuild(t)
	out := fullOutDir(t)
	dir, _ := attnFixture(t, 1, 1, 64, 64, 64, npy.Float32)
	p := func(n string) string { return filepath.Join(dir, n) }
	code, _, stderr := runCLI(t, nil, "attn", "--build-dir", build, "--out", out, "--q", p("q.npy"), "--k", p("k.npy"), "--v", p("v.npy"), "--do", p("do.npy"))
	if code != exitFailed || !strings.Contains(stderr, out+"/") || strings.Contains(stderr, ".orchard-attn-") || !strings.Contains(strings.ToLower(stderr), "no space left on device") {
		t.Errorf("exit %d, stderr %q; want exit 1 naming the output in DIR and 'no space left on device'", code, stderr)
	}
	if got := dirNames(t, out); !slices.Equal(got, []string{"notes.txt"}) {
		t.Errorf("out holds %v after a failed run", got)
	}
}

// fullOutDir is an output dir holding notes.txt on a 64 KiB tmpfs, or
// skips when mounting is not permitted.
func fullOutDir(t *testing.T) string {
	t.Helper()
	disk := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", disk).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs to fill (needs root on Linux): %v: %s", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { exec.Command("umount", disk).Run() })
	out := filepath.Join(disk, "out")
	os.Mkdir(out, 0o755)
	os.WriteFile(filepath.Join(out, "notes.txt"), []byte("mine"), 0o644)
	return out
}

package metalkern

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orchardkit/orchard/metalkern/emugen"
)

// Each testdata/emu/bad kernel with a "// REJECT: message" line is valid
// for the pre-pass but uses a construct Metal rejects; the emu compile
// (g++ against the shim) must fail, its first error at that .metal line
// with that message.
// (The constructs the pre-pass itself rejects are in emugen's
// TestMetalSubsetRejections.)
func TestEmuRejectsWhatMetalRejects(t *testing.T) {
	emuNeedTools(t, "g++")
	files, _ := filepath.Glob(filepath.Join("testdata", "emu", "bad", "*.metal"))
	type want struct {
		file, msg string
		line      int
	}
	var wants []want
	var gens []string
	dir := t.TempDir()
	for _, p := range files {
		abs, _ := filepath.Abs(p)
		src, err := os.ReadFile(abs)
		if err != nil {
			t.Fatal(err)
		}
		w := want{file: abs}
		for i, l := range strings.Split(string(src), "\n") {
			if _, m, ok := strings.Cut(l, "// REJECT: "); ok {
				w.line, w.msg = i+1, strings.TrimSpace(m)
			}
		}
		if w.line == 0 {
			continue
		}
		code, _, err := emugen.Generate(abs, src)
		if err != nil {
			t.Fatalf("%s: the pre-pass should accept it: %v", p, err)
		}
		gen := filepath.Join(dir, emugen.OutputName(abs))
		if err := os.WriteFile(gen, code, 0o644); err != nil {
			t.Fatal(err)
		}
		wants, gens = append(wants, w), append(gens, gen)
	}
	if len(wants) < 4 {
		t.Fatalf("found %d REJECT kernels in testdata/emu/bad", len(wants))
	}
	for i, gen := range gens {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		out, err := exec.CommandContext(ctx, "g++", "-std=c++20", "-fsyntax-only", "-Wno-attributes",
			"-I", filepath.Join(emuRuntimeDir(t), "emu", "include"), gen).CombinedOutput()
		cancel()
		w := wants[i]
		if err == nil {
			t.Errorf("%s: g++ accepted it", filepath.Base(w.file))
			continue
		}
		// The first error (the one the shaders step reports) is at the
		// .metal line and gives the reason.
		at := fmt.Sprintf("%s:%d:", w.file, w.line)
		first := ""
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, ": error: ") {
				first = l
				break
			}
		}
		if !strings.HasPrefix(first, at) || !strings.Contains(first, w.msg) {
			t.Errorf("%s: first error %q, want one at %q saying %q:\n%s", filepath.Base(w.file), first, at, w.msg,
				emuTail(out, 30))
		}
	}
}

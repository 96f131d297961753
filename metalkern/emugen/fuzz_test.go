package emugen

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzGenerate: the pre-pass (plain and counting) and the signature parser never panic or hang
// on any source text, and every error they report about the source is a
// *SourceError naming the file and a line that exists. Seeds: the runtime's
// kernels and headers, the test kernels, and testdata/fuzz/FuzzGenerate/.
func FuzzGenerate(f *testing.F) {
	for _, glob := range []string{
		filepath.Join("..", "runtime", "kernels", "*"),
		filepath.Join("..", "testdata", "emu", "ok", "*.metal"),
		filepath.Join("..", "testdata", "emu", "bad", "*.metal"),
	} {
		files, _ := filepath.Glob(glob)
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	dir := f.TempDir()
	main := filepath.Join(dir, "k.metal")
	f.Fuzz(func(t *testing.T, src []byte) {
		// Both generators (the counting one rewrites more).
		for _, gen := range []func(string, []byte, ...string) ([]byte, []KernelSig, error){Generate, GenerateCounting} {
			_, _, err := gen(main, src)
			var se *SourceError
			if err == nil || !errors.As(err, &se) {
				continue
			}
			if se.File == "" || se.Line < 1 {
				t.Fatalf("source error without a location: %+v", se)
			}
			if se.File == main {
				if lines := strings.Count(string(src), "\n") + 1; se.Line > lines {
					t.Fatalf("error at line %d of a %d-line file: %v", se.Line, lines, se)
				}
			}
		}
	})
}

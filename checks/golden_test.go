package checks

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
)

var update = flag.Bool("update", false, "rewrite checks/testdata/*.golden from the current output")

// sampleReport has every status, multi-line evidence, a file:line
// diagnostic, hints with % : , newline and <&>, a check without evidence,
// and steps that are cached, timed, failed, skipped and explained.
func sampleReport() *Report {
	return &Report{
		Command:  "verify",
		Backend:  "emu",
		BuildDir: "/tmp/orchard-build",
		Steps: []StepSummary{
			{Name: "toolchain", Status: Pass, Cached: true, CachedAt: "2026-12-01T09:30:00Z", Detail: "cmake 3.25.1, g++ 12.2.0"},
			{Name: "shaders", Status: Fail, DurationMS: 1234, Detail: "1 of 3 kernels failed to compile",
				Log: "/tmp/orchard-build/logs/steps/shaders.log"},
			{Name: "metal", Status: Skip, Detail: "paravirtual device"},
			{Name: "verify", Status: Warn, DurationMS: 61500, Explain: "inputs changed: metalkern/runtime/kernels/attn_fwd.metal",
				Log: "/tmp/orchard-build/logs/steps/verify.log"},
		},
		Checks: []Check{
			{ID: "toolchain.cmake", Title: "CMake ≥ 3.20", Status: Pass, Step: "toolchain",
				Evidence: []string{"cmake 3.25.1 at /usr/bin/cmake"}},
			{ID: "toolchain.cxx", Title: "C++17 compiler", Status: Pass,
				Evidence: []string{"g++ 12.2.0", "clang++ 16.0.6"}},
			{ID: "shaders.compile", Title: "Kernels compile", Status: Fail, Step: "shaders",
				File: "metalkern/runtime/kernels/attn_fwd.metal", Line: 42,
				Evidence: []string{
					"attn_fwd.metal:42:7: error: use of undeclared identifier 'simd_max'\n    float m = simd_max(x);\n              ^",
					"1 error generated.",
				},
				Hint: `include <metal_simdgroup>; see docs/emu.md, section "shim"`},
			{ID: "forward", Title: "Forward pass matches the float64 reference", Status: Fail, Step: "verify",
				Evidence: []string{"N=99 D=35: rel err 3.1e-2 > tol 2e-5", "unwritten elements: 0 (NaN poison)"},
				Hint:     "100% of rows differ: check the causal mask, alignment: bottom-right,\nthen rerun `orchard verify --only forward`"},
			{ID: "backward", Title: "Backward pass <&> tolerance", Status: Warn, Step: "verify",
				Evidence: []string{"dQ rel err 4.0e-5 (tol 5e-5): close to the limit"},
				Hint:     "accumulate dQ & dK in fp32"},
			{ID: "metal.device", Title: "Metal device (Apple7+)", Status: Skip,
				Evidence: []string{"paravirtual device: simdgroup_matrix unsupported"},
				Hint:     "run on a self-hosted Mac"},
			{ID: "docs.json", Title: "JSON schema documented", Status: Pass},
		},
	}
}

// plainRenderer is the colour-off renderer cmd/orchard hands over.
func plainRenderer(w *bytes.Buffer) *lipgloss.Renderer {
	re := lipgloss.NewRenderer(w)
	re.SetColorProfile(termenv.Ascii)
	re.SetHasDarkBackground(true)
	return re
}

func TestGolden(t *testing.T) {
	cases := map[string]func(*bytes.Buffer, *Report) error{
		"terminal": func(b *bytes.Buffer, r *Report) error {
			return RenderTerminal(b, r, TermOptions{Renderer: plainRenderer(b)})
		},
		"terminal_verbose": func(b *bytes.Buffer, r *Report) error {
			return RenderTerminal(b, r, TermOptions{Renderer: plainRenderer(b), Verbose: true})
		},
		"report.json":     func(b *bytes.Buffer, r *Report) error { return WriteJSON(b, r) },
		"junit.xml":       func(b *bytes.Buffer, r *Report) error { return WriteJUnit(b, r) },
		"annotations.txt": func(b *bytes.Buffer, r *Report) error { return WriteGitHubAnnotations(b, r, "") },
		"step_summary.md": func(b *bytes.Buffer, r *Report) error {
			path := filepath.Join(t.TempDir(), "summary.md")
			if err := AppendGitHubSummary(path, r); err != nil {
				return err
			}
			data, err := os.ReadFile(path)
			b.Write(data)
			return err
		},
	}
	for name, render := range cases {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			if err := render(&b, sampleReport()); err != nil {
				t.Fatal(err)
			}
			assertGolden(t, name, b.Bytes())
		})
	}
}

func assertGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./checks -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test ./checks -update rewrites it)\n%s",
			path, lineDiff(string(want), string(got)))
	}
}

// lineDiff shows the first line that differs.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n want: %q\n  got: %q", i+1, wl, gl)
		}
	}
	return "(only the final line break differs)"
}

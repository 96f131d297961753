package steps

import (
	"strings"
	"testing"

	"github.com/orchardkit/orchard/checks"
)

func TestTSanSummaryPointsAtTheMetalLine(t *testing.T) {
	report := `==================
WARNING: ThreadSanitizer: data race (pid=3859)
  Read of size 4 at 0x7b4400000100 by thread T2:
    #0 void metal::simdgroup_load<float, float, unsigned long>(metal::simdgroup_matrix<float, 8, 8>&, float const*, unsigned long, metal::vec<unsigned long, 2>, bool) /rt/emu/include/orchard_emu/matrix.h:66 (orchard-runner-emu-tsan+0x1234)
    #1 void strip_abt<4, 16>(...) /rt/kernels/mma.h:23 (orchard-runner-emu-tsan+0x1234)
    #2 void attn_fwd<float, 32, 32, 32>(...) /rt/kernels/attn_fwd.metal:68 (orchard-runner-emu-tsan+0x1234)
  Previous write of size 4 at 0x7b4400000100 by thread T1:
    #0 void load_tile<float, 32, 32>(...) /rt/kernels/loader.h:23 (orchard-runner-emu-tsan+0x1234)
    #1 void attn_fwd<float, 32, 32, 32>(...) /rt/kernels/attn_fwd.metal:67 (orchard-runner-emu-tsan+0x1234)
    #2 std::unique_ptr<int> std::make_unique<int>() /usr/include/c++/12/bits/unique_ptr.h:1065 (x+0x1)
SUMMARY: ThreadSanitizer: data race /rt/emu/include/orchard_emu/matrix.h:66 in void metal::simdgroup_load
`
	var c checks.Check
	ev := tsanSummary(report, &c)
	if c.File != "/rt/kernels/attn_fwd.metal" || c.Line != 68 {
		t.Fatalf("points at %s:%d", c.File, c.Line)
	}
	got := strings.Join(ev, "\n")
	for _, want := range []string{"WARNING: ThreadSanitizer: data race", "at /rt/kernels/attn_fwd.metal:68 in attn_fwd", "at /rt/kernels/loader.h:23 in load_tile", "at /rt/kernels/attn_fwd.metal:67"} {
		if !strings.Contains(got, want) {
			t.Errorf("evidence lacks %q:\n%s", want, got)
		}
	}
	for _, unwanted := range []string{"matrix.h", "unique_ptr.h", "pid="} {
		if strings.Contains(got, unwanted) {
			t.Errorf("evidence has %q:\n%s", unwanted, got)
		}
	}
}

func TestParseDiagnostics(t *testing.T) {
	out := `In file included from /b/gen/attn_fwd.emu.cpp:3:
/rt/kernels/attn_fwd.metal:42:7: error: 'simd_maxx' was not declared in this scope
   42 |   m = simd_maxx(x);
      |       ^~~~~~~~~
/rt/kernels/attn_fwd.metal:50: warning: unused variable
/rt/kernels/softmax.h:9:1: error: expected ';' before '}' token
2 errors generated.`
	ds := ParseDiagnostics(out)
	if len(ds) != 3 || ds[0].File != "/rt/kernels/attn_fwd.metal" || ds[0].Line != 42 || ds[0].Col != 7 || ds[0].Severity != "error" {
		t.Fatalf("diagnostics: %+v", ds)
	}
	if ds[1].Col != 0 || ds[1].Severity != "warning" || len(ds[0].Context) != 2 {
		t.Fatalf("diagnostics: %+v", ds)
	}
	c := diagnosticsCheck("shaders", "Shaders compile", out, nil, "fix it", nil)
	if c.Status != checks.Fail || c.File != "/rt/kernels/attn_fwd.metal" || c.Line != 42 ||
		!strings.HasPrefix(c.Evidence[0], "/rt/kernels/attn_fwd.metal:42:7: error:") {
		t.Fatalf("check: %+v", c)
	}
	if strings.Contains(strings.Join(c.Evidence, "\n"), "unused variable") {
		t.Fatal("warnings are not errors")
	}
}

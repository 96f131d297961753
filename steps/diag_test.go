package steps

import (
	"path/filepath"
	"testing"

	"github.com/orchardkit/orchard/checks"
	"github.com/orchardkit/orchard/metalkern"
)

// Four errors in two files: four locations, each at its own line and
// column, mapped from the materialised copy to the repository path.
func TestDiagnosticsCheckKeepsEveryLocation(t *testing.T) {
	dir := t.TempDir()
	b := &Build{Source: metalkern.Embedded()}
	rt := b.RuntimeRoot(dir)
	fwd, sm := filepath.Join(rt, "kernels", "attn_fwd.metal"), filepath.Join(rt, "include", "softmax.h")
	out := fwd + ":42:7: error: 'simd_maxx' was not declared in this scope\n" +
		"   42 |   m = simd_maxx(x);\n" +
		fwd + ":50:3: warning: unused variable\n" +
		fwd + ":61:12: error: expected ';' before 'return'\n" +
		sm + ":9:1: error: expected '}' at end of input\n" +
		fwd + ":70: error: no column here\n"
	c := diagnosticsCheck("shaders", "Shaders compile", out, nil, "fix it", func(f string) string { return b.SourcePath(dir, f) })
	want := []checks.Location{
		{File: "metalkern/runtime/kernels/attn_fwd.metal", Line: 42, Col: 7, Message: "'simd_maxx' was not declared in this scope"},
		{File: "metalkern/runtime/kernels/attn_fwd.metal", Line: 61, Col: 12, Message: "expected ';' before 'return'"},
		{File: "metalkern/runtime/include/softmax.h", Line: 9, Col: 1, Message: "expected '}' at end of input"},
		{File: "metalkern/runtime/kernels/attn_fwd.metal", Line: 70, Message: "no column here"},
	}
	if len(c.Locations) != len(want) {
		t.Fatalf("locations: %+v", c.Locations)
	}
	for i := range want {
		if c.Locations[i] != want[i] {
			t.Errorf("location %d: %+v, want %+v", i, c.Locations[i], want[i])
		}
	}
	if c.File != want[0].File || c.Line != 42 {
		t.Errorf("check points at %s:%d", c.File, c.Line)
	}
}

func TestSourcePathKeepsEjectedAndForeignFiles(t *testing.T) {
	ej := &Build{Source: metalkern.Source{Dir: "/home/me/rt"}}
	if got := ej.SourcePath("/b", "/home/me/rt/kernels/x.metal"); got != "/home/me/rt/kernels/x.metal" {
		t.Errorf("ejected: %s", got)
	}
	em := &Build{Source: metalkern.Embedded()}
	if got := em.SourcePath("/b", "/usr/include/c++/12/bits/stl.h"); got != "/usr/include/c++/12/bits/stl.h" {
		t.Errorf("foreign file: %s", got)
	}
	if got := em.SourcePath("/b", "/b/runtime/kernels/x.metal"); got != "metalkern/runtime/kernels/x.metal" {
		t.Errorf("embedded: %s", got)
	}
}

func TestMergeChecksOneItemPerID(t *testing.T) {
	cs := mergeChecks([]checks.Check{
		{ID: "shaders", Status: checks.Fail, Evidence: []string{"a"}, File: "a.metal", Line: 1, Locations: []checks.Location{{File: "a.metal", Line: 1}}},
		{ID: "shaders", Status: checks.Fail, Evidence: []string{"b"}, File: "b.metal", Line: 2, Locations: []checks.Location{{File: "b.metal", Line: 2}}},
	})
	if len(cs) != 1 || len(cs[0].Locations) != 2 || len(cs[0].Evidence) != 2 || cs[0].File != "a.metal" {
		t.Fatalf("merged: %+v", cs)
	}
}

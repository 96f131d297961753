package logs

import "testing"

// FuzzParse: Parse never panics, and when it accepts a line, Format writes a
// line that Parse reads back to the same value (and Format is then stable).
// Seeds: the f.Add calls below and testdata/fuzz/FuzzParse/.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"[flashattn.mm] FWD call=1",
		"[flashattn.mm] BWD call=1",
		`[flashattn.emu] FWD call=3 time=2026-11-28T10:15:31.002+01:00 pid=977 run=r1 backend=emu shape=2x4x128x96x64 dtype=f16 causal=1 storage=shared dur_us=90311`,
		`[flashattn.mm] ERROR time=2026-11-28T10:15:30.200Z run=r1 backend=metal op=bwd msg="pipeline \"x\" failed\n"`,
		`[flashattn.mm] ALLOC name=q bytes=32768 storage=shared shape=1x2x64x64 k="\xff\x00"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		l, err := Parse(in)
		if err != nil {
			return
		}
		if err := l.Validate(); err != nil {
			t.Fatalf("Parse(%q) accepted a line Validate rejects: %v", in, err)
		}
		out := Format(l)
		l2, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Format(Parse(%q))) = %v; Format wrote %q", in, err, out)
		}
		if !sameLine(l, l2) {
			t.Fatalf("round trip of %q changed the value:\n  %+v\n  %+v (via %q)", in, l, l2, out)
		}
		if out2 := Format(l2); out2 != out {
			t.Fatalf("Format not stable: %q then %q", out, out2)
		}
	})
}

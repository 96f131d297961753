package bench

import (
	"slices"
	"strings"
	"testing"

	"github.com/orchardkit/orchard/metalkern/npy"
)

func TestParseShapes(t *testing.T) {
	got, err := ParseShapes("1x4x256x256x64, 2x1x33x17x8:causal")
	if err != nil {
		t.Fatal(err)
	}
	want := []Shape{{1, 4, 256, 256, 64, false}, {2, 1, 33, 17, 8, true}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if got[1].String() != "2x1x33x17x8:causal" {
		t.Errorf("String %q", got[1].String())
	}
	for spec, wantMsg := range map[string]string{
		"":                          "--shapes is empty",
		"1x4x256x256":               `"1x4x256x256": want 5 dimensions`,
		"1x4x256x256x64,1x2x3x4x0":  `"1x2x3x4x0": D must be a whole number >= 1, got "0"`,
		"1x4xabcx256x64":            `Nq must be a whole number >= 1, got "abc"`,
		"1x1x8x8x300":               "D=300: the kernels support head dims 1..256",
		"1x1x8x8x64:causl":          `unknown suffix ":causl"`,
		"1x4x256x256x64,":           `element "": want 5 dimensions`,
		"16x16x8192x8192x64":        "plain baseline keeps S in device memory",
		"1x1x40000000x40000000x128": "32-bit indexing",
	} {
		_, err := ParseShapes(spec)
		if err == nil || !strings.Contains(err.Error(), wantMsg) {
			t.Errorf("ParseShapes(%q): %v, want an error containing %q", spec, err, wantMsg)
		}
	}
}

func TestParseDTypesAndPasses(t *testing.T) {
	if dt, err := ParseDTypes("f32,f16,f32"); err != nil || !slices.Equal(dt, []npy.DType{npy.Float32, npy.Float16}) {
		t.Errorf("dtypes %v %v", dt, err)
	}
	if _, err := ParseDTypes("f16,bf16"); err == nil || !strings.Contains(err.Error(), `--dtype element "bf16": want f16 or f32`) {
		t.Errorf("bf16: %v", err)
	}
	if p, err := ParsePasses("bwd"); err != nil || !slices.Equal(p, []string{"bwd"}) {
		t.Errorf("passes %v %v", p, err)
	}
	if _, err := ParsePasses("fwd,back"); err == nil || !strings.Contains(err.Error(), `--pass element "back": want fwd or bwd`) {
		t.Errorf("back: %v", err)
	}
}

// Pairs counts the unmasked pairs exactly: checked against a brute-force
// count for square, wide and tall causal shapes.
func TestPairsAndFlops(t *testing.T) {
	for _, s := range []Shape{{1, 1, 7, 7, 8, true}, {2, 3, 5, 9, 8, true}, {1, 2, 9, 5, 8, true}, {1, 1, 9, 5, 8, false}} {
		var n int64
		for i := 0; i < s.Nq; i++ {
			for j := 0; j < s.Nk; j++ {
				if !s.Causal || j <= i {
					n++
				}
			}
		}
		n *= int64(s.B * s.H)
		if got := s.Pairs(); got != n {
			t.Errorf("%s: pairs %d, want %d", s, got, n)
		}
		if f := s.Flops(PassFwd); f != 4*float64(n)*8 {
			t.Errorf("%s: fwd flops %g", s, f)
		}
		if f := s.Flops(PassBwd); f != 10*float64(n)*8 {
			t.Errorf("%s: bwd flops %g", s, f)
		}
	}
}

func TestSummarize(t *testing.T) {
	if got := summarize([]float64{3, 1, 2}); got != (MS{1, 2, 3}) {
		t.Errorf("odd: %v", got)
	}
	if got := summarize([]float64{4, 1, 2, 3}); got != (MS{1, 2.5, 4}) {
		t.Errorf("even: %v", got)
	}
}

package emugen

import (
	"bytes"
	"strings"
	"testing"
)

// rewriteCounting is rewrite for the counting build.
func rewriteCounting(t *testing.T, src string) (string, error) {
	t.Helper()
	tu := &tu{files: map[string]*srcFile{}, onceSeen: map[*srcFile]bool{}, counting: true}
	f, err := tu.load("/k/x.metal", []byte(src))
	if err != nil {
		return "", err
	}
	u, err := tu.expand(f, 0)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	tu.render(u, &b)
	return b.String(), nil
}

func TestCountingRewrite(t *testing.T) {
	cases := map[string]struct {
		src     string
		want    []string
		wantErr string
	}{
		"device and threadgroup pointer parameters": {
			src: "void f(const device T* a, device float* b, const threadgroup float* c, threadgroup half* d) {}",
			want: []string{"void f(::orchard_emu::DevPtr<const T> a, ::orchard_emu::DevPtr<float> b, " +
				"::orchard_emu::TgPtr<const float> c, ::orchard_emu::TgPtr<half> d) {}"},
		},
		"template type and a cast": {
			src:  "void f(device vec<float, 4>* a) { x = *(const device float4*)a; }",
			want: []string{"::orchard_emu::DevPtr<vec<float, 4>> a", "*(::orchard_emu::DevPtr<const float4>)a"},
		},
		"one-dimensional storage": {
			src: "kernel void f() {\n  threadgroup float a[4 * N], b[8];\n}",
			want: []string{"::orchard_emu::TgPtr<float> a = ::orchard_emu::tg_counted<float[4 * N]>(__orchard_tg_a);",
				"::orchard_emu::TgPtr<float> b = ::orchard_emu::tg_counted<float[8]>(__orchard_tg_b);"},
		},
		"constant stays const": {
			src:  "void f(constant P& p, constant float* c) {}",
			want: []string{"void f(const    P& p, const    float* c) {}"},
		},
		"device reference": {
			src:     "void f(device float& r) {}",
			wantErr: "x.metal:1: a device reference: the counting build",
		},
		"threadgroup reference": {
			src:     "void f(threadgroup float& r) {}",
			wantErr: "x.metal:1: a threadgroup reference: the counting build",
		},
		"two-dimensional storage": {
			src:     "kernel void f() { threadgroup float a[4][8]; }",
			wantErr: "one-dimensional threadgroup arrays only",
		},
		"scalar storage": {
			src:     "kernel void f() { threadgroup float s; }",
			wantErr: "one-dimensional threadgroup arrays only",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			out, err := rewriteCounting(t, tc.src)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if strings.Count(out, "\n") != strings.Count(tc.src, "\n") {
				t.Errorf("line count changed:\n%s", out)
			}
		})
	}
}

// The counting units announce themselves (the shim refuses any other mix);
// Generate's do not.
func TestGenerateCountingMarksItsUnits(t *testing.T) {
	src := []byte("[[kernel]] void k(device float* o [[buffer(0)]], uint i [[thread_position_in_grid]]) { o[i] = 1.0f; }\n")
	counting, _, err := GenerateCounting("/k/x.metal", src)
	if err != nil {
		t.Fatal(err)
	}
	plain, _, err := Generate("/k/x.metal", src)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(bytes.SplitN(counting, []byte("\n"), 2)[1], []byte("#define ORCHARD_EMU_COUNTING 1\n")) ||
		!bytes.Contains(counting, []byte("::orchard_emu::DevPtr<float> o")) {
		t.Errorf("counting unit:\n%s", counting)
	}
	if bytes.Contains(plain, []byte("ORCHARD_EMU_COUNTING")) || bytes.Contains(plain, []byte("DevPtr")) {
		t.Errorf("plain unit:\n%s", plain)
	}
}

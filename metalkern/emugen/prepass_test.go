package emugen

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// rewrite runs the pre-pass on one in-memory file and returns its text.
func rewrite(t *testing.T, src string) (string, error) {
	t.Helper()
	tu := &tu{files: map[string]*srcFile{}, onceSeen: map[*srcFile]bool{}}
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

func TestThreadgroupRewrite(t *testing.T) {
	cases := map[string]struct {
		src      string
		want     []string // substrings of the output
		wantNot  []string
		wantErr  string
		keepLine bool
	}{
		"pointer parameter": {
			src:     "void f(threadgroup float* p, const threadgroup half* q) {}",
			want:    []string{"void f(            float* p, const             half* q) {}"},
			wantNot: []string{"threadgroup"},
		},
		"reference and cast": {
			src:  "void f() { threadgroup float& r = *(threadgroup float*)0; }",
			want: []string{"{             float& r = *(            float*)0; }"},
		},
		"local pointer into storage": {
			src:  "void f() { threadgroup float* kv = smem + 4; }",
			want: []string{"            float* kv = smem + 4;"},
		},
		"storage with two declarators": {
			src: "kernel void f() {\n  threadgroup float a[4 * N], b[8][2];\n}",
			want: []string{
				`static constexpr ::orchard_emu::TgSite __orchard_tg_a{"a", __FILE__, __LINE__}; float (&a)[4 * N] = ::orchard_emu::tg_var<float[4 * N]>(__orchard_tg_a);`,
				`float (&b)[8][2] = ::orchard_emu::tg_var<float[8][2]>(__orchard_tg_b);`,
			},
		},
		"qualified template type": {
			src:  "kernel void f() { threadgroup metal::vec<float, 4> v[2]; }",
			want: []string{"metal::vec<float, 4> (&v)[2] = ::orchard_emu::tg_var<metal::vec<float, 4>[2]>"},
		},
		"scalar storage over two lines keeps the line count": {
			src:      "kernel void f() {\n  threadgroup uint\n      count;\n  x = 1;\n}",
			want:     []string{"uint (&count) = ::orchard_emu::tg_var<uint>(__orchard_tg_count);\n\n  x = 1;"},
			keepLine: true,
		},
		"attribute and barrier untouched": {
			src:  "void f(device float* p [[threadgroup(0)]]) { threadgroup_barrier(mem_flags::mem_threadgroup); }",
			want: []string{"[[threadgroup(0)]]", "threadgroup_barrier(mem_flags::mem_threadgroup)"},
		},
		"comments and strings untouched": {
			src:  "// threadgroup float x[4];\nconstant char* s = \"threadgroup float y[2];\";",
			want: []string{"// threadgroup float x[4];", "\"threadgroup float y[2];\""},
		},
		"initialiser rejected": {
			src:     "kernel void f() {\n  threadgroup float x = 0;\n}",
			wantErr: "/k/x.metal:2: threadgroup variable 'x' has an initialiser",
		},
		"file scope rejected": {
			src:     "threadgroup float x[4];",
			wantErr: "/k/x.metal:1: threadgroup variable 'x' outside a function body",
		},
		"struct member rejected": {
			src:     "struct S {\n  threadgroup float x[4];\n};",
			wantErr: "/k/x.metal:2: threadgroup variable 'x' outside a function body",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			out, err := rewrite(t, tc.src)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				var se *SourceError
				if !errors.As(err, &se) {
					t.Fatalf("error %T is not a *SourceError", err)
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
			for _, w := range tc.wantNot {
				if strings.Contains(out, w) {
					t.Errorf("output still has %q:\n%s", w, out)
				}
			}
			if got, want := strings.Count(out, "\n"), strings.Count(tc.src, "\n"); got != want {
				t.Errorf("output has %d newlines, source %d: line numbers would shift", got, want)
			}
		})
	}
}

func TestIncludesInlinedOnceWithLineMarkers(t *testing.T) {
	dir := t.TempDir()
	inc := filepath.Join(dir, "inc")
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "a.h"), "#pragma once\n#include \"orchard/p.h\"\ninline void a(threadgroup float* t) {}\n")
	write(filepath.Join(inc, "orchard", "p.h"), "#pragma once\nstruct P { int n; };\n")
	src := "#include <metal_stdlib>\n#include \"a.h\"\n#include \"orchard/p.h\"\n#include \"a.h\"\nint x;\n"
	main := filepath.Join(dir, "k.metal")
	code, _, err := Generate(main, []byte(src), inc)
	if err != nil {
		t.Fatal(err)
	}
	out := string(code)
	for _, w := range []string{
		"#include <metal_stdlib>\n",
		`#line 1 "` + filepath.Join(dir, "a.h") + `"`,
		`#line 1 "` + filepath.Join(inc, "orchard", "p.h") + `"`,
		"inline void a(            float* t) {}",
		`#line 3 "` + filepath.Join(dir, "a.h") + `"`, // back in a.h after p.h
		`#line 3 "` + main + `"`,                      // back in k.metal after a.h
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if n := strings.Count(out, "struct P { int n; };"); n != 1 {
		t.Errorf("p.h inlined %d times, want 1 (#pragma once)", n)
	}
	if n := strings.Count(out, "inline void a("); n != 1 {
		t.Errorf("a.h inlined %d times, want 1", n)
	}
	if strings.Contains(out, "#pragma once") {
		t.Error("#pragma once left in the output (g++ warns about it in a main file)")
	}
	// Back in k.metal at line 3; the two skipped includes stay as blank
	// lines, so 'int x;' is still line 5.
	marker := `#line 3 "` + main + "\"\n"
	if i := strings.LastIndex(out, marker); i < 0 || !strings.HasPrefix(out[i+len(marker):], "\n\nint x;") {
		t.Errorf("'int x;' is not at k.metal:5:\n%s", out)
	}

	_, _, err = Generate(main, []byte("\n#include \"missing.h\"\n"), inc)
	if err == nil || !strings.Contains(err.Error(), main+`:2: cannot find include "missing.h"`) {
		t.Errorf("missing include: error = %v", err)
	}
}

func TestLexSkipsCommentsAndKeepsLines(t *testing.T) {
	toks := lex([]byte("a /* x\ny */ b // c\n#define X \\\n  1\nd 1.5e-3f 'c' \"s\\\"\" ::"))
	var got []string
	for _, tk := range toks {
		got = append(got, tk.text)
	}
	want := []string{"a", "b", "#define X \\\n  1", "d", "1.5e-3f", "'c'", `"s\""`, "::"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("tokens = %q, want %q", got, want)
	}
	if toks[1].line != 2 || toks[2].line != 3 || toks[3].line != 5 {
		t.Errorf("lines = %d %d %d, want 2 3 5", toks[1].line, toks[2].line, toks[3].line)
	}
}

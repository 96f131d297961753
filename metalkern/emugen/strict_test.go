package emugen

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The kernels orchard ships and the emu test kernels stay inside the Metal
// subset the checks enforce.
func TestShippedKernelsPassMetalSubsetChecks(t *testing.T) {
	var files []string
	for _, g := range []string{"../runtime/kernels/*.metal", "../testdata/emu/ok/*.metal"} {
		m, _ := filepath.Glob(g)
		files = append(files, m...)
	}
	if len(files) < 5 {
		t.Fatalf("found only %v", files)
	}
	for _, p := range files {
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := Generate(p, src, "../runtime/include"); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

// Each construct Metal rejects fails generation at its line, with the reason.
func TestMetalSubsetRejections(t *testing.T) {
	const head = "#include <metal_stdlib>\nusing namespace metal;\n"
	k := func(body string) string {
		return head + "kernel void k(device float* out [[buffer(0)]], uint tid [[thread_index_in_threadgroup]]) {\n" +
			body + "\n}\n"
	}
	cases := map[string]struct {
		src  string
		line int
		want string
	}{
		"std call":                        {k("  out[0] = std::max(1.0f, 2.0f);"), 4, "std::max: the C++ standard library is not available in Metal"},
		"new":                             {k("  float* p = new float[4];"), 4, "'new': the new and delete operators are not available"},
		"throw":                           {k("  if (tid > 4) throw 1;"), 4, "'throw': exception handling is not available"},
		"try":                             {k("  try { out[0] = 1; } catch (...) {}"), 4, "'try': exception handling"},
		"virtual":                         {head + "struct S { virtual float f() const; };\n", 3, "'virtual': virtual functions are not available"},
		"goto":                            {k("  goto done;\ndone:\n  out[0] = 1;"), 4, "'goto': goto is not available"},
		"double type":                     {k("  double d = 1.0;"), 4, "'double': Metal has no double type"},
		"double literal":                  {k("  out[tid] = max(out[tid], 0.5);"), 4, "max(..., 0.5, ...): 0.5 is a double literal"},
		"negated double":                  {k("  out[tid] = clamp(out[tid], -1.0, 1.0f);"), 4, "clamp(..., 1.0, ...)"},
		"float literal ok":                {k("  out[tid] = max(out[tid], 0.5f) + 0.25;"), 0, ""},
		"concept":                         {head + "template <class T> concept Small = sizeof(T) < 4;\n", 3, "concepts are C++20"},
		"requires":                        {head + "template <class T> float f(T x) requires (sizeof(T) == 4) { return x; }\n", 3, "requires-clauses are C++20"},
		"spaceship":                       {head + "struct S { int a; bool f(S o) const { return (a <=> o.a) < 0; } };\n", 3, "<=> operator is C++20"},
		"function pointer":                {head + "float twice(float x) { return 2 * x; }\n" + k("  float (*fp)(float) = twice;\n  out[0] = fp(1.0f);"), 7, "'fp' is a function pointer"},
		"recursion":                       {head + "int fact(int n) {\n  return n <= 1 ? 1 : n * fact(n - 1);\n}\n", 4, "'fact' calls itself"},
		"if constexpr ok (MLX uses it)":   {head + "template <int N> float f() {\n  if constexpr (N > 1) return 1.0f;\n  return 0.0f;\n}\n", 0, ""},
		"nested namespace ok":             {head + "namespace a::b { constant int x = 1; }\n", 0, ""},
		"thread references copy values":   {head + "inline void keep(thread float& m, threadgroup float& t) { m = t; }\n", 0, ""},
		"metal overload is not recursion": {head + "inline float2 max(float2 a, float b) { return max(a, float2(b)); }\n", 0, ""},
		"template recursion ok":           {head + "template <int N> int f() { return N + f<N - 1>(); }\ntemplate <> int f<0>() { return 0; }\n", 0, ""},
		"pointer param":                   {head + "inline float first(float* p) { return p[0]; }\n", 3, "parameter 'p' of 'first': pointer type must have explicit address space qualifier"},
		"reference param":                 {head + "inline void inc(float& x) { x += 1.0f; }\n", 3, "parameter 'x' of 'inc': reference type must have explicit address space"},
		"kernel buffer pointer":           {head + "kernel void k2(float* out [[buffer(0)]]) { out[0] = 1; }\n", 3, "parameter 'out' of 'k2': pointer type must have"},
		"local pointer":                   {k("  float x = 1.0f;\n  float* p = &x;\n  out[0] = *p;"), 5, "'p': pointer type must have explicit address space"},
		"thread pointer ok":               {k("  float x = 1.0f;\n  thread float* p = &x;\n  out[0] = *p;"), 0, ""},
		"host-only code ok":               {head + "#ifndef __METAL_VERSION__\nstd::string host_only(float* p);\n#endif\n", 0, ""},
		"threadgroup in helper":           {head + "inline float helper(uint tid) {\n  threadgroup float buf[32];\n  buf[tid] = 1.0f;\n  return buf[0];\n}\n", 4, "threadgroup variable 'buf' declared outside a kernel function"},
		"device to threadgroup": {k("  threadgroup float tile[32];\n  threadgroup float* t = out + 4;\n  t[0] = tile[0];"), 5,
			"cannot initialise threadgroup pointer 't': 'out' points to device memory (line 3), not threadgroup"},
		"threadgroup to device assignment": {k("  threadgroup float tile[32];\n  device float* d = out;\n  d = &tile[2];\n  d[0] = 1;"), 6,
			"cannot assign to device pointer 'd': 'tile' points to threadgroup memory (line 4), not device"},
		"device into threadgroup parameter": {head + "inline void fill(threadgroup float* t, uint i) { t[i] = 0.0f; }\n" +
			k("  threadgroup float tile[32];\n  fill(tile, tid);\n  fill(out, tid);"), 9,
			"argument 1 of 'fill' wants a threadgroup pointer: 'out' points to device memory (line 6)"},
		"both simd widths": {head + "kernel void k3(device float* out [[buffer(0)]],\n  uint w [[thread_execution_width]],\n  uint s [[threads_per_simdgroup]]) { out[0] = w + s; }\n", 5,
			"declares both [[thread_execution_width]] (line 4) and [[threads_per_simdgroup]]; Metal rejects"},
	}
	for name, c := range cases {
		main := "/k/x.metal"
		_, _, err := Generate(main, []byte(c.src))
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: rejected valid Metal: %v", name, err)
			}
			continue
		}
		var se *SourceError
		if !errors.As(err, &se) {
			t.Errorf("%s: err = %v, want a SourceError at line %d", name, err, c.line)
			continue
		}
		if se.File != main || se.Line != c.line || !strings.Contains(se.Msg, c.want) {
			t.Errorf("%s: got %s:%d: %s\nwant line %d containing %q", name, se.File, se.Line, se.Msg, c.line, c.want)
		}
	}
}

// `constant` becomes const (so writes to constant data fail to compile);
// where the specifiers already say const it is blanked.
func TestConstantBecomesConst(t *testing.T) {
	out, err := rewrite(t, "static constant constexpr const int a = 1;\nconstant float b[2] = {1.0f, 2.0f};\n"+
		"kernel void k(constant P& p [[buffer(0)]]) {}\n")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"static          constexpr const int a", "const    float b[2]", "kernel void k(const    P& p"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

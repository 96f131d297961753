package emugen

import (
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

var updateEmu = flag.Bool("update-emu", false, "rewrite testdata/golden files")

const sigSrc = `#include <metal_stdlib>
using namespace metal;
struct P { int n; };
template <typename T, int BQ, bool Causal = false> [[max_total_threads_per_threadgroup(96)]]
[[kernel]] void attn(device const T* q [[buffer(0)]],
                     device T* o [[buffer(3)]],
                     constant P& p [[buffer(7)]],
                     uint3 tgid [[threadgroup_position_in_grid]],
                     ushort lane [[thread_index_in_simdgroup]]) {
  o[0] = q[0];
}
template [[host_name("attn_f32_bq32")]] [[kernel]] void attn<float, 32, true>(device const float* q [[buffer(0)]], device float* o [[buffer(3)]], constant P& p [[buffer(7)]], uint3 tgid [[threadgroup_position_in_grid]], ushort lane [[thread_index_in_simdgroup]]);
[[max_total_threads_per_threadgroup(64)]] kernel void plain(device float* out [[buffer(0)]], uint i [[thread_position_in_grid]]) { out[i] = 1; }
`

func TestKernelSignatures(t *testing.T) {
	_, sigs, err := Generate("/k/a.metal", []byte(sigSrc))
	if err != nil {
		t.Fatal(err)
	}
	want := []KernelSig{
		{HostName: "plain", Function: "plain", File: "/k/a.metal", Line: 13, Params: []KernelParam{
			{Name: "out", Type: "device float*", Attr: "buffer(0)", Buffer: 0},
			{Name: "i", Type: "uint", Attr: "thread_position_in_grid", Buffer: -1},
		}, MaxThreads: 64},
		{HostName: "attn_f32_bq32", Function: "attn<float, 32, true>", Template: "attn", File: "/k/a.metal", Line: 12,
			TemplateArgs: []TemplateArg{{"typename", "T", "float"}, {"int", "BQ", "32"}, {"bool", "Causal", "true"}},
			Params: []KernelParam{
				{Name: "q", Type: "device const T*", Attr: "buffer(0)", Buffer: 0},
				{Name: "o", Type: "device T*", Attr: "buffer(3)", Buffer: 3},
				{Name: "p", Type: "constant P&", Attr: "buffer(7)", Buffer: 7, Ref: true},
				{Name: "tgid", Type: "uint3", Attr: "threadgroup_position_in_grid", Buffer: -1},
				{Name: "lane", Type: "ushort", Attr: "thread_index_in_simdgroup", Buffer: -1},
			}, MaxThreads: 96},
	}
	if !reflect.DeepEqual(sigs, want) {
		t.Errorf("signatures:\n got %+v\nwant %+v", sigs, want)
	}
}

func TestKernelSignatureErrors(t *testing.T) {
	const head = "#include <metal_stdlib>\nusing namespace metal;\n"
	cases := map[string]struct{ src, want string }{
		"missing buffer attribute": {
			"kernel void k(device float* out,\n              uint i [[thread_position_in_grid]]) {}\n",
			"/k/e.metal:3: parameter 'out' of kernel 'k' has no attribute: add [[buffer(n)]]",
		},
		"max threads not a literal": {
			"template <int N> [[max_total_threads_per_threadgroup(N * 32)]] [[kernel]] void k(device float* out [[buffer(0)]]) {}\n",
			"/k/e.metal:3: max_total_threads_per_threadgroup wants an integer literal 1..1024 (emu evaluates no expression here), got (N * 32)"},
		"unknown attribute": {
			"kernel void k(device float* out [[bufer(0)]]) {}\n",
			"/k/e.metal:3: parameter 'out' of kernel 'k': unknown attribute [[bufer(0)]]",
		},
		"threadgroup parameter": {
			"kernel void k(threadgroup float* s [[threadgroup(0)]]) {}\n",
			"/k/e.metal:3: parameter 's' of kernel 'k': [[threadgroup(0)]] is not supported by emu: declare " +
				"threadgroup memory in the kernel body",
		},
		"buffer by value": {
			"kernel void k(constant int n [[buffer(1)]]) {}\n",
			"/k/e.metal:3: parameter 'n' of kernel 'k': a [[buffer(n)]] parameter must be a pointer",
		},
		"buffer index twice": {
			"kernel void k(device float* a [[buffer(1)]],\n device float* b [[buffer(1)]]) {}\n",
			"/k/e.metal:4: parameter 'b' of kernel 'k': [[buffer(1)]] is also used by 'a'",
		},
		"buffer index out of range": {
			"kernel void k(device float* a [[buffer(31)]]) {}\n",
			"/k/e.metal:3: parameter 'a' of kernel 'k': [[buffer(31)]] needs an integer literal from 0 to 30",
		},
		"builtin as float": {
			"kernel void k(float i [[thread_index_in_simdgroup]]) {}\n",
			"/k/e.metal:3: parameter 'i' of kernel 'k': [[thread_index_in_simdgroup]] must be declared as uint or ushort",
		},
		"scalar builtin as vector": {
			"kernel void k(uint2 i [[thread_index_in_threadgroup]]) {}\n",
			"must be declared as uint or ushort, not \"uint2\"",
		},
		"instantiation without host_name": {
			"template <typename T> [[kernel]] void k(device T* a [[buffer(0)]]) {}\n" +
				"template [[kernel]] void k<float>(device float* a [[buffer(0)]]);\n",
			"/k/e.metal:4: instantiation of kernel 'k<float>' has no [[host_name(\"...\")]]",
		},
		"instantiation of an unknown template": {
			"template [[host_name(\"x\")]] [[kernel]] void nope<float>(device float* a [[buffer(0)]]);\n",
			"/k/e.metal:3: explicit instantiation of 'nope': no kernel template of that name",
		},
		"instantiation with a short parameter list": {
			"template <typename T> [[kernel]] void k(device T* a [[buffer(0)]], uint i [[thread_position_in_grid]]) {}\n" +
				"template [[host_name(\"k_f\")]] [[kernel]] void k<float>(device float* a [[buffer(0)]]);\n",
			"/k/e.metal:4: instantiation 'k_f' lists 1 parameters, the template 'k' (/k/e.metal:3) has 2",
		},
		"host name twice": {
			"kernel void k(device float* a [[buffer(0)]]) {}\n[[host_name(\"k\")]] kernel void k2(device float* a [[buffer(0)]]) {}\n",
			"/k/e.metal:4: kernel 'k' is already defined at /k/e.metal:3",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, _, err := Generate("/k/e.metal", []byte(head+tc.src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v\nwant it to contain %q", err, tc.want)
			}
			var se *SourceError
			if !errors.As(err, &se) || se.File != "/k/e.metal" || se.Line == 0 {
				t.Errorf("error is not a *SourceError with file and line: %#v", err)
			}
		})
	}
}

// The generated file for a small kernel set, compared with a golden copy
// (go test ./metalkern/emugen -run TestGenerateEmuGolden -update-emu rewrites it).
func TestGenerateEmuGolden(t *testing.T) {
	src := strings.ReplaceAll(sigSrc, "[[kernel]] void attn(", "[[kernel]] void attn(\n                     ")
	src += "void helper(threadgroup float* t) { threadgroup_barrier(mem_flags::mem_threadgroup); }\n" +
		"kernel void tg(device float* out [[buffer(0)]], uint i [[thread_index_in_threadgroup]]) {\n" +
		"  threadgroup float buf[64];\n  buf[i] = 1;\n  helper(buf);\n  out[i] = buf[63 - i];\n}\n"
	code, _, err := Generate("/k/golden.metal", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "golden", "golden.emu.cpp")
	if *updateEmu {
		if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, code, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update-emu to create it)", err)
	}
	if string(code) != string(want) {
		t.Errorf("generated code differs from %s (run with -update-emu after checking):\n%s", golden, code)
	}
	// The .metal part keeps every line where it was.
	body := string(code)
	body = body[strings.Index(body, "#line 1 \"/k/golden.metal\"\n")+len("#line 1 \"/k/golden.metal\"\n"):]
	body = body[:strings.Index(body, "#line ")]
	if got, want := strings.Count(body, "\n"), strings.Count(src, "\n"); got != want {
		t.Errorf("rewritten source has %d lines, the .metal %d", got, want)
	}
}

func TestEmuOutputName(t *testing.T) {
	if got := OutputName("/a/b/attn_fwd.metal"); got != "attn_fwd.emu.cpp" {
		t.Errorf("OutputName = %q", got)
	}
}

// The runtime's own kernels go through the generator and, when g++ is
// there, compile against the shim (syntax and templates instantiated).
func TestGenerateEmuRuntimeKernels(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("runtime", "kernels", "*.metal"))
	if len(files) == 0 {
		t.Skip("no runtime kernels yet")
	}
	_, gxxErr := exec.LookPath("g++")
	var wg sync.WaitGroup
	for _, f := range files {
		abs, _ := filepath.Abs(f)
		src, err := os.ReadFile(abs)
		if err != nil {
			t.Fatal(err)
		}
		code, sigs, err := Generate(abs, src, filepath.Join("runtime", "include"))
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if len(sigs) == 0 {
			t.Errorf("%s: no kernels found", f)
		}
		if gxxErr != nil {
			continue
		}
		gen := filepath.Join(t.TempDir(), OutputName(abs))
		if err := os.WriteFile(gen, code, 0o644); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := exec.Command("g++", "-std=c++20", "-fsyntax-only", "-Wno-attributes",
				"-I", filepath.Join("runtime", "emu", "include"), gen).CombinedOutput()
			if err != nil {
				t.Errorf("%s does not compile against the emu shim: %v\n%s", f, err, out)
			}
		}()
	}
	wg.Wait()
}

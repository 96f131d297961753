package steps

import (
	"slices"
	"strings"
	"testing"
)

func TestKernelConfigurePerBackend(t *testing.T) {
	b := &Build{Toolchain: &ToolchainStep{Out: ToolchainInfo{CMakePath: "/usr/bin/cmake", CXXPath: "/usr/bin/c++"}}, Race: true}
	sh := &ShadersStep{B: b, Out: ShadersOut{RuntimeDir: "/rt", GenDir: "/b/gen", Metallib: "/b/metal/orchard.metallib"}}
	k := &KernelStep{B: b, Shaders: sh}

	emu := k.configure(&Context{BuildDir: "/b", Backend: BackendEmu})
	for _, want := range []string{"-DORCHARD_BACKEND=emu", "-DORCHARD_GEN_DIR=/b/gen", "-DORCHARD_TSAN=ON", "-S", "/rt"} {
		if !slices.Contains(emu, want) {
			t.Errorf("emu configure lacks %s: %v", want, emu)
		}
	}
	if strings.Contains(strings.Join(emu, " "), "METALLIB") {
		t.Errorf("emu configure passes a metallib: %v", emu)
	}
	if o := k.outputs(&Context{BuildDir: "/b", Backend: BackendEmu}); o.Metallib != "" || o.TSanRunner != "/b/cmake/orchard-runner-emu-tsan" {
		t.Errorf("emu outputs: %+v", o)
	}

	metal := k.configure(&Context{BuildDir: "/b", Backend: BackendMetal})
	if !slices.Contains(metal, "-DORCHARD_PREBUILT_METALLIB=/b/metal/orchard.metallib") || !slices.Contains(metal, "-DORCHARD_BACKEND=metal") {
		t.Errorf("metal configure: %v", metal)
	}
	o := k.outputs(&Context{BuildDir: "/b", Backend: BackendMetal})
	if o.Metallib != "/b/metal/orchard.metallib" || o.TSanRunner != "" || o.Runner != "/b/cmake/orchard-runner-metal" {
		t.Errorf("metal outputs: %+v", o)
	}
	if r := runnerFor(&KernelStep{Out: o}); !slices.Equal(r.Args, []string{"--library", "/b/metal/orchard.metallib"}) {
		t.Errorf("metal runner args: %v", r.Args)
	}
}

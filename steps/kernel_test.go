package steps

import (
	"path/filepath"
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
	tree := treeFor("/b", "embedded", "/b/runtime").Dir
	if !strings.HasPrefix(tree, "/b/cmake/") || len(tree) != len("/b/cmake/")+12 {
		t.Errorf("the embedded runtime's CMake tree: %s", tree)
	}
	if ej := treeFor("/b", "/home/me/rt", "/home/me/rt").Dir; ej == tree || filepath.Dir(ej) != "/b/cmake" {
		t.Errorf("an ejected runtime's tree %s beside the embedded one's %s", ej, tree)
	}
	if o := k.outputs(&Context{BuildDir: "/b", Backend: BackendEmu}); o.Metallib != "" || o.TSanRunner != tree+"/orchard-runner-emu-tsan" {
		t.Errorf("emu outputs: %+v", o)
	}

	metal := k.configure(&Context{BuildDir: "/b", Backend: BackendMetal})
	if !slices.Contains(metal, "-DORCHARD_PREBUILT_METALLIB=/b/metal/orchard.metallib") || !slices.Contains(metal, "-DORCHARD_BACKEND=metal") {
		t.Errorf("metal configure: %v", metal)
	}
	o := k.outputs(&Context{BuildDir: "/b", Backend: BackendMetal})
	if o.Metallib != "/b/metal/orchard.metallib" || o.TSanRunner != "" || o.Runner != tree+"/orchard-runner-metal" {
		t.Errorf("metal outputs: %+v", o)
	}
	if r := runnerFor(&KernelStep{Out: o}); !slices.Equal(r.Args, []string{"--library", "/b/metal/orchard.metallib"}) {
		t.Errorf("metal runner args: %v", r.Args)
	}
}

package steps

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orchardkit/orchard/checks"
)

// pathWithout is a PATH with every executable of this machine's PATH except
// the named ones (symlinks in a temp dir).
func pathWithout(t *testing.T, exclude ...string) string {
	t.Helper()
	dir := t.TempDir()
	skip := map[string]bool{}
	for _, e := range exclude {
		skip[e] = true
	}
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		ents, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if skip[e.Name()] {
				continue
			}
			link := filepath.Join(dir, e.Name())
			if _, err := os.Lstat(link); err == nil {
				continue // an earlier PATH entry wins
			}
			_ = os.Symlink(filepath.Join(d, e.Name()), link)
		}
	}
	return dir
}

func ids(cs []checks.Check) string {
	var s []string
	for _, c := range cs {
		s = append(s, c.ID+"="+string(c.Status))
	}
	return strings.Join(s, " ")
}

func TestToolchainStepEmuHere(t *testing.T) {
	p := testProber(t, map[string]string{"PATH": realPath()}, "os-release-debian")
	s := &ToolchainStep{Prober: p}
	var log bytes.Buffer
	res, err := s.Run(context.Background(), &Context{Backend: "emu", Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(res.Checks); got != "toolchain.os=pass toolchain.cmake=pass toolchain.cxx=pass" {
		t.Errorf("checks: %s", got)
	}
	if res.EnvFailure || res.Status() != checks.Pass {
		t.Errorf("env failure %v, status %s", res.EnvFailure, res.Status())
	}
	o := s.Out
	if o.Backend != "emu" || o.CMakePath == "" || o.CMakeVersion == "" || o.CXXPath == "" || o.CXXVersionLine == "" || o.MetalVersion != "" {
		t.Errorf("output: %+v", o)
	}
	if want := "cmake " + o.CMakeVersion + ", cxx " + o.CXXVersion; res.Detail != want {
		t.Errorf("detail %q, want %q", res.Detail, want)
	}
	tools := o.Tools()
	if !strings.HasPrefix(tools["cmake"], o.CMakeVersion+" /") || tools["metal"] != "" {
		t.Errorf("tools: %v", tools)
	}
	if !strings.Contains(log.String(), "toolchain.cxx: pass") {
		t.Errorf("log:\n%s", log.String())
	}
	// The output survives a JSON round trip (stamps store outputs as JSON).
	b, _ := json.Marshal(o)
	var back ToolchainInfo
	if err := json.Unmarshal(b, &back); err != nil || back.CXXPath != o.CXXPath {
		t.Errorf("round trip: %v %+v", err, back)
	}
	if _, ok := Step(s).(Cacheable); ok {
		t.Error("the toolchain step must not be cacheable")
	}
	if s.Name() != "toolchain" {
		t.Errorf("name %q", s.Name())
	}
}

func TestToolchainStepWithoutCMake(t *testing.T) {
	p := testProber(t, map[string]string{"PATH": pathWithout(t, "cmake")}, "os-release-debian")
	s := &ToolchainStep{Prober: p}
	res, err := s.Run(context.Background(), &Context{Backend: "emu"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.EnvFailure || res.Status() != checks.Fail {
		t.Fatalf("env failure %v, status %s: %s", res.EnvFailure, res.Status(), ids(res.Checks))
	}
	if got := ids(res.Checks); got != "toolchain.os=pass toolchain.cmake=fail toolchain.cxx=pass" {
		t.Errorf("checks: %s", got)
	}
	if res.Checks[1].Hint != "apt-get update && apt-get install -y cmake" {
		t.Errorf("hint %q", res.Checks[1].Hint)
	}
	if res.Detail != "missing or unusable: cmake (see: orchard doctor --fix)" {
		t.Errorf("detail %q", res.Detail)
	}
}

func TestToolchainStepMetalOnFakeMac(t *testing.T) {
	p, _ := newFakeMac(t)
	s := &ToolchainStep{Prober: p}
	res, err := s.Run(context.Background(), &Context{Backend: "metal"})
	if err != nil {
		t.Fatal(err)
	}
	if res.EnvFailure || len(res.Checks) != 8 {
		t.Fatalf("env failure %v: %s", res.EnvFailure, ids(res.Checks))
	}
	o := s.Out
	if o.MetalVersion != "32023.883" || o.MetallibVersion != "32023.883" || o.XcodeVersion != "16.4" || o.GPU == nil || o.GPU.Model != "Apple M3 Pro" {
		t.Errorf("output: %+v", o)
	}
	if tools := o.Tools(); !strings.HasPrefix(tools["metal"], "32023.883 /Applications/Xcode_16.4.app/") || tools["xcode"] != "16.4" {
		t.Errorf("tools: %v", tools)
	}
}

func TestToolchainStepMetalOnParavirtualRunner(t *testing.T) {
	p, f := newFakeMac(t)
	paravirtual(t, f)
	s := &ToolchainStep{Prober: p}
	res, _ := s.Run(context.Background(), &Context{Backend: "metal"})
	if !res.EnvFailure || !strings.Contains(res.Detail, "gpu") {
		t.Errorf("env failure %v, detail %q: %s", res.EnvFailure, res.Detail, ids(res.Checks))
	}
}

// On a hosted macOS runner (paravirtual GPU) the backend is emu, but the
// kernels are still compiled with the Metal toolchain when it is there.
func TestToolchainStepEmuOnMacKeepsTheMetalCompiler(t *testing.T) {
	p, f := newFakeMac(t)
	paravirtual(t, f)
	s := &ToolchainStep{Prober: p}
	res, err := s.Run(context.Background(), &Context{Backend: "emu"})
	if err != nil || res.EnvFailure {
		t.Fatalf("emu on a Mac: %v %v: %s", err, res.EnvFailure, ids(res.Checks))
	}
	if s.Out.MetalPath == "" || s.Out.MetallibPath == "" {
		t.Fatalf("the Metal compiler was not kept for the shader step: %+v", s.Out)
	}
}

func TestToolchainStepEmuOnMacWithoutMetalToolchainWarns(t *testing.T) {
	p, f := newFakeMac(t)
	delete(f.tools, "xcrun")
	s := &ToolchainStep{Prober: p}
	res, err := s.Run(context.Background(), &Context{Backend: "emu"})
	if err != nil || res.EnvFailure || res.Status() != checks.Warn {
		t.Fatalf("emu on a Mac without xcrun: %v env=%v status=%s: %s", err, res.EnvFailure, res.Status(), ids(res.Checks))
	}
	if s.Out.MetalPath != "" {
		t.Fatalf("metal path set without a Metal compiler: %+v", s.Out)
	}
}

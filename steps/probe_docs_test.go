package steps

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// normDoc lowercases, drops backticks and collapses whitespace, so a hint
// matches the docs whatever the line wrapping and code spans.
func normDoc(s string) string {
	s = strings.ToLower(strings.ReplaceAll(s, "`", ""))
	return regexp.MustCompile(`\s+`).ReplaceAllString(s, " ")
}

// TestProbeHintsDocumented: every hint the probes print (and the backend
// reasons) appears in docs/troubleshooting.md.
func TestProbeHintsDocumented(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "docs", "troubleshooting.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := normDoc(string(b))
	ctx := context.Background()
	var texts []string
	add := func(rs ...ProbeResult) {
		for _, r := range rs {
			if r.Check.Hint == "" {
				t.Errorf("%s (%s): no hint", r.Check.ID, r.Reason)
			}
			texts = append(texts, strings.TrimPrefix(r.Check.Hint, "optional: "))
		}
	}

	// Linux and macOS fixes for missing and too old tools.
	fixture := mustAbs(t, "testdata/probe")
	for _, osr := range []string{"os-release-debian", "os-release-fedora", "os-release-alpine"} {
		p := testProber(t, map[string]string{"PATH": t.TempDir()}, osr)
		p.GOOS = "linux"
		add(p.CMake(ctx), p.CXX(ctx))
		p = testProber(t, map[string]string{"PATH": realPath(), "CXX": "c++ -nostdinc++"}, osr)
		p.GOOS = "linux"
		add(p.CXX(ctx))
	}
	p := testProber(t, map[string]string{"PATH": t.TempDir(), "CXX": "no-such-compiler"}, "os-release-debian")
	add(p.CXX(ctx))
	dir := standIns(t, map[string]string{"cmake": "cat " + filepath.Join(fixture, "cmake-3.19.8.txt")})
	add(testProber(t, map[string]string{"PATH": dir + ":/usr/bin:/bin"}, "os-release-debian").CMake(ctx))
	p = testProber(t, map[string]string{"PATH": t.TempDir()}, "os-release-debian")
	p.GOOS = "darwin"
	add(p.CMake(ctx))

	// The Mac scenarios (fakeMac).
	mac := func(setup func(*testing.T, *fakeMac)) *Prober {
		p, f := newFakeMac(t)
		if setup != nil {
			setup(t, f)
		}
		return p
	}
	add(mac(xcode26NoToolchain).Metal(ctx), mac(cltOnly).Xcode(ctx), mac(paravirtual).GPU(ctx))
	p = mac(func(t *testing.T, f *fakeMac) {
		f.replies["system_profiler SPDisplaysDataType -json"] = fakeReply{out: readFixture(t, "sp-displays-intel.json")}
		f.replies["c++ --version"] = fakeReply{out: readFixture(t, "apple-clang-16.txt")}
		f.replies["<compile>"] = fakeReply{errOut: "probe.cpp:4:10: fatal error: 'source_location' file not found\n", exit: 1}
		f.replies["xcodebuild -version"] = fakeReply{out: "Xcode 14.3.1\nBuild version 14E300\n"}
		delete(f.tools, "xcrun")
		delete(f.tools, "cmake")
	})
	add(p.GPU(ctx), p.CXX(ctx), p.Xcode(ctx), p.Xcrun(ctx), p.CMake(ctx))
	p = mac(func(t *testing.T, f *fakeMac) { delete(f.tools, "c++") })
	add(p.CXX(ctx))

	// PyTorch hints (optional).
	texts = append(texts, "python3 -m pip install 'torch>="+MinTorch+"'", "python3 -m pip install -U 'torch>="+MinTorch+"'",
		"python3 -m pip install -U 'torch>="+MinTorchMPS+"'")

	// Backend reasons.
	for _, setup := range []func(*testing.T, *fakeMac){paravirtual, xcode26NoToolchain} {
		_, reason, _ := ResolveBackend(ctx, "auto", mac(setup))
		texts = append(texts, reason)
	}
	lp := testProber(t, nil, "os-release-debian")
	lp.GOOS, lp.GOARCH = "linux", "amd64"
	_, reason, _ := ResolveBackend(ctx, "auto", lp)
	texts = append(texts, reason)

	for _, s := range texts {
		if !strings.Contains(doc, normDoc(s)) {
			t.Errorf("docs/troubleshooting.md lacks %q", s)
		}
	}
	if len(texts) < 20 {
		t.Errorf("only %d hints checked", len(texts))
	}
}

package steps

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orchardkit/orchard/checks"
)

// fakeMac is a test double for a Mac: xcrun, xcodebuild, system_profiler,
// sysctl, sw_vers and Apple clang cannot exist on this Linux machine. Its
// replies are the outputs in testdata/probe.
type fakeMac struct {
	tools   map[string]string    // name → path on the fake PATH
	replies map[string]fakeReply // "xcrun -sdk macosx metal --version" → reply
	mu      sync.Mutex
	calls   []string
}

type fakeReply struct {
	out, errOut string
	exit        int  // nonzero: ends with that status; -1: killed by a signal
	hang        bool // blocks until the probe's timeout
}

// fakeExit is how a fake child ends (the real one is *exec.ExitError).
type fakeExit struct{ code int }

func (e fakeExit) Error() string {
	if e.code < 0 {
		return "signal: segmentation fault"
	}
	return fmt.Sprintf("exit status %d", e.code)
}
func (e fakeExit) ExitCode() int { return e.code }

func (f *fakeMac) LookPath(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return name, nil
	}
	if p, ok := f.tools[name]; ok {
		return p, nil
	}
	return "", fmt.Errorf("%s: not found on PATH", name)
}

func (f *fakeMac) Run(ctx context.Context, dir string, argv ...string) ([]byte, []byte, error) {
	key := filepath.Base(argv[0]) + " " + strings.Join(argv[1:], " ")
	switch {
	case slices.Contains(argv, cxxProbeSrcName):
		key = "<compile>"
	case filepath.Base(argv[0]) == "probe":
		key = "<probe>"
	}
	f.mu.Lock()
	f.calls = append(f.calls, key)
	f.mu.Unlock()
	r, ok := f.replies[key]
	if !ok {
		return nil, []byte("fakeMac: no reply for " + key), fakeExit{code: 127}
	}
	if r.hang {
		<-ctx.Done()
		return nil, nil, ctx.Err()
	}
	var err error
	if r.exit != 0 {
		err = fakeExit{code: r.exit}
	}
	return []byte(r.out), []byte(r.errOut), err
}

func (f *fakeMac) ran(key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Contains(f.calls, key)
}

// newFakeMac is an Apple-silicon MacBook Pro (M3 Pro) with Xcode 16.4,
// Homebrew cmake and Apple clang. Scenarios change replies from there.
func newFakeMac(t *testing.T) (*Prober, *fakeMac) {
	t.Helper()
	fx := func(name string) string { return readFixture(t, name) }
	f := &fakeMac{
		tools: map[string]string{
			"cmake": "/opt/homebrew/bin/cmake", "c++": "/usr/bin/c++", "xcrun": "/usr/bin/xcrun",
			"xcodebuild": "/usr/bin/xcodebuild", "system_profiler": "/usr/sbin/system_profiler",
			"sysctl": "/usr/sbin/sysctl", "sw_vers": "/usr/bin/sw_vers",
		},
		replies: map[string]fakeReply{
			"sw_vers -productVersion":                  {out: "15.5\n"},
			"cmake --version":                          {out: fx("cmake-3.30.2-brew.txt")},
			"c++ --version":                            {out: fx("apple-clang-16.txt")},
			"<compile>":                                {},
			"<probe>":                                  {out: "orchard-cxx-ok 1 line 15\n"},
			"xcrun --version":                          {out: fx("xcrun-version.txt")},
			"xcodebuild -version":                      {out: fx("xcodebuild-16.4.txt")},
			"xcrun -sdk macosx metal --version":        {out: fx("metal-32023.883.txt")},
			"xcrun -sdk macosx -f metal":               {out: "/Applications/Xcode_16.4.app/Contents/Developer/Toolchains/XcodeDefault.xctoolchain/usr/bin/metal\n"},
			"xcrun -sdk macosx metallib --version":     {out: fx("metallib-32023.883.txt")},
			"xcrun -sdk macosx -f metallib":            {out: "/Applications/Xcode_16.4.app/Contents/Developer/Toolchains/XcodeDefault.xctoolchain/usr/bin/metallib\n"},
			"system_profiler SPDisplaysDataType -json": {out: fx("sp-displays-m3pro.json")},
			"sysctl -n hw.model":                       {out: fx("hw-model-m3pro.txt")},
		},
	}
	p := &Prober{Runner: f, Getenv: func(string) string { return "" }, GOOS: "darwin", GOARCH: "arm64"}
	return p, f
}

// paravirtual turns the fake into a GitHub-hosted macOS runner VM.
func paravirtual(t *testing.T, f *fakeMac) {
	f.replies["system_profiler SPDisplaysDataType -json"] = fakeReply{out: readFixture(t, "sp-displays-paravirtual.json")}
	f.replies["sysctl -n hw.model"] = fakeReply{out: readFixture(t, "hw-model-virtualmac.txt")}
}

// xcode26NoToolchain: Xcode 26 without the separately downloaded Metal
// Toolchain (`xcrun -f metal` still answers).
func xcode26NoToolchain(t *testing.T, f *fakeMac) {
	f.replies["xcodebuild -version"] = fakeReply{out: readFixture(t, "xcodebuild-26.0.txt")}
	f.replies["xcrun -sdk macosx metal --version"] = fakeReply{errOut: readFixture(t, "metal-xcode26-missing-toolchain.txt"), exit: 1}
	f.replies["xcrun -sdk macosx metallib --version"] = fakeReply{errOut: readFixture(t, "metallib-xcode26-missing-toolchain.txt"), exit: 1}
}

// cltOnly: only the Command Line Tools are selected.
func cltOnly(t *testing.T, f *fakeMac) {
	f.replies["xcodebuild -version"] = fakeReply{errOut: readFixture(t, "xcodebuild-clt-only.txt"), exit: 1}
	f.replies["xcrun -sdk macosx metal --version"] = fakeReply{errOut: readFixture(t, "metal-clt-only.txt"), exit: 72}
	f.replies["xcrun -sdk macosx metallib --version"] = fakeReply{errOut: strings.ReplaceAll(readFixture(t, "metal-clt-only.txt"), `"metal"`, `"metallib"`), exit: 72}
}

func TestProbeMacAllPass(t *testing.T) {
	p, f := newFakeMac(t)
	ctx := context.Background()
	for _, r := range p.Probes(ctx, BackendMetal, false) {
		if r.Check.Status != checks.Pass {
			t.Errorf("%s: %s %s", r.Check.ID, r.Check.Status, evidence(r))
		}
	}
	if m := p.Metal(ctx); m.Version != "32023.883" || !strings.HasSuffix(m.Path, "/usr/bin/metal") {
		t.Errorf("metal: %q at %q", m.Version, m.Path)
	}
	if g := p.GPU(ctx).GPU; g == nil || g.Model != "Apple M3 Pro" || g.HWModel != "Mac15,6" || g.Paravirtual {
		t.Errorf("gpu: %+v", g)
	}
	if x := p.Xcode(ctx); x.Version != "16.4" {
		t.Errorf("xcode %q", x.Version)
	}
	if c := p.CXX(ctx); c.VersionLine != "Apple clang version 16.0.0 (clang-1600.0.26.6)" || !f.ran("<probe>") {
		t.Errorf("c++: %q, probe ran: %v", c.VersionLine, f.ran("<probe>"))
	}
	if os := p.OS(ctx); evidence(os) != "platform: darwin/arm64\nversion: macOS 15.5" {
		t.Errorf("os: %q", evidence(os))
	}
}

func TestProbeMacXcode26WithoutMetalToolchain(t *testing.T) {
	p, f := newFakeMac(t)
	xcode26NoToolchain(t, f)
	ctx := context.Background()
	for _, r := range []ProbeResult{p.Metal(ctx), p.Metallib(ctx)} {
		if r.Check.Status != checks.Fail || r.Reason != "Metal Toolchain missing (Xcode 26+ downloads it separately)" {
			t.Errorf("%s: %s %q", r.Check.ID, r.Check.Status, r.Reason)
		}
		if r.Check.Hint != "xcodebuild -downloadComponent MetalToolchain" {
			t.Errorf("%s: hint %q", r.Check.ID, r.Check.Hint)
		}
		if !strings.Contains(evidence(r), "cannot execute tool") {
			t.Errorf("%s: evidence lacks the error:\n%s", r.Check.ID, evidence(r))
		}
	}
	// The compiler was run, not merely located.
	if !f.ran("xcrun -sdk macosx metal --version") {
		t.Error("metal --version was not run")
	}
	if x := p.Xcode(ctx); x.Check.Status != checks.Pass || x.Version != "26.0" {
		t.Errorf("xcode 26: %s %q", x.Check.Status, x.Version)
	}
}

func TestProbeMacCommandLineToolsOnly(t *testing.T) {
	p, f := newFakeMac(t)
	cltOnly(t, f)
	ctx := context.Background()
	x, m := p.Xcode(ctx), p.Metal(ctx)
	if x.Check.Status != checks.Fail || !strings.Contains(x.Check.Hint, "xcode-select -s /Applications/Xcode.app") {
		t.Errorf("xcode: %s %q", x.Check.Status, x.Check.Hint)
	}
	if m.Check.Status != checks.Fail || m.Reason != "metal not found: only the Command Line Tools are selected" {
		t.Errorf("metal: %s %q", m.Check.Status, m.Reason)
	}
}

func TestProbeMacParavirtualGPU(t *testing.T) {
	p, f := newFakeMac(t)
	paravirtual(t, f)
	r := p.GPU(context.Background())
	if r.Check.Status != checks.Fail || r.GPU == nil || !r.GPU.Paravirtual {
		t.Fatalf("paravirtual GPU: %s %+v", r.Check.Status, r.GPU)
	}
	if !strings.Contains(r.Reason, "Apple Paravirtual device on VirtualMac2,1") || !strings.Contains(r.Check.Hint, "--backend emu") {
		t.Errorf("reason %q hint %q", r.Reason, r.Check.Hint)
	}
	// As information (backend emu), the same probe is a warning.
	for _, r := range p.Probes(context.Background(), BackendEmu, true) {
		if r.Check.ID == ProbeGPU && r.Check.Status != checks.Warn {
			t.Errorf("informational GPU probe: %s, want warn", r.Check.Status)
		}
		if r.Check.ID == ProbeTorch && r.Check.Status != checks.Skip {
			t.Errorf("torch without python3: %s, want skip", r.Check.Status)
		}
	}
}

func TestProbeMacIntelGPU(t *testing.T) {
	p, f := newFakeMac(t)
	f.replies["system_profiler SPDisplaysDataType -json"] = fakeReply{out: readFixture(t, "sp-displays-intel.json")}
	f.replies["sysctl -n hw.model"] = fakeReply{out: "MacBookPro16,2\n"}
	if r := p.GPU(context.Background()); r.Check.Status != checks.Fail || !strings.Contains(r.Reason, "not an Apple-silicon GPU") {
		t.Errorf("intel: %s %q", r.Check.Status, r.Reason)
	}
}

func TestProbeMacCrashAndHang(t *testing.T) {
	p, f := newFakeMac(t)
	p.Timeout = 100 * time.Millisecond
	f.replies["system_profiler SPDisplaysDataType -json"] = fakeReply{hang: true}
	f.replies["xcrun -sdk macosx metal --version"] = fakeReply{errOut: "Stack dump:\n0. Program arguments: metal --version\n", exit: -1}
	g := p.GPU(context.Background())
	if g.Check.Status != checks.Fail || g.Reason != "system_profiler SPDisplaysDataType -json timed out after 100ms" {
		t.Errorf("hanging system_profiler: %s %q", g.Check.Status, g.Reason)
	}
	m := p.Metal(context.Background())
	if m.Check.Status != checks.Fail || !strings.HasPrefix(m.Reason, "xcrun -sdk macosx metal --version crashed (signal: segmentation fault)") {
		t.Errorf("crashing metal: %s %q", m.Check.Status, m.Reason)
	}
}

func TestProbeMacOnLinuxSkips(t *testing.T) {
	p := testProber(t, map[string]string{"PATH": realPath()}, "os-release-debian")
	p.GOOS, p.GOARCH = "linux", "amd64"
	for _, r := range []ProbeResult{p.Xcrun(context.Background()), p.Metal(context.Background()), p.GPU(context.Background())} {
		if r.Check.Status != checks.Skip || r.Reason != "not macOS (linux/amd64)" {
			t.Errorf("%s: %s %q", r.Check.ID, r.Check.Status, r.Reason)
		}
	}
	// Required (backend metal), the same probes fail.
	for _, r := range p.Probes(context.Background(), BackendMetal, false) {
		if r.Check.ID == ProbeMetal && (r.Check.Status != checks.Fail || r.Check.Hint != "use --backend emu") {
			t.Errorf("required metal off macOS: %s %q", r.Check.Status, r.Check.Hint)
		}
	}
}

// Xcode 15 is the floor: -std=metal3.0 and C++20 <source_location>.
func TestProbeMacXcodeFloor(t *testing.T) {
	for _, tc := range []struct {
		out  string
		pass bool
	}{
		{"Xcode 14.3.1\nBuild version 14E300\n", false},
		{"Xcode 15.0\nBuild version 15A240d\n", true},
		{"Xcode 15.0 beta 4\nBuild version 15A5195m\n", true},
	} {
		p, f := newFakeMac(t)
		f.replies["xcodebuild -version"] = fakeReply{out: tc.out}
		r := p.Xcode(context.Background())
		if got := r.Check.Status == checks.Pass; got != tc.pass {
			t.Errorf("%s: %s %q", firstLine(tc.out), r.Check.Status, r.Reason)
		}
		if !tc.pass && r.Reason != "Xcode 14.3.1 is older than 15.0" {
			t.Errorf("reason %q", r.Reason)
		}
	}
}

package steps

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/orchardkit/orchard/checks"
	"github.com/orchardkit/orchard/metalkern"
)

// The Metal compile runs against a fake xcrun (testdata/fake-xcode, a test
// double: Apple's compiler cannot exist on Linux) that answers with the
// captured-format diagnostics of testdata/metal-diag. Everything else (the
// step, the diagnostics parser, the annotations) is the real code.

// fakeXcode puts the fake xcrun and xcodebuild first on PATH, answering from
// replies (a directory; "" = compile everything), and returns the file its
// calls are logged to.
func fakeXcode(t *testing.T, replies string) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("testdata", "fake-xcode"))
	if err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(t.TempDir(), "xcrun.log")
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("FAKE_XCRUN_LOG", log)
	t.Setenv("FAKE_XCRUN_REPLIES", replies)
	return log
}

// metalShaders is a shader step for the embedded runtime with the Metal
// toolchain "present", its sources materialised in a fresh build dir.
func metalShaders(t *testing.T) (*ShadersStep, *Context, string, []string) {
	t.Helper()
	cxx, err := exec.LookPath("c++")
	if err != nil {
		t.Fatal(err)
	}
	b := &Build{Source: metalkern.Embedded(), Toolchain: &ToolchainStep{Out: ToolchainInfo{CXXPath: cxx,
		MetalPath: "/Applications/Xcode.app/Contents/Developer/Toolchains/XcodeDefault.xctoolchain/usr/bin/metal"}},
		RerunFlags: []string{"--backend emu"}}
	// The step log is written from the two parallel emu compiles, as the
	// engine's log file is.
	sc := &Context{BuildDir: t.TempDir(), Backend: BackendEmu, Log: &lockedLog{}}
	root, err := b.materialize(sc.BuildDir)
	if err != nil {
		t.Fatal(err)
	}
	files, err := b.Source.KernelFiles()
	if err != nil || len(files) < 2 {
		t.Fatalf("kernel files %v: %v", files, err)
	}
	return &ShadersStep{B: b}, sc, root, files
}

// lockedLog is a step log safe for concurrent writes.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func readLines(t *testing.T, p string) []string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// On emu, a Mac with the Metal toolchain also compiles the kernels with
// xcrun metal (strict math, MSL 3.0, the deployment target) and links a
// metallib: a hosted macOS runner proves the kernels compile for Metal.
func TestShadersMetalCompileOnEmu(t *testing.T) {
	log := fakeXcode(t, "")
	s, sc, root, files := metalShaders(t)
	res, err := s.Run(context.Background(), sc)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Checks) != 1 || res.Checks[0].Status != checks.Pass {
		t.Fatalf("checks: %+v", res.Checks)
	}
	if want := filepath.Join(sc.BuildDir, "metal", "orchard.metallib"); s.Out.Metallib != want || !slices.Contains(res.Checks[0].Evidence, "metal: "+want) {
		t.Errorf("metallib %q, evidence %q", s.Out.Metallib, res.Checks[0].Evidence)
	}
	calls := readLines(t, log)
	if len(calls) != len(files)+1 {
		t.Fatalf("xcrun calls:\n%s", strings.Join(calls, "\n"))
	}
	for i, f := range files {
		want := "-sdk macosx metal -std=metal3.0 -mmacosx-version-min=13.0 -fno-fast-math -O3 -Wall -I " +
			filepath.Join(root, "include") + " -I " + filepath.Join(root, "kernels") + " -c " + filepath.Join(root, f)
		if !strings.HasPrefix(calls[i], want+" -o ") {
			t.Errorf("call %d:\n got %s\nwant %s -o …", i, calls[i], want)
		}
	}
	if !strings.HasPrefix(calls[len(files)], "-sdk macosx metallib ") {
		t.Errorf("last call: %s", calls[len(files)])
	}
	// A flag change compiles again: the flags are in the step's key.
	k, err := s.Key(sc)
	if err != nil || k.Config["metal_flags"] != strings.Join(MetalFlags, " ") {
		t.Errorf("key config %v (%v)", k.Config, err)
	}
}

// Each error of `xcrun metal` becomes a Location (file:line:col in the
// user's source, headers included) and one GitHub annotation; warnings do
// not; every file is compiled, so one run reports every failing file.
func TestShadersMetalDiagnostics(t *testing.T) {
	replies, err := filepath.Abs(filepath.Join("testdata", "metal-diag"))
	if err != nil {
		t.Fatal(err)
	}
	log := fakeXcode(t, replies)
	s, sc, root, files := metalShaders(t)
	lib, c, err := s.compileMetal(context.Background(), sc, root, files)
	if err != nil || c == nil || lib != "" {
		t.Fatalf("compileMetal: lib %q check %v err %v", lib, c, err)
	}
	want := []checks.Location{
		{File: "metalkern/runtime/kernels/attn_bwd.metal", Line: 61, Col: 23,
			Message: "cannot initialize a variable of type 'threadgroup float *' with an lvalue of type 'device float *'"},
		{File: "metalkern/runtime/kernels/softmax.h", Line: 40, Col: 27, Message: "no member named 'exp3' in namespace 'metal::fast'"},
		{File: "metalkern/runtime/kernels/attn_fwd.metal", Line: 89, Col: 5, Message: "use of undeclared identifier 'lse_out'"},
	}
	if !slices.Equal(c.Locations, want) {
		t.Errorf("locations:\n got %+v\nwant %+v", c.Locations, want)
	}
	if c.Status != checks.Fail || c.File != want[0].File || c.Line != 61 || !strings.Contains(c.Hint, "orchard rebuild --backend emu") {
		t.Errorf("check: %s %s:%d hint %q", c.Status, c.File, c.Line, c.Hint)
	}
	if !slices.Contains(c.Evidence, "    const float pr = ok ? fast::exp3(row[c] - m_new) : 0.0f;") {
		t.Errorf("evidence lacks the source line: %q", c.Evidence)
	}
	// Every file was compiled (attn_bwd's error did not stop the run), no
	// library linked.
	calls := readLines(t, log)
	if len(calls) != len(files) {
		t.Errorf("xcrun calls (want one per file, no metallib):\n%s", strings.Join(calls, "\n"))
	}

	var b strings.Builder
	if err := checks.WriteGitHubAnnotations(&b, &checks.Report{Checks: []checks.Check{*c}}, ""); err != nil {
		t.Fatal(err)
	}
	ann := regexp.MustCompile(`(?m)^::error file=([^,]+),line=(\d+),col=(\d+),title=shaders::`).FindAllStringSubmatch(b.String(), -1)
	if len(ann) != len(want) {
		t.Fatalf("annotations:\n%s", b.String())
	}
	for i, a := range ann {
		if a[1] != want[i].File || a[2] != strconv.Itoa(want[i].Line) || a[3] != strconv.Itoa(want[i].Col) {
			t.Errorf("annotation %d: %s", i, a[0])
		}
	}
}

// The Metal Toolchain vanishing after the probe (Xcode 26) is not a kernel
// error: the hint is the download.
func TestShadersMetalToolchainMissing(t *testing.T) {
	replies := t.TempDir()
	s, sc, root, files := metalShaders(t)
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(replies, filepath.Base(f)+".txt"), []byte(readFixture(t, "metal-xcode26-missing-toolchain.txt")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fakeXcode(t, replies)
	_, c, err := s.compileMetal(context.Background(), sc, root, files)
	if err != nil || c == nil {
		t.Fatalf("check %v err %v", c, err)
	}
	if c.Hint != "xcodebuild -downloadComponent MetalToolchain" || len(c.Locations) != 0 ||
		!strings.Contains(strings.Join(c.Evidence, "\n"), "cannot execute tool 'metal' due to missing Metal Toolchain") {
		t.Errorf("check: hint %q locations %v evidence %q", c.Hint, c.Locations, c.Evidence)
	}
}

// The shader step's flags are the CMake metal branch's defaults, so both
// compile the kernels alike.
func TestMetalFlagsMatchCMake(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "metalkern", "runtime", "CMakeLists.txt"))
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	def := func(name string) string {
		m := regexp.MustCompile(`set\(` + name + ` "([^"]*)" CACHE`).FindStringSubmatch(src)
		if m == nil {
			t.Fatalf("CMakeLists.txt sets no %s", name)
		}
		return m[1]
	}
	want := append([]string{"-std=" + def("ORCHARD_METAL_STD"), "-mmacosx-version-min=" + def("ORCHARD_MACOS_MIN"), "-fno-fast-math"},
		strings.Fields(def("ORCHARD_METAL_FLAGS"))...)
	if !slices.Equal(MetalFlags, want) {
		t.Errorf("steps.MetalFlags %q, CMakeLists.txt %q", MetalFlags, want)
	}
	if !strings.Contains(src, "-mmacosx-version-min=${ORCHARD_MACOS_MIN} -fno-fast-math ${ORCHARD_METAL_FLAG_LIST}") {
		t.Error("CMakeLists.txt's metal compile does not pass -fno-fast-math before the extra flags")
	}
}

// The CMake metal branch's configure-time checks (cmake/metal_toolchain.cmake)
// run for real with `cmake -P` against the fake xcrun and xcodebuild.
func TestCMakeMetalChecks(t *testing.T) {
	cmake, err := exec.LookPath("cmake")
	if err != nil {
		t.Fatal("cmake is needed (bash .ci/run installs it)")
	}
	fakes, err := filepath.Abs(filepath.Join("testdata", "fake-xcode"))
	if err != nil {
		t.Fatal(err)
	}
	module, err := filepath.Abs(filepath.Join("..", "metalkern", "runtime", "cmake", "metal_toolchain.cmake"))
	if err != nil {
		t.Fatal(err)
	}
	if ver := regexp.MustCompile(`ORCHARD_MIN_XCODE "([^"]+)"`).FindStringSubmatch(readFile(t, module)); len(ver) < 2 || ver[1] != MinXcode {
		t.Errorf("metal_toolchain.cmake's Xcode floor %v, steps.MinXcode %s", ver, MinXcode)
	}
	run := func(t *testing.T, replies map[string]string, script string) (string, bool) {
		t.Helper()
		dir := t.TempDir()
		for name, text := range replies {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		p := filepath.Join(dir, "check.cmake")
		body := "include(\"" + module + "\")\n" + strings.ReplaceAll(script, "@FAKES@", fakes) + "\n"
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(cmake, "-P", p)
		cmd.Env = append(os.Environ(), "FAKE_XCRUN_REPLIES="+dir)
		out, err := cmd.CombinedOutput()
		return string(out), err == nil
	}
	tool := `orchard_check_xcode("@FAKES@/xcodebuild")
orchard_check_metal_toolchain("@FAKES@/xcrun")
message(STATUS "xcode=${ORCHARD_XCODE_VERSION} metal=${ORCHARD_METAL_VERSION}")`
	compilers := func(cxxID, cxxVer, objcID, objcVer string) string {
		return "set(CMAKE_CXX_COMPILER /usr/bin/c++)\nset(CMAKE_CXX_COMPILER_ID " + cxxID + ")\nset(CMAKE_CXX_COMPILER_VERSION " + cxxVer + ")\n" +
			"set(CMAKE_OBJCXX_COMPILER /usr/bin/clang++)\nset(CMAKE_OBJCXX_COMPILER_ID " + objcID + ")\nset(CMAKE_OBJCXX_COMPILER_VERSION " + objcVer + ")\n" +
			"orchard_check_same_apple_clang()\nmessage(STATUS \"compilers ok\")"
	}
	for name, tc := range map[string]struct {
		replies map[string]string
		script  string
		ok      bool
		want    string
	}{
		"xcode 16.4 with metal": {nil, tool, true, "xcode=16.4 metal=32023.883"},
		"xcode 26 beta": {map[string]string{"xcodebuild-version.txt": "Xcode 26.0 beta\nBuild version 17A5241e\n"}, tool, true,
			"xcode=26.0 metal=32023.883"},
		"missing metal toolchain": {map[string]string{"xcodebuild-version.txt": readFixture(t, "xcodebuild-26.0.txt"),
			"metal--version.err": readFixture(t, "metal-xcode26-missing-toolchain.txt")}, tool, false,
			"the Metal Toolchain is missing (Xcode 26 and later download it separately). Run\n  xcodebuild -downloadComponent MetalToolchain"},
		"command line tools only": {map[string]string{"xcodebuild-version.err": readFixture(t, "xcodebuild-clt-only.txt")}, tool, false,
			"only the Command Line Tools are selected; the Metal compiler needs Xcode"},
		"xcode 14": {map[string]string{"xcodebuild-version.txt": "Xcode 14.3.1\nBuild version 14E300\n"}, tool, false,
			"Xcode 14.3.1 is older than 15.0"},
		"metal crashes": {map[string]string{"metal--version.err": "Stack dump:\n"}, tool, false,
			"`xcrun -sdk macosx metal --version` failed (1): Stack dump:"},
		"one apple clang":     {nil, compilers("AppleClang", "16.0.0.16000026", "AppleClang", "16.0.0.16000026"), true, "compilers ok"},
		"homebrew g++ as cxx": {nil, compilers("GNU", "14.2.0", "AppleClang", "16.0.0.16000026"), false, "the CXX compiler /usr/bin/c++ is GNU 14.2.0"},
		"two apple clangs": {nil, compilers("AppleClang", "16.0.0.16000026", "AppleClang", "15.0.0.15000309"), false,
			"and the Objective-C++ compiler (/usr/bin/clang++, AppleClang 15.0.0.15000309) differ"},
	} {
		t.Run(name, func(t *testing.T) {
			out, ok := run(t, tc.replies, tc.script)
			if ok != tc.ok || !strings.Contains(strings.Join(strings.Fields(out), " "), strings.Join(strings.Fields(tc.want), " ")) {
				t.Errorf("ok %v (want %v), output lacks %q:\n%s", ok, tc.ok, tc.want, out)
			}
			if !tc.ok && !strings.Contains(out, "CMake Error") {
				t.Errorf("not a CMake error:\n%s", out)
			}
		})
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

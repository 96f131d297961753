package steps

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestVersionAtLeast(t *testing.T) {
	tests := []struct {
		found, min string
		want       bool
	}{
		{"3.25.1", "3.20", true},
		{"3.20", "3.20", true},
		{"3.20.0", "3.20", true},
		{"3.29.0-rc1", "3.20", true}, // a release candidate counts as its release
		{"cmake version 3.29.0-rc1", "3.20", true},
		{"3.19.8", "3.20", false},
		{"3.9.6", "3.20", false}, // numeric, not lexical
		{"4.0.0", "3.20", true},
		{"Apple metal version 32023.883", "32023", true},
		{"Apple metal version 32023.883", "32024", false},
		{"26.0 beta", "14.0", true}, // Xcode betas are not rejected
		{"26.0 Beta 3", "26.0", true},
		{"13.4.1", "14.0", false},
		{"2.1.0+cpu", "2.1", true},
		{"2.0.1", "2.1", false},
		{"2.6.0.dev20241001", "2.1", true},
	}
	for _, tt := range tests {
		got, err := VersionAtLeast(tt.found, tt.min)
		if err != nil {
			t.Errorf("VersionAtLeast(%q, %q): %v", tt.found, tt.min, err)
			continue
		}
		if got != tt.want {
			t.Errorf("VersionAtLeast(%q, %q) = %v, want %v", tt.found, tt.min, got, tt.want)
		}
	}
	if _, err := VersionAtLeast("no digits here", "3.20"); err == nil {
		t.Error("VersionAtLeast on text without a version: want an error")
	}
}

func TestParseToolVersionKeepsPrerelease(t *testing.T) {
	for in, want := range map[string]string{
		"3.29.0-rc1": "3.29.0-rc1",
		"26.0 beta":  "26.0.0-beta",
		"2.1.0+cpu":  "2.1.0+cpu",
		"32023.883":  "32023.883.0",
	} {
		v, err := ParseToolVersion(in)
		if err != nil {
			t.Fatalf("ParseToolVersion(%q): %v", in, err)
		}
		if v.String() != want {
			t.Errorf("ParseToolVersion(%q) = %s, want %s", in, v, want)
		}
	}
}

func readFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "probe", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestProbeParseCMake(t *testing.T) {
	for file, want := range map[string]string{
		"cmake-3.25.1.txt":     "3.25.1",
		"cmake-3.29.0-rc1.txt": "3.29.0-rc1",
		"cmake-3.19.8.txt":     "3.19.8",
	} {
		got, err := ParseCMakeVersion(readFixture(t, file))
		if err != nil || got != want {
			t.Errorf("%s: got %q, %v; want %q", file, got, err, want)
		}
	}
	if _, err := ParseCMakeVersion("bash: cmake: command not found"); err == nil {
		t.Error("garbage: want an error")
	}
}

func TestProbeParseCompiler(t *testing.T) {
	for file, want := range map[string][2]string{
		"gxx-12-debian.txt":   {"g++ (Debian 12.2.0-14+deb12u1) 12.2.0", "12.2.0"},
		"gxx-14-fedora.txt":   {"g++ (GCC) 14.2.1 20240912 (Red Hat 14.2.1-3)", "14.2.1"},
		"clang-16-debian.txt": {"Debian clang version 16.0.6 (15~deb12u1)", "16.0.6"},
		"apple-clang-16.txt":  {"Apple clang version 16.0.0 (clang-1600.0.26.6)", "16.0.0"},
	} {
		line, ver := ParseCompilerVersion(readFixture(t, file))
		if line != want[0] || ver != want[1] {
			t.Errorf("%s: got (%q, %q), want (%q, %q)", file, line, ver, want[0], want[1])
		}
	}
}

func TestProbeParseMetal(t *testing.T) {
	v, err := ParseMetalVersion(readFixture(t, "metal-32023.883.txt"))
	if err != nil || v != "32023.883" {
		t.Errorf("metal: %q, %v", v, err)
	}
	v, err = ParseMetallibVersion(readFixture(t, "metallib-32023.883.txt"))
	if err != nil || v != "32023.883" {
		t.Errorf("metallib: %q, %v", v, err)
	}
	missing := readFixture(t, "metal-xcode26-missing-toolchain.txt")
	if !missingMetalToolchain(missing) {
		t.Error("the Xcode 26 missing-toolchain text is not recognised")
	}
	if _, err := ParseMetalVersion(missing); err == nil {
		t.Error("missing toolchain parsed as a version")
	}
	if !notADeveloperTool(readFixture(t, "metal-clt-only.txt")) || !notADeveloperTool(readFixture(t, "xcodebuild-clt-only.txt")) {
		t.Error("the Command-Line-Tools-only texts are not recognised")
	}
}

func TestProbeParseXcode(t *testing.T) {
	for in, want := range map[string]string{
		readFixture(t, "xcodebuild-16.4.txt"):     "16.4",
		readFixture(t, "xcodebuild-26.0.txt"):     "26.0",
		"Xcode 26.0 beta\nBuild version 17A5241e": "26.0 beta",
	} {
		got, err := ParseXcodeVersion(in)
		if err != nil || got != want {
			t.Errorf("ParseXcodeVersion(%q) = %q, %v; want %q", in, got, err, want)
		}
		if ok, err := VersionAtLeast(got, MinXcode); err != nil || !ok {
			t.Errorf("Xcode %q should satisfy >= %s (%v)", got, MinXcode, err)
		}
	}
}

func TestProbeParseDisplays(t *testing.T) {
	tests := []struct {
		file, hw    string
		want        GPUInfo
		paravirtual bool
		str         string
	}{
		{"sp-displays-m3pro.json", "Mac15,6",
			GPUInfo{Model: "Apple M3 Pro", Cores: "18", MetalFamily: "spdisplays_metal3"}, false,
			"Apple M3 Pro (18 cores, Metal 3) on Mac15,6"},
		{"sp-displays-paravirtual.json", "VirtualMac2,1",
			GPUInfo{Model: "Apple Paravirtual device", MetalFamily: "spdisplays_metal3"}, true,
			"Apple Paravirtual device (Metal 3) on VirtualMac2,1"},
		{"sp-displays-intel.json", "MacBookPro16,2",
			GPUInfo{Model: "Intel Iris Plus Graphics 645", MetalFamily: "spdisplays_metal3"}, false,
			"Intel Iris Plus Graphics 645 (Metal 3) on MacBookPro16,2"},
	}
	for _, tt := range tests {
		gpus, err := ParseDisplays([]byte(readFixture(t, tt.file)))
		if err != nil || len(gpus) != 1 {
			t.Fatalf("%s: %v, %d gpus", tt.file, err, len(gpus))
		}
		if !reflect.DeepEqual(gpus[0], tt.want) {
			t.Errorf("%s: got %+v, want %+v", tt.file, gpus[0], tt.want)
		}
		g := gpus[0]
		g.HWModel = tt.hw
		if got := IsParavirtual(g.Model, g.HWModel); got != tt.paravirtual {
			t.Errorf("%s: paravirtual = %v", tt.file, got)
		}
		if g.String() != tt.str {
			t.Errorf("%s: String() = %q, want %q", tt.file, g.String(), tt.str)
		}
	}
	// A VirtualMac hardware model alone marks a VM, whatever the chipset says.
	if !IsParavirtual("Apple M1 (Virtual)", "VirtualMac2,1") {
		t.Error("hw.model VirtualMac2,1 not recognised as a VM")
	}
	if _, err := ParseDisplays([]byte("not json")); err == nil {
		t.Error("garbage system_profiler output: want an error")
	}
}

func TestProbeParseOSRelease(t *testing.T) {
	d := ParseOSRelease(readFixture(t, "os-release-ubuntu"))
	if d.ID != "ubuntu" || !reflect.DeepEqual(d.Like, []string{"debian"}) || d.Pretty != "Ubuntu 24.04.1 LTS" {
		t.Errorf("ubuntu: %+v", d)
	}
}

func TestProbeParseTorch(t *testing.T) {
	ti, err := ParseTorchProbe("torch 2.4.1\nmps_built True\nmps_available True\n")
	if err != nil || ti.Version != "2.4.1" || !ti.MPSAvailable || !ti.MPSBuilt {
		t.Errorf("torch: %+v %v", ti, err)
	}
	ti, err = ParseTorchProbe("missing No module named 'torch'\n")
	if err != nil || ti.Missing != "No module named 'torch'" {
		t.Errorf("missing: %+v %v", ti, err)
	}
	if _, err := ParseTorchProbe("Traceback (most recent call last):\n"); err == nil {
		t.Error("traceback: want an error")
	}
}

// Found by FuzzToolVersion: a malformed pre-release part made the whole
// version unreadable, and a huge output line made a huge error.
func TestParseToolVersionMalformedSuffixAndLongLines(t *testing.T) {
	for in, want := range map[string]string{
		"cmake version 3.25.1-rc1..x": "3.25.1",
		"cmake version 3.25.1-x+y+z":  "3.25.1",
	} {
		v, err := ParseToolVersion(in)
		if err != nil || v.String() != want {
			t.Errorf("ParseToolVersion(%q) = %v, %v; want %s", in, v, err, want)
		}
	}
	long := "cmake: " + strings.Repeat("x", 100000)
	if _, err := ParseCMakeVersion(long); err == nil || len(err.Error()) > 120 {
		t.Errorf("a 100 kB line: want a short error, got %.120v", err)
	}
	if _, err := ParseToolVersion("version 99999999999999999999.1"); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("an int64-overflowing version: %v", err)
	}
}

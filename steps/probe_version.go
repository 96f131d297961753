package steps

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	version "github.com/hashicorp/go-version"
)

// Minimum versions: one table, shown in evidence as "required: >= X".
const (
	// MinCMake is the oldest CMake orchard supports (keep it equal to
	// metalkern's cmake_minimum_required).
	MinCMake = "3.20"
	// MinXcode: the kernels are compiled with -std=metal3.0 and the host
	// with C++20 <source_location>; Apple clang has both from Xcode 15.
	MinXcode = "15.0"
	// MinTorch: the oldest PyTorch orchard_ops supports (MinTorchOps, the
	// CPU path); MinTorchMPS: the oldest whose MPS the op library can encode
	// on (MPSStream::commandEncoder, torch 2.0).
	MinTorch    = MinTorchOps
	MinTorchMPS = "2.0"
)

var (
	// A tool version: dotted numbers with an optional attached pre-release
	// or build part ("3.29.0-rc1", "2.1.0+cpu") and an optional detached
	// pre-release word ("26.0 beta", "26.1 Beta 2").
	versionRE  = regexp.MustCompile(`(\d+(?:\.\d+)*)((?:[-+~][0-9A-Za-z.+~-]*)?)(?:\s+((?i:alpha|beta|rc))\s*(\d*))?`)
	cmakeRE    = regexp.MustCompile(`cmake3? version (\S+)`)
	metalRE    = regexp.MustCompile(`(?i)metal version (\d+(?:\.\d+)*)`)
	airLLDRE   = regexp.MustCompile(`AIR-LLD (\d+(?:\.\d+)*)`)
	xcodeRE    = regexp.MustCompile(`Xcode (\d+(?:\.\d+)*(?:\s+(?i:beta|rc)(?:\s*\d+)?)?)`)
	gccStyleRE = regexp.MustCompile(`\)\s+(\d+\.\d+(?:\.\d+)?)`)
	verWordRE  = regexp.MustCompile(`version (\d+\.\d+(?:\.\d+)?)`)
	pythonRE   = regexp.MustCompile(`Python (\d+\.\d+(?:\.\d+)?\S*)`)
)

// ParseToolVersion extracts the first version in s ("cmake version
// 3.29.0-rc1" → 3.29.0-rc1, "26.0 beta" → 26.0-beta). A pre-release or
// build part that is not a valid one ("3.25.1-rc1..x") is dropped: the
// dotted numbers are the version.
func ParseToolVersion(s string) (*version.Version, error) {
	m := versionRE.FindStringSubmatch(s)
	if m == nil {
		return nil, fmt.Errorf("no version number in %s", quoteLine(s))
	}
	v := m[1] + strings.TrimRight(m[2], ".+~-")
	if m[3] != "" && m[2] == "" {
		v += "-" + strings.ToLower(m[3]) + m[4]
	}
	if ver, err := version.NewVersion(v); err == nil {
		return ver, nil
	}
	if ver, err := version.NewVersion(m[1]); err == nil {
		return ver, nil
	}
	// Only a number too large for go-version's int64 segments gets here.
	return nil, fmt.Errorf("version number out of range in %s", quoteLine(s))
}

// quoteLine quotes s's first line for an error message, shortened to 60
// bytes: a tool that prints one huge line must not make a huge checklist item.
func quoteLine(s string) string {
	const max = 60
	l := firstLine(s)
	if len(l) > max {
		i := max
		for i > 0 && !utf8.RuneStart(l[i]) {
			i--
		}
		l = l[:i] + "…"
	}
	return strconv.Quote(l)
}

// VersionAtLeast reports whether the version found in s satisfies ">= min",
// comparing cores only: a tool's pre-release or beta ("3.29.0-rc1", Xcode
// "26.0 beta") counts as its release.
func VersionAtLeast(s, min string) (bool, error) {
	v, err := ParseToolVersion(s)
	if err != nil {
		return false, err
	}
	c, err := version.NewConstraint(">= " + min)
	if err != nil {
		return false, err
	}
	return c.Check(v.Core()), nil
}

// ParseCMakeVersion reads `cmake --version` ("cmake version 3.25.1").
func ParseCMakeVersion(out string) (string, error) {
	m := cmakeRE.FindStringSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("unexpected cmake --version output %s", quoteLine(out))
	}
	return m[1], nil
}

// ParseCompilerVersion reads the first line of `c++ --version` for gcc
// ("g++ (Debian 12.2.0-14) 12.2.0") and clang ("Apple clang version 15.0.0
// (clang-1500.3.9.4)", "Debian clang version 16.0.6 (15~deb12u1)").
func ParseCompilerVersion(out string) (line, ver string) {
	line = firstLine(out)
	if m := verWordRE.FindStringSubmatch(line); m != nil {
		return line, m[1]
	}
	if m := gccStyleRE.FindStringSubmatch(line); m != nil {
		return line, m[1]
	}
	if v, err := ParseToolVersion(line); err == nil {
		return line, v.Original()
	}
	return line, ""
}

// missingMetalToolchain reports Xcode 26's "cannot execute tool 'metal' due
// to missing Metal Toolchain" error.
func missingMetalToolchain(out string) bool {
	return strings.Contains(out, "missing Metal Toolchain")
}

// notADeveloperTool reports xcrun's answer when only the Command Line Tools
// are selected: `unable to find utility "metal", not a developer tool or in PATH`.
func notADeveloperTool(out string) bool {
	return strings.Contains(out, "unable to find utility") || strings.Contains(out, "requires Xcode")
}

// ParseMetalVersion reads `xcrun -sdk macosx metal --version` ("Apple metal
// version 32023.883 (metalfe-32023.883)").
func ParseMetalVersion(out string) (string, error) {
	if missingMetalToolchain(out) {
		return "", fmt.Errorf("missing Metal Toolchain")
	}
	m := metalRE.FindStringSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("unexpected metal --version output %s", quoteLine(out))
	}
	return m[1], nil
}

// ParseMetallibVersion reads `xcrun -sdk macosx metallib --version`
// ("AIR-LLD 32023.883 (metalfe-32023.883) …", or "… version N").
func ParseMetallibVersion(out string) (string, error) {
	if missingMetalToolchain(out) {
		return "", fmt.Errorf("missing Metal Toolchain")
	}
	if m := airLLDRE.FindStringSubmatch(out); m != nil {
		return m[1], nil
	}
	if m := metalRE.FindStringSubmatch(out); m != nil {
		return m[1], nil
	}
	if m := verWordRE.FindStringSubmatch(out); m != nil {
		return m[1], nil
	}
	return "", fmt.Errorf("unexpected metallib --version output %s", quoteLine(out))
}

// ParseXcodeVersion reads `xcodebuild -version` ("Xcode 26.0\nBuild version
// 17A324", "Xcode 26.0 beta").
func ParseXcodeVersion(out string) (string, error) {
	m := xcodeRE.FindStringSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("unexpected xcodebuild -version output %s", quoteLine(out))
	}
	return m[1], nil
}

// ParsePythonVersion reads `python3 --version` ("Python 3.11.7").
func ParsePythonVersion(out string) (string, error) {
	m := pythonRE.FindStringSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("unexpected python3 --version output %s", quoteLine(out))
	}
	return m[1], nil
}

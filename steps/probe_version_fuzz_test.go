package steps

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	version "github.com/hashicorp/go-version"
)

// maxParseErrorLen bounds a parse error: the messages quote the tool's
// output for people, so a tool printing one huge line must not produce a
// huge checklist item.
const maxParseErrorLen = 300

// firstNumbersRE is the dotted numbers ParseToolVersion starts from.
var firstNumbersRE = regexp.MustCompile(`\d+(?:\.\d+)*`)

// FuzzToolVersion feeds arbitrary tool output to every version parser the
// probes use. Seeds: testdata/fuzz/FuzzToolVersion (real --version outputs
// and edge cases). Run: go test -run '^$' -fuzz FuzzToolVersion -fuzztime 10s ./steps/
func FuzzToolVersion(f *testing.F) {
	for _, s := range []string{"cmake version 3.25.1\n", "g++ (Debian 12.2.0-14) 12.2.0", "Xcode 26.0 beta\n", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkParseError := func(name string, err error) {
			if err != nil && len(err.Error()) > maxParseErrorLen {
				t.Errorf("%s: error of %d bytes: %.80q…", name, len(err.Error()), err.Error())
			}
			if err != nil && !utf8.ValidString(err.Error()) {
				t.Errorf("%s: error is not valid UTF-8: %q", name, err.Error())
			}
		}

		// ParseToolVersion finds a version whenever s has dotted numbers
		// that fit go-version's int64 segments; what it finds re-parses to
		// itself, and VersionAtLeast agrees with it.
		v, err := ParseToolVersion(s)
		checkParseError("ParseToolVersion", err)
		if err == nil {
			if v == nil {
				t.Fatalf("ParseToolVersion(%q): nil version, nil error", s)
			}
			back, err := version.NewVersion(v.String())
			if err != nil || !back.Equal(v) {
				t.Errorf("ParseToolVersion(%q) = %s, which re-parses as %v, %v", s, v, back, err)
			}
		} else if m := firstNumbersRE.FindString(s); m != "" && segmentsFit(m) {
			t.Errorf("ParseToolVersion(%q): %v, but %q is a version", s, err, m)
		}
		ok, aerr := VersionAtLeast(s, "0")
		if (aerr == nil) != (err == nil) || (aerr == nil && !ok) {
			t.Errorf("VersionAtLeast(%q, 0) = %v, %v; ParseToolVersion: %v", s, ok, aerr, err)
		}

		// A found cmake version is a word of the output.
		if cv, err := ParseCMakeVersion(s); err == nil {
			if cv == "" || strings.ContainsAny(cv, " \t\r\n") || !strings.Contains(s, cv) {
				t.Errorf("ParseCMakeVersion(%q) = %q", s, cv)
			}
		} else {
			checkParseError("ParseCMakeVersion", err)
		}

		// The compiler's line is the output's first line; a version found
		// in it is one the version checks accept.
		line, ver := ParseCompilerVersion(s)
		if line != firstLine(s) {
			t.Errorf("ParseCompilerVersion(%q): line %q, want %q", s, line, firstLine(s))
		}
		if ver != "" && segmentsFit(ver) {
			if _, err := ParseToolVersion(ver); err != nil {
				t.Errorf("ParseCompilerVersion(%q): version %q does not parse: %v", s, ver, err)
			}
		}

		// The Apple tools' parsers return a part of the output, or an error.
		for name, parse := range map[string]func(string) (string, error){
			"ParseMetalVersion":    ParseMetalVersion,
			"ParseMetallibVersion": ParseMetallibVersion,
			"ParseXcodeVersion":    ParseXcodeVersion,
			"ParsePythonVersion":   ParsePythonVersion,
		} {
			got, err := parse(s)
			checkParseError(name, err)
			if err == nil && (got == "" || !strings.Contains(s, got)) {
				t.Errorf("%s(%q) = %q, not a part of the output", name, s, got)
			}
			if err == nil && name == "ParseXcodeVersion" && segmentsFit(got) {
				if _, err := ParseToolVersion(got); err != nil {
					t.Errorf("ParseXcodeVersion(%q) = %q, which the version check rejects: %v", s, got, err)
				}
			}
		}
	})
}

// segmentsFit reports whether every number in s fits an int64 (go-version's
// segment type).
func segmentsFit(s string) bool {
	for _, n := range regexp.MustCompile(`\d+`).FindAllString(s, -1) {
		if len(strings.TrimLeft(n, "0")) > 18 {
			return false
		}
	}
	return true
}

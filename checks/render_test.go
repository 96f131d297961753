package checks

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
)

// The JUnit XML must parse back, with counts that match the checks and text
// that survives escaping intact.
func TestJUnitParsesBack(t *testing.T) {
	r := sampleReport()
	var b bytes.Buffer
	if err := WriteJUnit(&b, r); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Tests  int `xml:"tests,attr"`
		Suites []struct {
			Name     string `xml:"name,attr"`
			Tests    int    `xml:"tests,attr"`
			Failures int    `xml:"failures,attr"`
			Skipped  int    `xml:"skipped,attr"`
			Cases    []struct {
				Classname string `xml:"classname,attr"`
				Name      string `xml:"name,attr"`
				Line      int    `xml:"line,attr"`
				Failure   *struct {
					Message string `xml:"message,attr"`
					Body    string `xml:",chardata"`
				} `xml:"failure"`
				Skipped *struct {
					Message string `xml:"message,attr"`
				} `xml:"skipped"`
				SystemOut string   `xml:"system-out"`
				Time      *float64 `xml:"time,attr"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatalf("JUnit does not parse: %v\n%s", err, b.String())
	}
	if len(doc.Suites) != 1 || doc.Suites[0].Name != "orchard" {
		t.Fatalf("want one suite named orchard, got %+v", doc.Suites)
	}
	s := doc.Suites[0]
	var fails, skips int
	for _, c := range s.Cases {
		if c.Failure != nil {
			fails++
		}
		if c.Skipped != nil {
			skips++
		}
		if c.Time == nil {
			t.Errorf("testcase %s has no time", c.Name)
		}
		if c.Classname != "orchard.verify" {
			t.Errorf("classname = %q", c.Classname)
		}
	}
	if s.Tests != len(r.Checks) || len(s.Cases) != len(r.Checks) || doc.Tests != len(r.Checks) {
		t.Errorf("tests = %d (suites %d), cases = %d, want %d", s.Tests, doc.Tests, len(s.Cases), len(r.Checks))
	}
	if s.Failures != 2 || fails != 2 || s.Skipped != 1 || skips != 1 {
		t.Errorf("failures %d/%d, skipped %d/%d; want 2 and 1", s.Failures, fails, s.Skipped, skips)
	}
	byName := map[string]int{}
	for i, c := range s.Cases {
		byName[c.Name] = i
	}
	fwd := s.Cases[byName["forward"]]
	if fwd.Failure == nil || !strings.Contains(fwd.Failure.Body, r.Checks[3].Hint) {
		t.Errorf("forward's failure body lacks the hint verbatim: %+v", fwd.Failure)
	}
	if *fwd.Time != 30.75 || *s.Cases[byName["shaders.compile"]].Time != 1.234 || *s.Cases[byName["docs.json"]].Time != 0 {
		t.Errorf("times: forward %v, shaders.compile %v, docs.json %v (want the step's duration shared among its checks)",
			*fwd.Time, *s.Cases[byName["shaders.compile"]].Time, *s.Cases[byName["docs.json"]].Time)
	}
	if fwd.Failure.Message != "N=99 D=35: rel err 3.1e-2 > tol 2e-5" {
		t.Errorf("failure message = %q", fwd.Failure.Message)
	}
	cc := s.Cases[byName["shaders.compile"]]
	if cc.Line != 42 || !strings.Contains(cc.Failure.Body, "    float m = simd_max(x);\n") {
		t.Errorf("compile case: line %d, body %q", cc.Line, cc.Failure.Body)
	}
	warn := s.Cases[byName["backward"]]
	if warn.Failure != nil || !strings.Contains(warn.SystemOut, "accumulate dQ & dK in fp32") ||
		!strings.HasPrefix(warn.SystemOut, "warning: Backward pass <&> tolerance\n") {
		t.Errorf("a warning passes, with its fix in system-out: %+v", warn)
	}
	skip := s.Cases[byName["metal.device"]]
	if skip.Skipped == nil || skip.Skipped.Message != "paravirtual device: simdgroup_matrix unsupported" {
		t.Errorf("skip reason: %+v", skip.Skipped)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	r := sampleReport()
	var b bytes.Buffer
	if err := WriteJSON(&b, r); err != nil {
		t.Fatal(err)
	}
	if r.OK || r.Checks[6].Evidence != nil {
		t.Error("WriteJSON modified its argument")
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	want := sampleReport()
	want.Finish()
	if !reflect.DeepEqual(&back, want) {
		t.Errorf("round trip differs:\n got %+v\nwant %+v", back, *want)
	}
	if back.OK {
		t.Error(`"ok" is true with failed checks`)
	}
	if strings.Contains(b.String(), "null") {
		t.Errorf("JSON has null:\n%s", b.String())
	}
	if !strings.Contains(b.String(), `"title": "Backward pass <&> tolerance"`) {
		t.Error("<&> should be written as is, not \\u003c-escaped")
	}
}

func TestJSONEmptyAndFieldNames(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, &Report{Command: "doctor", Checks: []Check{{ID: "x", Status: Pass}}}); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if got := sortedKeys(m); got != "backend,build_dir,checks,command,ok,steps" {
		t.Errorf("report keys = %s", got)
	}
	if steps, ok := m["steps"].([]any); !ok || len(steps) != 0 {
		t.Errorf(`"steps" = %#v, want []`, m["steps"])
	}
	c := m["checks"].([]any)[0].(map[string]any)
	if got := sortedKeys(c); got != "evidence,hint,id,status,title" {
		t.Errorf("check keys = %s (file/line must be omitted when unset)", got)
	}
	if ev, ok := c["evidence"].([]any); !ok || len(ev) != 0 {
		t.Errorf(`"evidence" = %#v, want []`, c["evidence"])
	}
	if m["ok"] != true {
		t.Errorf(`"ok" = %v for an all-pass report`, m["ok"])
	}
}

func sortedKeys(m map[string]any) string {
	return strings.Join(slices.Sorted(maps.Keys(m)), ",")
}

func TestTerminalColour(t *testing.T) {
	r := sampleReport()
	// Evidence captured from a coloured compiler must not leak its escapes.
	r.Checks[2].Evidence = append(r.Checks[2].Evidence, "\x1b[1;31merror:\x1b[0m bold \x1b]8;;http://x\x07link\x1b]8;;\x07")
	r.Checks[2].Title += "\x1b[2J"
	r.Checks[3].Hint += "\x1b[0m"
	render := func(p termenv.Profile) string {
		var b bytes.Buffer
		re := lipgloss.NewRenderer(&b)
		re.SetColorProfile(p)
		re.SetHasDarkBackground(true)
		if err := RenderTerminal(&b, r, TermOptions{Renderer: re}); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	on, off := render(termenv.ANSI), render(termenv.Ascii)
	if !strings.Contains(on, "\x1b[") {
		t.Errorf("colour on has no escape sequences:\n%s", on)
	}
	for _, want := range []string{"\x1b[32m[✓]", "\x1b[31m[✗]", "\x1b[33m[!]"} {
		if !strings.Contains(on, want) {
			t.Errorf("colour on lacks %q", want)
		}
	}
	if strings.Contains(off, "\x1b") {
		t.Errorf("colour off has escapes:\n%q", off)
	}
	if !strings.Contains(off, "    • error: bold link\n") {
		t.Errorf("the escapes in evidence were not stripped:\n%s", off)
	}
	var nilRe bytes.Buffer
	if err := RenderTerminal(&nilRe, r, TermOptions{}); err != nil {
		t.Fatal(err)
	}
	if nilRe.String() != off {
		t.Error("a nil Renderer should render the same plain text as termenv.Ascii")
	}
	// Colour changes only the escapes, never the text.
	if stripped := clean(on); stripped != off {
		t.Errorf("colour on differs from colour off beyond escapes:\n%s\nvs\n%s", stripped, off)
	}
}

func TestSummaryLine(t *testing.T) {
	mk := func(ss ...Status) *Report {
		r := &Report{Backend: "emu", BuildDir: "/x"}
		for _, s := range ss {
			r.Checks = append(r.Checks, Check{ID: "c", Status: s})
		}
		return r
	}
	tests := map[string]struct {
		r    *Report
		want string
	}{
		"all pass": {mk(Pass, Pass, Pass, Pass, Pass, Pass, Pass), "All 7 checks passed (backend emu, build dir /x)"},
		"one":      {mk(Pass), "1 check passed (backend emu, build dir /x)"},
		"failures": {mk(Fail, Fail, Warn, Pass, Pass, Pass, Pass), "2 of 7 checks failed, 1 warning (backend emu, build dir /x)"},
		"warnings": {mk(Warn, Warn, Skip, Pass), "1 of 4 checks passed, 2 warnings, 1 skipped (backend emu, build dir /x)"},
		"none":     {&Report{}, "No checks ran"},
		"step only": {&Report{Steps: []StepSummary{{Name: "build", Status: Fail}}},
			"No checks ran, 1 step failed"},
	}
	for name, tt := range tests {
		var b bytes.Buffer
		if err := RenderTerminal(&b, tt.r, TermOptions{}); err != nil {
			t.Fatal(err)
		}
		out := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
		if got := out[len(out)-1]; got != tt.want {
			t.Errorf("%s: summary %q, want %q", name, got, tt.want)
		}
	}
}

func TestClean(t *testing.T) {
	tests := map[string]string{
		"plain ✓ text\tok\n":                "plain ✓ text\tok\n",
		"\x1b[1;31mred\x1b[0m":              "red",
		"\x1b]0;title\x07after":             "after",
		"\x1b]8;;u\x1b\\link\x1b]8;;\x1b\\": "link",
		"bell\x07 nul\x00 c1\u009b":         "bell nul c1",
		"bad \xff utf8":                     "bad \uFFFD utf8",
		"keep \uFFFD":                       "keep \uFFFD",
		"trailing esc\x1b":                  "trailing esc",
	}
	for in, want := range tests {
		if got := clean(in); got != want {
			t.Errorf("clean(%q) = %q, want %q", in, got, want)
		}
	}
}

// The example in docs/json.md must be exactly what WriteJSON writes for it,
// with no field the model lacks: the documentation cannot drift.
func TestDocsJSONExample(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "json.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```json\n")
	example, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/json.md has no ```json example")
	}
	dec := json.NewDecoder(strings.NewReader(example))
	dec.DisallowUnknownFields()
	var r Report
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("the example does not match the model: %v", err)
	}
	var b bytes.Buffer
	if err := WriteJSON(&b, &r); err != nil {
		t.Fatal(err)
	}
	if b.String() != example {
		t.Errorf("the example is not what WriteJSON writes:\n%s", lineDiff(example, b.String()))
	}
	seen := map[Status]bool{}
	for _, c := range r.Checks {
		seen[c.Status] = true
	}
	// A failing verify: checks that passed, failed, and did not run.
	for _, st := range []Status{Pass, Fail, Skip} {
		if !seen[st] {
			t.Errorf("the example should show a %s check, has %v", st, seen)
		}
	}
}

// Piped (no width), nothing is cut; on a terminal, long evidence and long
// trailers wrap under their item, indented, and every word is still there.
func TestTerminalNeverCuts(t *testing.T) {
	long := "44 cases; worst f32 3.1e-07 (f32-causal-b2h3-130x70-d64), f16 9.8e-04 (f16-full-b1h1-257x129-d128); " +
		"compiler /usr/lib/llvm-16/bin/clang++ 16.0.6; runtime limits: max threadgroup memory 32768 bytes, max threads 1024"
	r := &Report{Checks: []Check{
		{ID: "forward", Title: "Forward", Status: Pass, Evidence: []string{long}},
		{ID: "backward", Title: "Backward", Status: Fail, Evidence: []string{long, "    float m = simd_max(x);"}, Hint: long},
	}}
	var piped bytes.Buffer
	if err := RenderTerminal(&piped, r, TermOptions{}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(piped.String(), "…") || strings.Count(piped.String(), long) != 3 {
		t.Fatalf("piped output was cut:\n%s", piped.String())
	}

	var term bytes.Buffer
	if err := RenderTerminal(&term, r, TermOptions{Width: 60}); err != nil {
		t.Fatal(err)
	}
	out := term.String()
	if strings.Contains(out, "…") {
		t.Fatalf("terminal output was cut:\n%s", out)
	}
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if w := lipgloss.Width(l); w > 60 {
			t.Errorf("line of %d cells at width 60: %q", w, l)
		}
	}
	if strings.Count(strings.Join(strings.Fields(out), " "), strings.Join(strings.Fields(long), " ")) != 3 {
		t.Errorf("words lost in wrapping:\n%s", out)
	}
	if !strings.Contains(out, "\n      runtime") && !strings.Contains(out, "\n      compiler") && !strings.Contains(out, "\n      max") {
		t.Errorf("continuation lines are not indented under their item:\n%s", out)
	}
	if !strings.Contains(out, "    •     float m = simd_max(x);\n") {
		t.Errorf("a source excerpt lost its indentation:\n%s", out)
	}
}

// A passing item with many evidence items: piped, every item is on its line;
// on a terminal, the first few and a count.
func TestPipedTrailerKeepsEveryItem(t *testing.T) {
	r := &Report{Checks: []Check{{ID: "kernel-calls-logged", Title: "kernel calls logged", Status: Pass,
		Evidence: []string{"FWD lines: 44", "BWD lines: 132", "run r1: 176 lines", "0 lines of other runs ignored", "log: /b/logs/k.log"}}}}
	var piped bytes.Buffer
	if err := RenderTerminal(&piped, r, TermOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, e := range r.Checks[0].Evidence {
		if !strings.Contains(piped.String(), e) {
			t.Errorf("piped output lost %q:\n%s", e, piped.String())
		}
	}
	if strings.Contains(piped.String(), "more;") {
		t.Errorf("piped output counts items away:\n%s", piped.String())
	}
	var term bytes.Buffer
	if err := RenderTerminal(&term, r, TermOptions{Width: 200}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(term.String(), "(2 more; -v shows them)") {
		t.Errorf("terminal output should show three items and count two:\n%s", term.String())
	}
}

func TestWrapKeepsEverything(t *testing.T) {
	for _, tt := range []struct {
		in    string
		width int
	}{
		{"a b c", 0}, {"short", 10}, {"aaaaaaaaaaaaaaaaaaaaaaaaa b", 7}, {"one two three four five six", 9}, {"  lead two three", 8},
	} {
		parts := wrap(tt.in, tt.width)
		if strings.Join(strings.Fields(strings.Join(parts, " ")), "") != strings.Join(strings.Fields(tt.in), "") {
			t.Errorf("wrap(%q, %d) = %q lost text", tt.in, tt.width, parts)
		}
		for _, p := range parts {
			if tt.width > 0 && lipgloss.Width(p) > tt.width {
				t.Errorf("wrap(%q, %d): part %q too wide", tt.in, tt.width, p)
			}
		}
	}
}

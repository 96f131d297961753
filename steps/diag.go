package steps

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/orchardkit/orchard/checks"
)

// Diagnostic is one compiler message pointing into a source file.
type Diagnostic struct {
	File     string
	Line     int
	Col      int
	Severity string // "error", "warning", "fatal error", "note"
	Message  string
	// Context holds the lines the compiler printed after it (source, caret).
	Context []string
}

func (d Diagnostic) String() string {
	loc := d.File + ":" + strconv.Itoa(d.Line)
	if d.Col > 0 {
		loc += ":" + strconv.Itoa(d.Col)
	}
	return loc + ": " + d.Severity + ": " + d.Message
}

// clang/gcc style: path:line:col: severity: message (col optional).
var diagRE = regexp.MustCompile(`^(.+?):(\d+):(?:(\d+):)? (error|warning|fatal error|note): (.*)$`)

// ParseDiagnostics extracts compiler diagnostics (gcc, clang and Apple's
// metal compiler share the format). Lines following a diagnostic that are
// not diagnostics themselves (source excerpt, caret) become its Context.
func ParseDiagnostics(out string) []Diagnostic {
	var ds []Diagnostic
	for _, line := range strings.Split(out, "\n") {
		m := diagRE.FindStringSubmatch(strings.TrimRight(line, "\r"))
		if m == nil {
			if n := len(ds); n > 0 && len(ds[n-1].Context) < 3 && strings.TrimSpace(line) != "" &&
				!strings.Contains(line, "In file included from") && !strings.HasSuffix(line, "generated.") &&
				!strings.Contains(line, ": In function") && !strings.Contains(line, ": In instantiation") {
				ds[n-1].Context = append(ds[n-1].Context, line)
			}
			continue
		}
		ln, _ := strconv.Atoi(m[2])
		col, _ := strconv.Atoi(m[3])
		ds = append(ds, Diagnostic{File: m[1], Line: ln, Col: col, Severity: m[4], Message: m[5]})
	}
	return ds
}

// diagnosticsCheck turns compile output into a failed check that points at
// the first error's file and line, with the errors as evidence.
func diagnosticsCheck(id, title, out string, fallback []string, hint string) checks.Check {
	c := checks.Check{ID: id, Title: title, Status: checks.Fail, Hint: hint}
	n := 0
	for _, d := range ParseDiagnostics(out) {
		if d.Severity != "error" && d.Severity != "fatal error" {
			continue
		}
		if c.File == "" {
			c.File, c.Line = d.File, d.Line
		}
		if n < 8 {
			c.Evidence = append(c.Evidence, d.String())
			if n == 0 {
				c.Evidence = append(c.Evidence, d.Context...)
			}
		}
		n++
	}
	if n > 8 {
		c.Evidence = append(c.Evidence, strconv.Itoa(n-8)+" more errors (see the step log)")
	}
	if n == 0 {
		c.Evidence = append(c.Evidence, fallback...)
	}
	return c
}

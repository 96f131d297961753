package steps

import (
	"path"
	"path/filepath"
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

// EmbeddedRuntimePath is where the embedded runtime lives in orchard's
// repository: diagnostics in the materialised copy point there instead.
const EmbeddedRuntimePath = "metalkern/runtime"

// SourcePath maps a file a compiler named to the runtime source the user
// has: the ejected directory's file as is; for the embedded runtime, a file
// in its materialised copy (<build-dir>/runtime/…) becomes its path in this
// repository (metalkern/runtime/…). Other files are returned unchanged.
func (b *Build) SourcePath(buildDir, file string) string {
	if b == nil || b.Source.Dir != "" || file == "" {
		return file
	}
	rel, err := filepath.Rel(b.RuntimeRoot(buildDir), file)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return file
	}
	return path.Join(EmbeddedRuntimePath, filepath.ToSlash(rel))
}

// maxEvidenceDiagnostics is how many errors a check quotes in its evidence;
// its Locations hold them all.
const maxEvidenceDiagnostics = 8

// diagnosticsCheck turns compile output into a failed check with one
// Location per error (files mapped by where, nil: as named), pointing at the
// first error's file and line, with the errors as evidence.
func diagnosticsCheck(id, title, out string, fallback []string, hint string, where func(string) string) checks.Check {
	c := checks.Check{ID: id, Title: title, Status: checks.Fail, Hint: hint}
	if where == nil {
		where = func(f string) string { return f }
	}
	n := 0
	for _, d := range ParseDiagnostics(out) {
		if d.Severity != "error" && d.Severity != "fatal error" {
			continue
		}
		d.File = where(d.File)
		c.Locations = append(c.Locations, checks.Location{File: d.File, Line: d.Line, Col: d.Col, Message: d.Message})
		if c.File == "" {
			c.File, c.Line = d.File, d.Line
		}
		if n < maxEvidenceDiagnostics {
			c.Evidence = append(c.Evidence, d.String())
			if n == 0 {
				c.Evidence = append(c.Evidence, d.Context...)
			}
		}
		n++
	}
	if n > maxEvidenceDiagnostics {
		c.Evidence = append(c.Evidence, strconv.Itoa(n-maxEvidenceDiagnostics)+" more errors (see the step log)")
	}
	if n == 0 {
		c.Evidence = append(c.Evidence, fallback...)
	}
	return c
}

// mergeChecks folds checks with the same id (one per failed kernel file)
// into one item — a report has each id once — keeping every location and
// piece of evidence, the first file:line and the first hint.
func mergeChecks(cs []checks.Check) []checks.Check {
	var out []checks.Check
	at := map[string]int{}
	for _, c := range cs {
		i, ok := at[c.ID]
		if !ok {
			at[c.ID] = len(out)
			out = append(out, c)
			continue
		}
		m := &out[i]
		m.Status = checks.Worst(m.Status, c.Status)
		m.Evidence = append(m.Evidence, c.Evidence...)
		m.Locations = append(m.Locations, c.Locations...)
		if m.File == "" {
			m.File, m.Line = c.File, c.Line
		}
		if m.Hint == "" {
			m.Hint = c.Hint
		}
	}
	return out
}

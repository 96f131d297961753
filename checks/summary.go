package checks

import (
	"fmt"
	"strings"
)

// Counts tallies a report's checklist items by status, plus its failed steps.
type Counts struct {
	Total, Pass, Fail, Warn, Skip int
	// FailedSteps counts steps whose status is fail.
	FailedSteps int
}

// Counts tallies the report's checks and failed steps.
func (r *Report) Counts() Counts {
	var n Counts
	for _, c := range r.Checks {
		n.Total++
		switch c.Status {
		case Pass:
			n.Pass++
		case Warn:
			n.Warn++
		case Skip:
			n.Skip++
		default: // fail, and any unknown word, counts as a failure
			n.Fail++
		}
	}
	for _, s := range r.Steps {
		if s.Status == Fail {
			n.FailedSteps++
		}
	}
	return n
}

// SummaryLine is the one-line verdict of a report, e.g. "All 7 checks passed"
// or "2 of 7 checks failed, 1 warning"; it carries no context or colour.
func (r *Report) SummaryLine() string {
	n := r.Counts()
	var b strings.Builder
	switch {
	case n.Total == 0:
		b.WriteString("No checks ran")
	case n.Fail > 0:
		fmt.Fprintf(&b, "%d of %s failed", n.Fail, plural(n.Total, "check"))
	case n.Warn == 0 && n.Skip == 0:
		if n.Total == 1 {
			b.WriteString("1 check passed")
		} else {
			fmt.Fprintf(&b, "All %d checks passed", n.Total)
		}
	default:
		fmt.Fprintf(&b, "%d of %s passed", n.Pass, plural(n.Total, "check"))
	}
	if n.Warn > 0 {
		b.WriteString(", " + plural(n.Warn, "warning"))
	}
	if n.Skip > 0 {
		fmt.Fprintf(&b, ", %d skipped", n.Skip)
	}
	if n.FailedSteps > 0 && n.Fail == 0 { // else the failed checks say it
		fmt.Fprintf(&b, ", %s failed", plural(n.FailedSteps, "step"))
	}
	return b.String()
}

// context is "(backend emu, build dir /x)", or "" when neither is known.
func (r *Report) context() string {
	var parts []string
	if r.Backend != "" {
		parts = append(parts, "backend "+r.Backend)
	}
	if r.BuildDir != "" {
		parts = append(parts, "build dir "+r.BuildDir)
	}
	if len(parts) == 0 {
		return ""
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// overall is the status the summary is shown with.
func (r *Report) overall() Status {
	n := r.Counts()
	switch {
	case n.Fail > 0 || n.FailedSteps > 0:
		return Fail
	case n.Warn > 0:
		return Warn
	case n.Total == 0:
		return Skip
	}
	return Pass
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	if strings.HasSuffix(word, "x") {
		return fmt.Sprintf("%d %ses", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// reason is why a check was skipped: its first evidence line, else its hint.
func (c Check) reason() string {
	for _, e := range c.Evidence {
		if s := strings.TrimSpace(e); s != "" {
			return s
		}
	}
	return strings.TrimSpace(c.Hint)
}

// location is "file:line", "file" or "".
func (c Check) location() string {
	switch {
	case c.File == "":
		return ""
	case c.Line > 0:
		return fmt.Sprintf("%s:%d", c.File, c.Line)
	}
	return c.File
}

// firstLine is s up to its first line break, trimmed.
func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// lines splits s on line breaks (CRLF, LF or CR), dropping a trailing one.
func lines(s string) []string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	return strings.Split(strings.TrimRight(s, "\n"), "\n")
}

// formatDuration is compact: 340ms, 12.3s, 2m05s.
func formatDuration(ms int64) string {
	switch {
	case ms < 1000:
		return fmt.Sprintf("%dms", ms)
	case ms < 59_950: // so 59.96s shows as 1m00s, not 60.0s
		return fmt.Sprintf("%.1fs", float64(ms)/1000)
	}
	s := ms / 1000
	return fmt.Sprintf("%dm%02ds", s/60, s%60)
}

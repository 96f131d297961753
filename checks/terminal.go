package checks

import (
	"io"
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
)

// TermOptions configures RenderTerminal.
type TermOptions struct {
	// Renderer carries the colour profile the caller decided once (see
	// cmd/orchard's decideColor); with termenv.Ascii the output is plain
	// text. Nil renders plain text. RenderTerminal never probes a terminal.
	Renderer *lipgloss.Renderer
	// Verbose shows the evidence under every item, not only under failures
	// and warnings, and why each step ran or was reused and its log path
	// (the log path of a failed step is always shown).
	Verbose bool
}

// Widths of the aligned columns; longer titles just push their trailer out.
const (
	maxTitleColumn = 40
	maxTrailer     = 60
)

// RenderTerminal writes the report for people, flutter-doctor style: the
// steps (when there are any), one line per checklist item with its mark —
// [✓] pass, [✗] fail, [!] warn, [-] skip — and a short trailer, the evidence
// and the fix under failures and warnings (under everything when Verbose),
// then a summary line.
func RenderTerminal(w io.Writer, r *Report, o TermOptions) error {
	st := newTermStyles(o.Renderer)
	var b strings.Builder
	if len(r.Steps) > 0 {
		b.WriteString(st.bold.Render("Steps") + "\n")
		writeSteps(&b, r.Steps, st, o.Verbose)
		b.WriteString("\n")
		if len(r.Checks) > 0 {
			b.WriteString(st.bold.Render("Checks") + "\n")
		}
	}
	writeChecks(&b, r.Checks, st, o.Verbose)
	if len(r.Checks) > 0 {
		b.WriteString("\n")
	}
	summary := r.SummaryLine()
	if ctx := r.context(); ctx != "" {
		summary += " " + ctx
	}
	b.WriteString(st.of(r.overall()).Bold(true).Render(clean(summary)) + "\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// termStyles are the styles of one render, all built from one renderer.
type termStyles struct {
	plain, pass, fail, warn, skip, dim, bold lipgloss.Style
}

func newTermStyles(re *lipgloss.Renderer) termStyles {
	if re == nil {
		// Plain text, decided here rather than by probing stdout.
		re = lipgloss.NewRenderer(io.Discard, termenv.WithProfile(termenv.Ascii))
		re.SetHasDarkBackground(true)
	}
	return termStyles{
		plain: re.NewStyle(),
		pass:  re.NewStyle().Foreground(lipgloss.Color("2")),
		fail:  re.NewStyle().Foreground(lipgloss.Color("1")),
		warn:  re.NewStyle().Foreground(lipgloss.Color("3")),
		skip:  re.NewStyle().Faint(true),
		dim:   re.NewStyle().Faint(true),
		bold:  re.NewStyle().Bold(true),
	}
}

// of is the style of a status; unknown words look like failures.
func (st termStyles) of(s Status) lipgloss.Style {
	switch s {
	case Pass:
		return st.pass
	case Warn:
		return st.warn
	case Skip:
		return st.skip
	}
	return st.fail
}

// glyph is a status's mark without brackets.
func glyph(s Status) string {
	switch s {
	case Pass:
		return "✓"
	case Warn:
		return "!"
	case Skip:
		return "-"
	}
	return "✗"
}

// writeSteps writes the compact step list: mark, name, status, "cached" or
// the duration, and the step's one-line detail.
func writeSteps(b *strings.Builder, steps []StepSummary, st termStyles, verbose bool) {
	nameW, timeW := 0, 0
	times := make([]string, len(steps))
	for i, s := range steps {
		nameW = max(nameW, lipgloss.Width(clean(s.Name)))
		switch {
		case s.Cached:
			times[i] = "cached"
		case s.Status == Skip && s.DurationMS == 0:
			times[i] = ""
		default:
			times[i] = formatDuration(s.DurationMS)
		}
		timeW = max(timeW, len(times[i]))
	}
	for i, s := range steps {
		style := st.of(s.Status)
		word := string(s.Status)
		if word == "" {
			word = "?"
		}
		line := "  " + style.Render(glyph(s.Status)) + " " + padRight(clean(s.Name), nameW) +
			"  " + style.Render(padRight(clean(word), 4))
		detail := firstLine(clean(s.Detail))
		switch {
		case detail != "":
			line += "  " + padRight(times[i], timeW) + "  " + st.dim.Render(detail)
		case times[i] != "":
			line += "  " + times[i]
		}
		b.WriteString(line + "\n")
		if s.Explain != "" && verbose { // the engine always sets it; --explain shows it on its own
			writeIndented(b, "    ", st.dim.Render("why:")+" ", "         ", clean(s.Explain))
		}
		if s.Log != "" && (verbose || s.Status == Fail) {
			b.WriteString("    " + st.dim.Render("log: "+clean(s.Log)) + "\n")
		}
	}
}

// writeChecks writes one line per item, expanding failures and warnings (or
// everything, when verbose) into their evidence and fix.
func writeChecks(b *strings.Builder, cs []Check, st termStyles, verbose bool) {
	titleW := 0
	for _, c := range cs {
		if w := lipgloss.Width(clean(c.Title)); w <= maxTitleColumn {
			titleW = max(titleW, w)
		}
	}
	for _, c := range cs {
		style := st.of(c.Status)
		expand := verbose || c.Status.Rank() >= Warn.Rank()
		title := clean(c.Title)
		if title == "" {
			title = clean(c.ID)
		}
		titleStyle := st.plain
		if c.Status == Skip {
			titleStyle = st.skip
		}
		line := style.Render("["+glyph(c.Status)+"]") + " "
		trailer := ""
		if !expand {
			trailer = c.trailer()
		}
		if trailer == "" {
			line += titleStyle.Render(title)
		} else {
			line += titleStyle.Render(padRight(title, titleW)) + "  " + st.dim.Render(truncate(trailer, maxTrailer))
		}
		b.WriteString(line + "\n")
		if !expand {
			continue
		}
		if loc := c.location(); loc != "" {
			b.WriteString("    • at " + clean(loc) + "\n")
		}
		for _, e := range c.Evidence {
			if strings.TrimSpace(e) == "" {
				continue
			}
			writeIndented(b, "    ", "• ", "  ", clean(e))
		}
		if h := strings.TrimSpace(c.Hint); h != "" {
			writeIndented(b, "    ", style.Render("→ fix:")+" ", "       ", clean(h))
		}
	}
}

// trailer is the short text after a collapsed item's title: the skip reason
// for a skip, else the first line of each evidence, joined with " · ".
func (c Check) trailer() string {
	if c.Status == Skip {
		return firstLine(clean(c.reason()))
	}
	var parts []string
	for _, e := range c.Evidence {
		if s := firstLine(clean(e)); s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, " · ")
}

// writeIndented writes text after indent+label, continuation lines after
// indent+cont (cont is as wide as the label, so the text lines up).
func writeIndented(b *strings.Builder, indent, label, cont, text string) {
	for i, l := range lines(text) {
		if i == 0 {
			b.WriteString(indent + label + l + "\n")
		} else {
			b.WriteString(strings.TrimRight(indent+cont+l, " ") + "\n")
		}
	}
}

func padRight(s string, w int) string {
	if n := lipgloss.Width(s); n < w {
		return s + strings.Repeat(" ", w-n)
	}
	return s
}

// truncate cuts s to at most n cells, ending in "…" when cut.
func truncate(s string, n int) string {
	if lipgloss.Width(s) <= n {
		return s
	}
	rs := []rune(s)
	if len(rs) > n {
		rs = rs[:n]
	}
	for len(rs) > 0 && lipgloss.Width(string(rs))+1 > n {
		rs = rs[:len(rs)-1]
	}
	return strings.TrimRight(string(rs), " ") + "…"
}

package checks

import (
	"fmt"
	"io"
	"strings"
	"time"

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
	// Width is the terminal's width in cells: long lines wrap under their
	// item, indented. 0 (not a terminal) writes every line whole. Nothing
	// is ever cut.
	Width int
	// HideSteps leaves out the step list: the live progress already left
	// each step's final line on the same screen.
	HideSteps bool
}

// Width of the aligned title column; longer titles just push their trailer out.
const maxTitleColumn = 40

// RenderTerminal writes the report for people, flutter-doctor style: the
// steps (when there are any), one line per checklist item with its mark —
// [✓] pass, [✗] fail, [!] warn, [-] skip — and a short trailer, the evidence
// and the fix under failures and warnings (under everything when Verbose),
// then a summary line.
func RenderTerminal(w io.Writer, r *Report, o TermOptions) error {
	st := newTermStyles(o.Renderer)
	var b strings.Builder
	if len(r.Steps) > 0 && !o.HideSteps {
		b.WriteString(st.bold.Render("Steps") + "\n")
		writeSteps(&b, r.Steps, st, o.Verbose, o.Width)
		b.WriteString("\n")
		if len(r.Checks) > 0 {
			b.WriteString(st.bold.Render("Checks") + "\n")
		}
	}
	cached := map[string]bool{}
	for _, s := range r.Steps {
		cached[s.Name] = s.Cached
	}
	writeChecks(&b, r.Checks, cached, st, o.Verbose, o.Width)
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
func writeSteps(b *strings.Builder, steps []StepSummary, st termStyles, verbose bool, width int) {
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
		if from := s.CachedFrom(); from != "" {
			detail = strings.TrimPrefix(detail+" · "+from, " · ")
		}
		switch {
		case detail != "":
			line += "  " + padRight(times[i], timeW) + "  " + st.dim.Render(detail)
		case times[i] != "":
			line += "  " + times[i]
		}
		b.WriteString(line + "\n")
		if s.Explain != "" && verbose { // the engine always sets it; --explain shows it on its own
			writeIndented(b, "    ", st.dim.Render("why:")+" ", "         ", clean(s.Explain), width)
		}
		if s.Log != "" && (verbose || s.Status == Fail) {
			b.WriteString("    " + st.dim.Render("log: "+clean(s.Log)) + "\n")
		}
	}
}

// writeChecks writes one line per item, expanding failures and warnings (or
// everything, when verbose) into their evidence and fix.
func writeChecks(b *strings.Builder, cs []Check, cached map[string]bool, st termStyles, verbose bool, width int) {
	// An item of a cached step says so after its title.
	titleOf := func(c Check) string {
		t := clean(c.Title)
		if t == "" {
			t = clean(c.ID)
		}
		if cached[c.Step] {
			t += " (cached)"
		}
		return t
	}
	titleW := 0
	for _, c := range cs {
		if w := lipgloss.Width(titleOf(c)); w <= maxTitleColumn {
			titleW = max(titleW, w)
		}
	}
	for _, c := range cs {
		style := st.of(c.Status)
		expand := verbose || c.Status.Rank() >= Warn.Rank()
		title := titleOf(c)
		titleStyle := st.plain
		if c.Status == Skip {
			titleStyle = st.skip
		}
		line := style.Render("["+glyph(c.Status)+"]") + " "
		trailer := ""
		if !expand {
			// Piped or redirected (no width): every item, nothing counted away.
			trailer = c.trailerWith("-v shows them", width > 0)
		}
		if trailer == "" {
			line += titleStyle.Render(title)
			b.WriteString(line + "\n")
		} else {
			line += titleStyle.Render(padRight(title, titleW)) + "  "
			// The trailer wraps in its own column, or under the title when
			// that column is too narrow.
			col := lipgloss.Width(line)
			if width > 0 && width-col < 30 {
				b.WriteString(line + "\n")
				line, col = "    ", 4
			}
			for i, l := range wrap(trailer, width-col) {
				if i > 0 {
					line = strings.Repeat(" ", col)
				}
				b.WriteString(line + st.dim.Render(l) + "\n")
			}
		}
		if !expand {
			continue
		}
		if loc := c.location(); loc != "" {
			writeIndented(b, "    ", "• ", "  ", "at "+clean(loc), width)
		}
		for _, e := range c.Evidence {
			if strings.TrimSpace(e) == "" {
				continue
			}
			writeIndented(b, "    ", "• ", "  ", clean(e), width)
		}
		if h := strings.TrimSpace(c.Hint); h != "" {
			writeIndented(b, "    ", style.Render("→ fix:")+" ", "       ", clean(h), width)
		}
	}
}

// maxTrailerItems is how many evidence items a collapsed item's line shows
// on a terminal (steps put their summary first); the rest are counted, and
// -v shows them.
const maxTrailerItems = 3

// trailerWith is the short text after a collapsed item's title: the skip
// reason for a skip, else the first line of each evidence item, joined with
// " · ", whole. With short, only the first few items and how many more
// there are (rest says where they are).
func (c Check) trailerWith(rest string, short bool) string {
	if c.Status == Skip {
		return firstLine(clean(c.reason()))
	}
	var parts []string
	more := 0
	for _, e := range c.Evidence {
		if s := firstLine(clean(e)); s != "" {
			if short && len(parts) == maxTrailerItems {
				more++
				continue
			}
			parts = append(parts, s)
		}
	}
	if more > 0 {
		parts = append(parts, fmt.Sprintf("(%d more; %s)", more, rest))
	}
	return strings.Join(parts, " · ")
}

// writeIndented writes text after indent+label, continuation lines after
// indent+cont (cont is as wide as the label, so the text lines up). With a
// width, a line longer than the terminal wraps at a space (or, for a word
// wider than the room, anywhere) and continues under itself: nothing is cut.
func writeIndented(b *strings.Builder, indent, label, cont, text string, width int) {
	room := 0
	if width > 0 {
		room = max(width-lipgloss.Width(indent+cont), 20)
	}
	first := true
	for _, l := range lines(text) {
		for _, part := range wrap(l, room) {
			if first {
				b.WriteString(indent + label + part + "\n")
				first = false
			} else {
				b.WriteString(strings.TrimRight(indent+cont+part, " ") + "\n")
			}
		}
	}
}

func padRight(s string, w int) string {
	if n := lipgloss.Width(s); n < w {
		return s + strings.Repeat(" ", w-n)
	}
	return s
}

// Wrap splits a line into parts of at most width cells (see wrap): for
// text printed once on a terminal that should wrap under itself.
func Wrap(s string, width int) []string { return wrap(s, width) }

// wrap splits a line into parts of at most width cells, breaking at spaces
// where it can and inside a word only when the word alone is too wide;
// width <= 0 keeps the line whole. The parts together hold all of s.
func wrap(s string, width int) []string {
	if width <= 0 || lipgloss.Width(s) <= width {
		return []string{s}
	}
	// Leading spaces (a compiler's source excerpt) stay with the first part.
	lead := len(s) - len(strings.TrimLeft(s, " "))
	var out []string
	cur := s[:lead]
	for _, w := range strings.Fields(s[lead:]) {
		switch {
		case strings.TrimSpace(cur) == "":
			cur += w
		case lipgloss.Width(cur)+1+lipgloss.Width(w) <= width:
			cur += " " + w
		default:
			out = append(out, cur)
			cur = w
		}
		for lipgloss.Width(cur) > width { // a word wider than the room
			rs := []rune(cur)
			n := len(rs)
			for n > 1 && lipgloss.Width(string(rs[:n])) > width {
				n--
			}
			out = append(out, string(rs[:n]))
			cur = string(rs[n:])
		}
	}
	if cur != "" || len(out) == 0 {
		out = append(out, cur)
	}
	return out
}

// CachedFrom says where a cached step's result comes from: "from the run
// of 2026-12-02 10:04 UTC" ("" for a step that ran). The result's figures
// (a smoke run's seed) are that run's.
func (s StepSummary) CachedFrom() string {
	if !s.Cached {
		return ""
	}
	t, err := time.Parse(time.RFC3339, s.CachedAt)
	if err != nil {
		return "from an earlier run"
	}
	return "from the run of " + t.UTC().Format("2006-01-02 15:04 UTC")
}

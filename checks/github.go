package checks

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// WriteGitHubAnnotations writes a GitHub Actions workflow command per failed
// check (::error) and per warning (::warning), titled with the check's id and
// positioned at its File and Line when it has them:
//
//	::error file=kernels/fwd.metal,line=42,title=forward::Forward pass…
//
// The message is the title, the evidence and "fix: <hint>", one per line.
// Passes and skips write nothing. GitHub shows at most 10 of each kind per
// step, in order, so put the checks that matter most first.
func WriteGitHubAnnotations(w io.Writer, r *Report) error {
	var b strings.Builder
	for _, c := range r.Checks {
		var kind string
		switch {
		case c.Status == Warn:
			kind = "warning"
		case c.Status.Rank() >= Fail.Rank():
			kind = "error"
		default:
			continue
		}
		var props []string
		if c.File != "" {
			props = append(props, "file="+escapeProperty(clean(c.File)))
			if c.Line > 0 {
				props = append(props, fmt.Sprintf("line=%d", c.Line))
			}
		}
		props = append(props, "title="+escapeProperty(clean(c.ID)))
		b.WriteString("::" + kind + " " + strings.Join(props, ",") + "::" + escapeData(annotationMessage(c)) + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func annotationMessage(c Check) string {
	parts := []string{clean(c.Title)}
	for _, e := range c.Evidence {
		if e = strings.TrimRight(clean(e), "\r\n"); strings.TrimSpace(e) != "" {
			parts = append(parts, e)
		}
	}
	if h := strings.TrimSpace(clean(c.Hint)); h != "" {
		parts = append(parts, "fix: "+h)
	}
	return strings.Join(parts, "\n")
}

// escapeData escapes a workflow command's message: % CR LF.
func escapeData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

// escapeProperty escapes a workflow command's property value: as data, and
// also : and , which delimit properties.
func escapeProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}

// GitHubGroup writes body's output as a collapsible group in a GitHub Actions
// log: "::group::title", what body writes, "::endgroup::". The group is
// closed even when body fails; body's error is returned first.
func GitHubGroup(w io.Writer, title string, body func() error) error {
	if _, err := io.WriteString(w, "::group::"+escapeData(clean(title))+"\n"); err != nil {
		return err
	}
	berr := body()
	_, err := io.WriteString(w, "::endgroup::\n")
	if berr != nil {
		return berr
	}
	return err
}

// StepSummaryLimit is what GitHub accepts in one step's summary file.
const StepSummaryLimit = 1 << 20

// Per-cell cap in the summary table, so one huge log cannot crowd out the rest.
const maxSummaryCell = 4 << 10

// AppendGitHubSummary appends the report as markdown to the step summary file
// at path (the value of $GITHUB_STEP_SUMMARY): a heading with the verdict, a
// table | | check | status | evidence |, and the fixes of failures and
// warnings. The file is created when missing. What it writes, together with
// what the file already holds, stays within StepSummaryLimit: rows that do
// not fit are left out and counted in a note. An empty path (not running in
// GitHub Actions) writes nothing.
func AppendGitHubSummary(path string, r *Report) error {
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("github step summary: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("github step summary: %w", err)
	}
	md := summaryMarkdown(r, StepSummaryLimit-int(min(info.Size(), StepSummaryLimit)))
	if md == "" {
		f.Close()
		return fmt.Errorf("github step summary: %s already holds %d bytes, the 1 MiB limit leaves no room", path, info.Size())
	}
	_, err = io.WriteString(f, md)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("github step summary: %w", err)
	}
	return nil
}

// summaryMarkdown renders the report in at most budget bytes ("" when even
// the heading does not fit).
func summaryMarkdown(r *Report, budget int) string {
	title := "orchard"
	if r.Command != "" {
		title += " " + r.Command
	}
	var b strings.Builder
	b.WriteString("### " + mdCell(title+": "+r.SummaryLine()) + "\n\n")
	if ctx := r.context(); ctx != "" {
		b.WriteString(mdCell(strings.Trim(ctx, "()")) + "\n\n")
	}
	b.WriteString("| | check | status | evidence |\n| --- | --- | --- | --- |\n")
	const reserve = 200 // for the "left out" note
	if b.Len()+reserve > budget {
		return ""
	}

	rows, fixes := summaryRows(r.Checks), summaryFixes(r.Checks)
	left := 0
	for _, row := range rows {
		if left > 0 || b.Len()+len(row)+reserve > budget {
			left++
			continue
		}
		b.WriteString(row)
	}
	if left > 0 {
		what := plural(left, "row")
		if len(fixes) > 0 {
			what += " and the fixes"
		}
		fmt.Fprintf(&b, "\n_%s left out: the step summary is limited to 1 MiB._\n", what)
	}
	if len(fixes) > 0 && left == 0 {
		b.WriteString("\n#### How to fix\n\n")
		for i, fix := range fixes {
			if b.Len()+len(fix)+reserve > budget {
				fmt.Fprintf(&b, "\n_%s left out: the step summary is limited to 1 MiB._\n", plural(len(fixes)-i, "fix"))
				break
			}
			b.WriteString(fix)
		}
	}
	b.WriteString("\n")
	return b.String()
}

func summaryRows(cs []Check) []string {
	rows := make([]string, 0, len(cs))
	for _, c := range cs {
		check := "`" + strings.ReplaceAll(clean(c.ID), "`", "'") + "`"
		if c.Title != "" {
			check += " " + mdCell(c.Title)
		}
		var ev []string
		if loc := c.location(); loc != "" {
			ev = append(ev, "at "+loc)
		}
		for _, e := range c.Evidence {
			if strings.TrimSpace(e) != "" {
				ev = append(ev, e)
			}
		}
		rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s |\n",
			mdMark(c.Status), check, mdCell(string(c.Status)), mdCell(strings.Join(ev, "\n"))))
	}
	return rows
}

func summaryFixes(cs []Check) []string {
	var fixes []string
	for _, c := range cs {
		if h := strings.TrimSpace(c.Hint); h != "" && c.Status.Rank() >= Warn.Rank() {
			id := "`" + strings.ReplaceAll(clean(c.ID), "`", "'") + "`"
			fixes = append(fixes, fmt.Sprintf("- %s %s: %s\n", mdMark(c.Status), id, mdCell(h)))
		}
	}
	return fixes
}

func mdMark(s Status) string {
	switch s {
	case Pass:
		return "✅"
	case Warn:
		return "⚠️"
	case Skip:
		return "⏭️"
	}
	return "❌"
}

// mdCell makes text safe inside a markdown table cell or list item: no
// escape sequences, HTML special characters escaped (so "<&>" shows as
// written), | escaped, line breaks as <br>, at most maxSummaryCell bytes.
func mdCell(s string) string {
	s = clean(s)
	if len(s) > maxSummaryCell {
		cut := maxSummaryCell
		for cut > 0 && !isRuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	s = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "|", "\\|").Replace(s)
	return strings.Join(lines(strings.TrimSpace(s)), "<br>")
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

package checks

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// MaxAnnotation is the most a workflow command's message holds (escaped):
// an annotation is a pointer, the detail is in the step summary.
const MaxAnnotation = 1 << 10

// WriteGitHubAnnotations writes a GitHub Actions workflow command per failed
// check (::error) and per warning (::warning), titled with the check's id:
// one per compiler diagnostic (Locations), at its file, line and column,
// with the compiler's message —
//
//	::error file=metalkern/runtime/kernels/attn_fwd.metal,line=42,col=7,title=shaders::'x' was not declared
//
// — else one at the check's File and Line, whose message is the title, the
// first evidence lines and "fix: <hint>". Messages stay within
// MaxAnnotation and say that the rest is in the job summary. Absolute file
// paths under workspace ($GITHUB_WORKSPACE) are made relative to it, as
// GitHub wants; paths in the build dir read <build-dir>/… (the runner's disk
// is gone after the job: upload <build-dir>/logs as an artifact). Passes and
// skips write nothing. GitHub shows at most 10 of each kind per step, in
// order, so put the checks that matter most first.
func WriteGitHubAnnotations(w io.Writer, r *Report, workspace string) error {
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
		title := "title=" + escapeProperty(clean(c.ID))
		if len(c.Locations) > 0 {
			for _, l := range c.Locations {
				props := []string{"file=" + escapeProperty(relTo(workspace, clean(l.File)))}
				if l.Line > 0 {
					props = append(props, fmt.Sprintf("line=%d", l.Line))
					if l.Col > 0 {
						props = append(props, fmt.Sprintf("col=%d", l.Col))
					}
				}
				msg := clean(l.Message)
				if h := strings.TrimSpace(clean(c.Hint)); h != "" {
					msg += "\nfix: " + h
				}
				b.WriteString("::" + kind + " " + strings.Join(append(props, title), ",") + "::" +
					capEscaped(r.inBuildDir(msg), nil) + "\n")
			}
			continue
		}
		var props []string
		if c.File != "" {
			props = append(props, "file="+escapeProperty(relTo(workspace, clean(c.File))))
			if c.Line > 0 {
				props = append(props, fmt.Sprintf("line=%d", c.Line))
			}
		}
		props = append(props, title)
		b.WriteString("::" + kind + " " + strings.Join(props, ",") + "::" + annotationMessage(r, c) + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// annotationMessage is a check's title, as many evidence lines as fit and
// its fix, escaped, within MaxAnnotation.
func annotationMessage(r *Report, c Check) string {
	var ev []string
	for _, e := range c.Evidence {
		for _, l := range lines(r.inBuildDir(clean(e))) {
			if strings.TrimSpace(l) != "" {
				ev = append(ev, strings.TrimRight(l, " "))
			}
		}
	}
	tail := []string{}
	if h := strings.TrimSpace(clean(c.Hint)); h != "" {
		tail = append(tail, "fix: "+r.inBuildDir(h))
	}
	return capEscaped(clean(c.Title), ev, tail...)
}

// capEscaped escapes head, then as many of the middle lines as fit, then
// tail, so the result stays within MaxAnnotation; left-out lines are counted
// and pointed to the job summary. An over-long head or tail is cut.
func capEscaped(head string, middle []string, tail ...string) string {
	const note = 80                       // room for the "more lines" note
	cut := func(s string, n int) string { // at most n bytes escaped, with "…"
		if len(escapeData(s)) <= n {
			return s
		}
		rs := []rune(s)
		if len(rs) > n {
			rs = rs[:n]
		}
		for len(rs) > 0 && len(escapeData(string(rs)))+len("…") > n {
			rs = rs[:len(rs)-1]
		}
		return string(rs) + "…"
	}
	t := escapeData(strings.Join(tail, "\n"))
	if len(t) > MaxAnnotation/3 {
		t = escapeData(cut(strings.Join(tail, "\n"), MaxAnnotation/3))
	}
	out := escapeData(cut(head, MaxAnnotation-len(t)-note-6))
	left := 0
	for _, l := range middle {
		e := "%0A" + escapeData(l)
		if left > 0 || len(out)+len(e)+len(t)+note+6 > MaxAnnotation {
			left++
			continue
		}
		out += e
	}
	if left > 0 {
		out += "%0A" + escapeData(fmt.Sprintf("(%s more in the job summary)", plural(left, "line")))
	}
	if t != "" {
		out += "%0A" + t
	}
	return out
}

// relTo is file relative to the workspace when it is an absolute path under
// it, else file.
func relTo(workspace, file string) string {
	if workspace == "" || !filepath.IsAbs(file) {
		return file
	}
	rel, err := filepath.Rel(workspace, file)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return file
	}
	return filepath.ToSlash(rel)
}

// inBuildDir writes the build dir as <build-dir> in text meant for a CI
// log: its absolute path means nothing once the runner is gone.
func (r *Report) inBuildDir(s string) string {
	if r.BuildDir == "" || r.BuildDir == "/" {
		return s
	}
	return strings.ReplaceAll(s, r.BuildDir, "<build-dir>")
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
// table | | check | status | evidence | with failures first, then warnings,
// skips and passes (a failure or warning shows all its evidence and every
// diagnostic; a pass or skip one line), the fixes of failures and warnings,
// and, when something failed, how to keep <build-dir>/logs as an artifact. The file is created when missing. What it writes, together with
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

	rows, fixes := summaryRows(r, r.Checks), summaryFixes(r, r.Checks)
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
	if art := r.artifactNote(); art != "" && b.Len()+len(art)+reserve <= budget {
		b.WriteString(art)
	}
	b.WriteString("\n")
	return b.String()
}

// artifactNote says how to keep the logs of a failed run, whose paths on
// the runner's disk are gone once the job ends ("" for a passing run or
// without a build dir).
func (r *Report) artifactNote() string {
	if r.BuildDir == "" || r.overall() != Fail {
		return ""
	}
	logs := filepath.ToSlash(filepath.Join(r.BuildDir, "logs"))
	return "\n#### Logs\n\nThe step logs are in `<build-dir>/logs` (`" + mdCell(logs) + "`), on the runner's disk: " +
		"upload them as an artifact to keep them after the job.\n\n" +
		"```yaml\n- uses: actions/upload-artifact@v4\n  if: failure()\n  with:\n    name: orchard-logs\n    path: " + logs + "\n```\n"
}

// summaryRows are the table's rows, failures first: each status in rank
// order, worst first, keeping the report's order within a status.
func summaryRows(r *Report, cs []Check) []string {
	order := make([]Check, len(cs))
	copy(order, cs)
	sort.SliceStable(order, func(i, j int) bool { return order[i].Status.Rank() > order[j].Status.Rank() })
	rows := make([]string, 0, len(order))
	for _, c := range order {
		check := "`" + strings.ReplaceAll(clean(c.ID), "`", "'") + "`"
		if c.Title != "" {
			check += " " + mdCell(c.Title)
		}
		var ev []string
		if c.Status.Rank() >= Warn.Rank() {
			switch {
			case len(c.Locations) > 0:
				for _, l := range c.Locations {
					ev = append(ev, "at "+l.String()+": "+l.Message)
				}
			case c.location() != "":
				ev = append(ev, "at "+c.location())
			}
			for _, e := range c.Evidence {
				if strings.TrimSpace(e) != "" && !c.quotesLocation(e) {
					ev = append(ev, r.inBuildDir(e))
				}
			}
		} else if t := c.trailerWith("in the JSON report", true); t != "" { // passes and skips: one line
			ev = append(ev, r.inBuildDir(t))
		}
		rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s |\n",
			mdMark(c.Status), check, mdCell(string(c.Status)), mdCell(strings.Join(ev, "\n"))))
	}
	return rows
}

func summaryFixes(r *Report, cs []Check) []string {
	var fixes []string
	for _, c := range cs {
		if h := strings.TrimSpace(c.Hint); h != "" && c.Status.Rank() >= Warn.Rank() {
			id := "`" + strings.ReplaceAll(clean(c.ID), "`", "'") + "`"
			fixes = append(fixes, fmt.Sprintf("- %s %s: %s\n", mdMark(c.Status), id, mdCell(r.inBuildDir(h))))
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

// quotesLocation is true when evidence e is the text of one of c's
// diagnostics (the table lists those as locations already).
func (c Check) quotesLocation(e string) bool {
	for _, l := range c.Locations {
		if strings.HasPrefix(e, l.String()+": ") {
			return true
		}
	}
	return false
}

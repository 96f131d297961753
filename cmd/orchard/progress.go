package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/orchardkit/orchard/checks"
	"github.com/orchardkit/orchard/steps"
)

// progress renders engine events on stderr: on a TTY a live line per step
// with a spinner, the elapsed time and the latest progress message, cut to
// the terminal's width so a redraw never leaves a wrapped line behind, and
// replaced by the step's final line when it ends (each step appears once);
// piped, plain lines ("==> step", then the final line), never cut. In
// GitHub Actions each step's full log is folded into a ::group:: after it
// finishes.
type progress struct {
	w      io.Writer
	live   bool
	github bool
	r      *lipgloss.Renderer
	// width is the terminal's width (nil or 0: 80).
	width func() int

	mu      sync.Mutex
	step    string
	msg     string
	started time.Time
	stop    chan struct{}
	done    chan struct{}
	frame   int
}

var spinnerFrames = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

func newProgress(w io.Writer, live, github bool, r *lipgloss.Renderer) *progress {
	return &progress{w: w, live: live, github: github, r: r}
}

// Event is the engine's Events callback.
func (p *progress) Event(ev steps.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch ev.Kind {
	case steps.EventWaiting:
		p.clearLocked()
		fmt.Fprintln(p.w, ev.Message)
	case steps.EventStarted:
		p.step, p.msg, p.started = ev.Step, "", time.Now()
		if p.live {
			p.startTicker()
			p.drawLocked()
		} else {
			fmt.Fprintf(p.w, "==> %s\n", ev.Step)
		}
	case steps.EventProgress:
		p.msg = ev.Message
		if p.live {
			p.drawLocked()
		} else if isMilestone(ev.Message) {
			fmt.Fprintf(p.w, "    %s\n", ev.Message)
		}
	case steps.EventFinished:
		p.stopTickerLocked()
		p.clearLocked()
		fmt.Fprintln(p.w, p.finishedLine(ev.Summary))
		if ev.Summary.Status == checks.Fail && ev.Summary.Log != "" {
			fmt.Fprintln(p.w, "    "+p.r.NewStyle().Faint(true).Render("log: "+ev.Summary.Log))
		}
		if p.github && ev.Summary.Log != "" && !ev.Summary.Cached && ev.Summary.Status != checks.Skip {
			_ = checksGitHubGroupFile(p.w, ev.Summary.Name+" output", ev.Summary.Log)
		}
		p.step = ""
	}
}

// isMilestone keeps piped output short: CMake's percentages at 25% steps,
// case counters ("case 12/44 …") at the first, the last and each quarter,
// and every message that is neither.
func isMilestone(msg string) bool {
	var pct, i, n int
	if _, err := fmt.Sscanf(msg, "[%d%%]", &pct); err == nil {
		return pct%25 == 0
	}
	if _, err := fmt.Sscanf(msg, "case %d/%d", &i, &n); err == nil && n > 0 {
		return i == 1 || i == n || (4*i)/n != (4*(i-1))/n
	}
	return true
}

func (p *progress) finishedLine(s checks.StepSummary) string {
	mark, style := "✓", p.r.NewStyle().Foreground(lipgloss.Color("2"))
	switch s.Status {
	case checks.Fail:
		mark, style = "✗", p.r.NewStyle().Foreground(lipgloss.Color("1"))
	case checks.Warn:
		mark, style = "!", p.r.NewStyle().Foreground(lipgloss.Color("3"))
	case checks.Skip:
		mark, style = "-", p.r.NewStyle().Faint(true)
	}
	when := formatDuration(time.Duration(s.DurationMS) * time.Millisecond)
	if s.Cached {
		when = "cached"
	} else if s.Status == checks.Skip && s.DurationMS == 0 {
		when = "" // never ran
	}
	line := fmt.Sprintf("%s %-14s %8s", style.Render(mark), s.Name, when)
	detail := strings.ReplaceAll(s.Detail, "\n", " ")
	if from := s.CachedFrom(); from != "" {
		detail = strings.TrimPrefix(detail+" · "+from, " · ")
	}
	if detail == "" {
		return line
	}
	// Printed once, never redrawn: it is never cut. On a terminal a long
	// detail wraps under itself; piped, it stays on one line.
	dim := p.r.NewStyle().Faint(true)
	col := lipgloss.Width(line) + 2
	parts := []string{detail}
	if w := p.termWidth(); p.live && w-col >= 20 {
		parts = checks.Wrap(detail, w-1-col)
	}
	for i, part := range parts {
		if i > 0 {
			line += "\n" + strings.Repeat(" ", col)
		} else {
			line += "  "
		}
		line += dim.Render(part)
	}
	return line
}

// termWidth is the terminal's width (80 when it does not say).
func (p *progress) termWidth() int {
	if p.width != nil {
		if n := p.width(); n > 0 {
			return n
		}
	}
	return 80
}

func (p *progress) startTicker() {
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	go func(stop, done chan struct{}) {
		defer close(done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				p.mu.Lock()
				p.frame++
				p.drawLocked()
				p.mu.Unlock()
			}
		}
	}(p.stop, p.done)
}

func (p *progress) stopTickerLocked() {
	if p.stop == nil {
		return
	}
	close(p.stop)
	p.mu.Unlock()
	<-p.done
	p.mu.Lock()
	p.stop = nil
}

func (p *progress) drawLocked() {
	if !p.live || p.step == "" {
		return
	}
	w := p.termWidth()
	spin := p.r.NewStyle().Foreground(lipgloss.Color("6")).Render(spinnerFrames[p.frame%len(spinnerFrames)])
	// One cell short of the width: a line that fills the last column makes
	// some terminals wrap before the next \r.
	rest := fitCells(fmt.Sprintf(" %-14s %8s  %s", p.step, formatDuration(time.Since(p.started)), p.msg), w-2)
	fmt.Fprintf(p.w, "\r\x1b[2K%s%s", spin, rest)
}

func (p *progress) clearLocked() {
	if p.live {
		fmt.Fprint(p.w, "\r\x1b[2K")
	}
}

// Close stops the spinner (on interrupt the last step never finishes).
func (p *progress) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopTickerLocked()
	p.clearLocked()
}

func formatDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}

// fitCells is s on one line cut to at most n terminal cells, ending in "…"
// when cut: only for the live line, which is redrawn and must never wrap.
func fitCells(s string, n int) string {
	s = strings.TrimRight(strings.ReplaceAll(s, "\n", " "), " ")
	if lipgloss.Width(s) <= n {
		return s
	}
	r := []rune(s)
	if len(r) > n {
		r = r[:n]
	}
	for len(r) > 0 && lipgloss.Width(string(r))+1 > n {
		r = r[:len(r)-1]
	}
	return string(r) + "…"
}

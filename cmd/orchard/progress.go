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
// with a spinner, the elapsed time and the latest progress message; piped,
// plain lines ("==> step", "    ok step 1.2s"). In GitHub Actions each
// step's full log is folded into a ::group:: after it finishes.
type progress struct {
	w      io.Writer
	live   bool
	github bool
	r      *lipgloss.Renderer

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
		if p.github && ev.Summary.Log != "" && !ev.Summary.Cached && ev.Summary.Status != checks.Skip {
			_ = checksGitHubGroupFile(p.w, ev.Summary.Name+" output", ev.Summary.Log)
		}
		p.step = ""
	}
}

// isMilestone keeps piped output short: only percentages at 25% steps and
// messages that are not percentages at all.
func isMilestone(msg string) bool {
	var pct int
	if _, err := fmt.Sscanf(msg, "[%d%%]", &pct); err == nil {
		return pct%25 == 0
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
	if s.Detail != "" {
		line += "  " + p.r.NewStyle().Faint(true).Render(truncate(s.Detail, 70))
	}
	return line
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
	spin := p.r.NewStyle().Foreground(lipgloss.Color("6")).Render(spinnerFrames[p.frame%len(spinnerFrames)])
	line := fmt.Sprintf("%s %-14s %8s  %s", spin, p.step, formatDuration(time.Since(p.started)), truncate(p.msg, 60))
	fmt.Fprintf(p.w, "\r\x1b[2K%s", line)
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

func truncate(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

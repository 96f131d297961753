//go:build linux

package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/orchardkit/orchard/checks"
	"github.com/orchardkit/orchard/steps"
	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal of cols x rows: the master (what a
// terminal emulator reads) and the slave (what orchard writes to).
func openPTY(t *testing.T, cols, rows uint16) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetWinsize(int(m.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Col: cols, Row: rows}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// screen replays terminal output on a cols-wide screen with auto-wrap, as
// xterm or tmux would: \r, \n, ESC[2K (erase line) and SGR colours; every
// rune one cell. It returns the rows, trailing blanks trimmed.
func screen(out []byte, cols int) []string {
	rows := [][]rune{{}}
	row, col := 0, 0
	put := func(r rune) {
		if col == cols { // deferred wrap: the next character goes below
			row, col = row+1, 0
			if row == len(rows) {
				rows = append(rows, []rune{})
			}
		}
		for len(rows[row]) <= col {
			rows[row] = append(rows[row], ' ')
		}
		rows[row][col] = r
		col++
	}
	for i := 0; i < len(out); {
		switch out[i] {
		case '\r':
			col = 0
			i++
			continue
		case '\n':
			row++
			if row == len(rows) {
				rows = append(rows, []rune{})
			}
			i++
			continue
		case 0x1b:
			j := i + 2
			for j < len(out) && (out[j] < 0x40 || out[j] > 0x7e) {
				j++
			}
			if string(out[i:j+1]) == "\x1b[2K" {
				rows[row] = []rune{}
			}
			i = j + 1
			continue
		}
		r, n := utf8.DecodeRune(out[i:])
		put(r)
		i += n
	}
	var s []string
	for _, r := range rows {
		s = append(s, strings.TrimRight(string(r), " "))
	}
	for len(s) > 0 && s[len(s)-1] == "" {
		s = s[:len(s)-1]
	}
	return s
}

// At 80 columns the live line, redrawn with long CMake messages, never
// wraps: the screen ends with exactly one final line per step.
func TestProgressLiveAt80ColumnsLeavesNoWrappedLines(t *testing.T) {
	master, slave := openPTY(t, 80, 24)
	var got bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&got, master); close(done) }() // ends with EIO once the slave closes

	ios := &IOStreams{ErrOut: slave, ErrTTY: isTerminal(slave), Getenv: func(string) string { return "" }}
	ios.ErrWidth = func() int { return terminalWidth(slave, ios.Getenv) }
	if !ios.liveProgress() || ios.ErrWidth() != 80 {
		t.Fatalf("pty: live %v, width %d", ios.liveProgress(), ios.ErrWidth())
	}
	p := newProgress(slave, ios.liveProgress(), false, renderer(slave, false, ios.Getenv))
	p.width = ios.ErrWidth
	long := "[ 42%] Building CXX object CMakeFiles/orchard-runner-emu.dir/gen/attn_bwd_dq.metal.emu.cpp.o"
	p.Event(steps.Event{Kind: steps.EventStarted, Step: "kernel"})
	for i := range 5 {
		p.Event(steps.Event{Kind: steps.EventProgress, Step: "kernel", Message: fmt.Sprintf("%s (%d)", long, i)})
		time.Sleep(60 * time.Millisecond) // let the spinner redraw too
	}
	p.Event(steps.Event{Kind: steps.EventFinished, Step: "kernel", Summary: checks.StepSummary{Name: "kernel", Status: checks.Pass, DurationMS: 1500, Detail: "built orchard-runner-emu"}})
	p.Event(steps.Event{Kind: steps.EventStarted, Step: "smoke"})
	p.Event(steps.Event{Kind: steps.EventProgress, Step: "smoke", Message: "case 3/44 f32-causal-b2h3-130x70-d64 " + strings.Repeat("x", 100)})
	time.Sleep(150 * time.Millisecond)
	p.Event(steps.Event{Kind: steps.EventFinished, Step: "smoke", Summary: checks.StepSummary{Name: "smoke", Status: checks.Pass, Cached: true,
		CachedAt: "2026-12-01T09:30:00Z", Detail: "44 cases in 0.3s, seed 2215219156753626"}})
	p.Close()
	slave.Close()
	<-done

	rows := screen(got.Bytes(), 80)
	want := []string{
		"✓ kernel             1.5s  built orchard-runner-emu",
		"✓ smoke            cached  44 cases in 0.3s, seed 2215219156753626 · from the",
		"                           run of 2026-12-01 09:30 UTC",
	}
	if strings.Join(rows, "\n") != strings.Join(want, "\n") {
		t.Fatalf("screen at 80 columns:\n%s\nwant:\n%s\nraw: %q", strings.Join(rows, "\n"), strings.Join(want, "\n"), got.String())
	}
	if !strings.Contains(got.String(), "[ 42%] Building CXX") || !strings.Contains(got.String(), "…") {
		t.Fatalf("the live line was not drawn, or not cut: %q", got.String())
	}
}

// TERM=dumb: no spinner, no cursor movement, no colour.
func TestProgressDumbTerminal(t *testing.T) {
	_, slave := openPTY(t, 80, 24)
	env := map[string]string{"TERM": "dumb"}
	ios := &IOStreams{ErrOut: slave, ErrTTY: isTerminal(slave), OutTTY: true, Getenv: func(k string) string { return env[k] }}
	if ios.liveProgress() {
		t.Fatal("TERM=dumb gets the live spinner")
	}
	if decideColor("auto", ios.Getenv, true) {
		t.Fatal("TERM=dumb gets colour")
	}
	var b bytes.Buffer
	p := newProgress(&b, ios.liveProgress(), false, renderer(&b, decideColor("auto", ios.Getenv, true), ios.Getenv))
	p.Event(steps.Event{Kind: steps.EventStarted, Step: "kernel"})
	p.Event(steps.Event{Kind: steps.EventProgress, Step: "kernel", Message: "[ 50%] Building"})
	time.Sleep(150 * time.Millisecond)
	p.Event(steps.Event{Kind: steps.EventFinished, Step: "kernel", Summary: checks.StepSummary{Name: "kernel", Status: checks.Fail, DurationMS: 10, Log: "/b/logs/steps/kernel.log"}})
	p.Close()
	if strings.ContainsAny(b.String(), "\r\x1b") || strings.ContainsAny(b.String(), strings.Join(spinnerFrames, "")) {
		t.Fatalf("dumb terminal output has control sequences or a spinner: %q", b.String())
	}
	if want := "==> kernel\n    [ 50%] Building\n✗ kernel             10ms\n    log: /b/logs/steps/kernel.log\n"; b.String() != want {
		t.Fatalf("got %q, want %q", b.String(), want)
	}
}

// Piped progress is never cut, and a cached step says from which run.
func TestProgressPipedNeverCutsAndSaysCached(t *testing.T) {
	var b bytes.Buffer
	p := newProgress(&b, false, false, plainRenderer(&b))
	detail := "44 cases in 12.3s, seed 4242; worst f32 3.1e-07 (f32-causal-b2h3-130x70-d64), f16 9.8e-04 (f16-full-b1h1-257x129-d128)"
	p.Event(steps.Event{Kind: steps.EventFinished, Step: "smoke", Summary: checks.StepSummary{Name: "smoke", Status: checks.Pass,
		Cached: true, CachedAt: "2026-12-01T09:30:00Z", Detail: detail}})
	want := "✓ smoke            cached  " + detail + " · from the run of 2026-12-01 09:30 UTC\n"
	if b.String() != want {
		t.Fatalf("got  %q\nwant %q", b.String(), want)
	}
}

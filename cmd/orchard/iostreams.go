package main

import (
	"bytes"
	"io"
	"os"
	"strconv"

	"github.com/charmbracelet/lipgloss"
	"github.com/mattn/go-isatty"
	"github.com/muesli/termenv"
	"golang.org/x/sys/unix"
)

// IOStreams is the only way commands reach the terminal: Out for results,
// ErrOut for progress and messages. Tests use testIOStreams and buffers.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	OutTTY bool
	ErrTTY bool

	// OutWidth and ErrWidth are the terminal widths of the streams, in
	// cells (nil or 0: not a terminal, or unknown).
	OutWidth func() int
	ErrWidth func() int

	// Getenv reads the environment (injected so tests control it).
	Getenv func(string) string
}

// systemIOStreams wires the process's own streams.
func systemIOStreams() *IOStreams {
	return &IOStreams{
		In:       os.Stdin,
		Out:      os.Stdout,
		ErrOut:   os.Stderr,
		OutTTY:   isTerminal(os.Stdout),
		ErrTTY:   isTerminal(os.Stderr),
		OutWidth: func() int { return terminalWidth(os.Stdout, os.Getenv) },
		ErrWidth: func() int { return terminalWidth(os.Stderr, os.Getenv) },
		Getenv:   os.Getenv,
	}
}

// terminalWidth asks the terminal behind f for its width (TIOCGWINSZ), each
// call, so a resized window is followed; COLUMNS when the terminal does not
// say; 0 when f is not a terminal.
func terminalWidth(f *os.File, getenv func(string) string) int {
	if !isTerminal(f) {
		return 0
	}
	if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil && ws.Col > 0 {
		return int(ws.Col)
	}
	if n, err := strconv.Atoi(getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	return 80
}

// width is the width of a stream (0 when unknown or not a terminal).
func width(fn func() int) int {
	if fn == nil {
		return 0
	}
	return fn()
}

// liveProgress reports whether progress on stderr may redraw a line: a
// terminal that can move the cursor (not TERM=dumb), outside CI.
func (s *IOStreams) liveProgress() bool {
	return s.ErrTTY && s.Getenv("CI") == "" && !dumbTerminal(s.Getenv)
}

// dumbTerminal is TERM=dumb: no cursor movement, no spinner, no colour.
func dumbTerminal(getenv func(string) string) bool { return getenv("TERM") == "dumb" }

func isTerminal(f *os.File) bool {
	return isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
}

// testIOStreams returns streams backed by buffers, not a terminal.
func testIOStreams(env map[string]string) (*IOStreams, *bytes.Buffer, *bytes.Buffer) {
	out, errOut := &bytes.Buffer{}, &bytes.Buffer{}
	return &IOStreams{
		In:     &bytes.Buffer{},
		Out:    out,
		ErrOut: errOut,
		Getenv: func(k string) string { return env[k] },
	}, out, errOut
}

// decideColor makes the one colour decision of a run, in this order: the
// --color flag (always|never), a non-empty NO_COLOR (off), CLICOLOR_FORCE
// set and not "0" (on), CLICOLOR=0 or TERM=dumb (off), then whether the
// stream is a TTY.
func decideColor(flag string, getenv func(string) string, tty bool) bool {
	switch flag {
	case "always":
		return true
	case "never":
		return false
	}
	if getenv("NO_COLOR") != "" {
		return false
	}
	if v := getenv("CLICOLOR_FORCE"); v != "" && v != "0" {
		return true
	}
	if getenv("CLICOLOR") == "0" || dumbTerminal(getenv) {
		return false
	}
	return tty
}

// colorProfile is the profile handed to lipgloss for a decision: plain text
// when colour is off; otherwise what the terminal declares, at least ANSI.
func colorProfile(on bool, getenv func(string) string) termenv.Profile {
	if !on {
		return termenv.Ascii
	}
	switch {
	case getenv("COLORTERM") == "truecolor" || getenv("COLORTERM") == "24bit":
		return termenv.TrueColor
	case bytes.Contains([]byte(getenv("TERM")), []byte("256color")):
		return termenv.ANSI256
	}
	return termenv.ANSI
}

// renderer builds a lipgloss renderer for w with the decided profile, so
// lipgloss never probes the terminal itself.
func renderer(w io.Writer, on bool, getenv func(string) string) *lipgloss.Renderer {
	r := lipgloss.NewRenderer(w)
	r.SetColorProfile(colorProfile(on, getenv))
	r.SetHasDarkBackground(true)
	return r
}

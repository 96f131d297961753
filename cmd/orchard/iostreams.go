package main

import (
	"bytes"
	"io"
	"os"

	"github.com/charmbracelet/lipgloss"
	"github.com/mattn/go-isatty"
	"github.com/muesli/termenv"
)

// IOStreams is the only way commands reach the terminal: Out for results,
// ErrOut for progress and messages. Tests use testIOStreams and buffers.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	OutTTY bool
	ErrTTY bool

	// Getenv reads the environment (injected so tests control it).
	Getenv func(string) string
}

// systemIOStreams wires the process's own streams.
func systemIOStreams() *IOStreams {
	return &IOStreams{
		In:     os.Stdin,
		Out:    os.Stdout,
		ErrOut: os.Stderr,
		OutTTY: isTerminal(os.Stdout),
		ErrTTY: isTerminal(os.Stderr),
		Getenv: os.Getenv,
	}
}

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
// set and not "0" (on), CLICOLOR=0 (off), then whether the stream is a TTY.
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
	if getenv("CLICOLOR") == "0" {
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

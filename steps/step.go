// Package steps is orchard's step engine and its steps. A step is a small
// typed unit: a name, the inputs that make its cache key, and a Run that
// produces a typed output plus a Result (checklist items). The engine wraps
// every step with the same behaviour — caching, timing, cancellation, logs
// and events — so steps never print anything themselves.
package steps

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/orchardkit/orchard/checks"
)

// Step is the unit the engine runs.
type Step interface {
	// Name is the step's stable id ("toolchain", "shaders", …): the stamp
	// file name, the log file name and the name in the JSON report.
	Name() string
	// Run does the work. Anything it writes to sc.Log lands in
	// <build-dir>/logs/steps/<name>.log. A returned error is a failure of the
	// step (the engine turns it into a failed check); return a Result with
	// failing checks for failures that have evidence and a hint. Return an
	// error wrapping Skip(...) to skip with a reason.
	Run(ctx context.Context, sc *Context) (Result, error)
}

// Cacheable is implemented by steps whose work can be reused. The engine
// computes a key from Key's inputs; when a stamp with the same key exists and
// every recorded output still exists with its recorded hash, the step is not
// run: its Result and its typed output are restored from the stamp.
type Cacheable interface {
	Step
	// Key returns everything the step's work depends on. It is called after
	// the steps before it have run, so it may use their outputs.
	Key(sc *Context) (KeyInputs, error)
	// Output returns a pointer to the step's typed output; the engine saves it
	// in the stamp as JSON and restores it on a cache hit.
	Output() any
}

// KeyInputs is what a cache key is made of. Two runs with equal KeyInputs
// (after the engine reads env values and hashes the files) share a stamp.
type KeyInputs struct {
	// Version of the step's implementation: bump it when Run changes.
	Version string
	// Config is the resolved configuration the step uses (backend, flags…).
	Config map[string]string
	// Commands are the argument vectors the step runs.
	Commands [][]string
	// Env names the environment variables (an explicit allowlist) whose
	// values matter; the engine reads their values into the key.
	Env []string
	// Tools maps a tool to its version (and path): a compiler upgrade reruns.
	Tools map[string]string
	// Files are content hashes the step computed itself, by name (runtime
	// files by their path relative to the runtime root): each is its own
	// key component, so --explain names the file that changed.
	Files map[string]string
	// Inputs are files (or directories, walked) whose contents are hashed.
	Inputs []string
	// Outputs are files the step produces: they must exist and match their
	// recorded hashes for a stamp to be reused.
	Outputs []string
}

// Result is what a step reports: one or more checklist items and a one-line
// detail for the step list.
type Result struct {
	Checks []checks.Check
	Detail string
	// EnvFailure marks a failure of the environment (a tool is missing):
	// the run exits 3 instead of 1.
	EnvFailure bool
}

// Status is the worst status among the result's checks.
func (r Result) Status() checks.Status {
	ss := make([]checks.Status, len(r.Checks))
	for i, c := range r.Checks {
		ss[i] = c.Status
	}
	return checks.Worst(ss...)
}

// Context is what a running step sees.
type Context struct {
	// BuildDir is the absolute build directory.
	BuildDir string
	// Backend is the resolved backend: "emu" or "metal".
	Backend string
	// Log receives the step's full output (also the children's).
	Log io.Writer
	// Verbose asks steps for more evidence.
	Verbose bool
	// Timeout bounds each child process the step runs (0: the step's own).
	Timeout time.Duration
	// Force is the run's --force: steps that keep their own caches (the
	// toolchain's probe cache) ignore them.
	Force bool

	step   string
	events func(Event)
	getenv func(string) string
}

// Progress reports a progress message for the live renderer ("[42%] …").
func (sc *Context) Progress(msg string) {
	if sc.events != nil {
		sc.events(Event{Kind: EventProgress, Step: sc.step, Message: msg})
	}
}

// Getenv reads the environment the engine was given.
func (sc *Context) Getenv(k string) string {
	if sc.getenv == nil {
		return ""
	}
	return sc.getenv(k)
}

// ErrSkip is a step skipped for a reason; it is a result, not a failure.
type ErrSkip struct{ Reason string }

func (e *ErrSkip) Error() string { return "skipped: " + e.Reason }

// Skip returns an error that skips the step with the reason.
func Skip(reason string) error { return &ErrSkip{Reason: reason} }

// Skipf is Skip with formatting.
func Skipf(format string, args ...any) error { return Skip(fmt.Sprintf(format, args...)) }

// IsSkip reports whether err skips a step, and why.
func IsSkip(err error) (string, bool) {
	var s *ErrSkip
	if errors.As(err, &s) {
		return s.Reason, true
	}
	return "", false
}

// EventKind is the kind of an engine event.
type EventKind int

const (
	EventStarted EventKind = iota
	EventProgress
	EventFinished
	// EventWaiting: the engine waits for another run's lock (Message says whose).
	EventWaiting
)

// Event is what renderers consume while a run is going.
type Event struct {
	Kind    EventKind
	Step    string
	Message string
	// Set on EventFinished.
	Summary checks.StepSummary
	Elapsed time.Duration
}

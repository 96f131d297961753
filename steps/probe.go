package steps

// Environment probes: each asks the machine one question (is cmake there and
// new enough? does the C++ compiler really build C++20 with <barrier>? does
// `xcrun metal` run?) by running a command as an argument vector under its
// own timeout, and answers with one checklist item. A probe that cannot run,
// crashes or times out is a failure with its reason, never a silent pass.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/orchardkit/orchard/checks"
	"github.com/orchardkit/orchard/metalkern"
)

// Probe ids: the checklist ids of the probes (stable, part of the JSON).
const (
	ProbeOS       = "toolchain.os"
	ProbeCMake    = "toolchain.cmake"
	ProbeCXX      = "toolchain.cxx"
	ProbeXcrun    = "toolchain.xcrun"
	ProbeXcode    = "toolchain.xcode"
	ProbeMetal    = "toolchain.metal"
	ProbeMetallib = "toolchain.metallib"
	ProbeGPU      = "toolchain.gpu"
	ProbePython   = "toolchain.python3"
	ProbeTorch    = "toolchain.pytorch"
)

// ProbeRunner runs commands for the probes. ExecRunner is the real one; tests
// substitute doubles only for tools that cannot exist on Linux (xcrun,
// system_profiler, sysctl on a Mac).
type ProbeRunner interface {
	// LookPath finds an executable on the PATH the children see.
	LookPath(name string) (string, error)
	// Run runs argv (argv[0] a name or a path) in dir and returns its
	// output. It must return when ctx is done.
	Run(ctx context.Context, dir string, argv ...string) (stdout, stderr []byte, err error)
}

// Fix is how to repair a failed probe on this machine.
type Fix struct {
	// Commands are argument vectors to run in order (`orchard doctor --fix
	// --yes` runs them); empty when the fix is manual.
	Commands [][]string
	// Note is a manual step (after the commands, if any).
	Note string
}

// String renders the fix for people: "apt-get update && apt-get install -y cmake".
func (f Fix) String() string {
	var parts []string
	for _, c := range f.Commands {
		parts = append(parts, strings.Join(c, " "))
	}
	s := strings.Join(parts, " && ")
	switch {
	case s == "":
		return f.Note
	case f.Note != "":
		return s + "; then " + f.Note
	}
	return s
}

// IsZero reports whether there is no fix at all.
func (f Fix) IsZero() bool { return len(f.Commands) == 0 && f.Note == "" }

// ProbeResult is one probe's answer.
type ProbeResult struct {
	// Check is the checklist item (Hint is Fix.String() or advice).
	Check checks.Check
	// Required is set by Probes: false for informational probes, whose
	// failures are reported as warnings.
	Required bool
	// Path of the tool found, Version parsed from its output ("3.25.1"),
	// VersionLine the first line it printed ("g++ (Debian 12.2.0-14) 12.2.0").
	Path, Version, VersionLine string
	// Fix repairs a failure (zero when there is none).
	Fix Fix
	// GPU is set by the GPU probe (when system_profiler answered).
	GPU *GPUInfo
	// Reason is a one-line why for a failure or skip (used in backend reasons).
	Reason string
}

// Failed reports whether the probe failed.
func (r ProbeResult) Failed() bool { return r.Check.Status == checks.Fail }

// Prober runs the probes and memoises their results for the process: the
// backend resolution, the toolchain step and doctor share one Prober, so
// each command runs once. Reset forgets (doctor re-probes after --fix).
type Prober struct {
	Runner ProbeRunner
	// Getenv reads CXX (and nothing else).
	Getenv func(string) string
	// GOOS and GOARCH of the machine (runtime's by default; tests set
	// "darwin" with a fake runner).
	GOOS, GOARCH string
	// OSRelease is the os-release file read to pick the package manager.
	OSRelease string
	// Root: install commands need no sudo.
	Root bool
	// Timeout, when > 0, replaces every probe's own timeout.
	Timeout time.Duration
	// Log, when set, receives each command and its output.
	Log io.Writer
	// RunnerInfo, when set, asks an already built Metal runner for its
	// device (`runner info`, probe_mac.go): on a Mac, what Metal itself
	// reports (supportsFamily, the device name) decides the GPU probe.
	RunnerInfo func(context.Context) (metalkern.Info, error)

	mu   sync.Mutex
	memo map[string]ProbeResult
}

// NewProber returns a Prober for this machine; getenv supplies PATH and CXX
// (nil: the process environment).
func NewProber(getenv func(string) string) *Prober {
	if getenv == nil {
		getenv = os.Getenv
	}
	return &Prober{
		Runner:    ExecRunner{Getenv: getenv},
		Getenv:    getenv,
		GOOS:      runtime.GOOS,
		GOARCH:    runtime.GOARCH,
		OSRelease: "/etc/os-release",
		Root:      os.Geteuid() == 0,
	}
}

// Reset forgets every memoised result.
func (p *Prober) Reset() {
	p.mu.Lock()
	p.memo = nil
	p.mu.Unlock()
}

// Platform is "goos/goarch".
func (p *Prober) Platform() string { return p.GOOS + "/" + p.GOARCH }

func (p *Prober) getenv(k string) string {
	if p.Getenv == nil {
		return ""
	}
	return p.Getenv(k)
}

// once runs probe id and remembers its result until Reset (two concurrent
// first calls may both run it). An interrupted probe is not remembered.
func (p *Prober) once(ctx context.Context, id string, probe func(context.Context) ProbeResult) ProbeResult {
	p.mu.Lock()
	if r, ok := p.memo[id]; ok {
		p.mu.Unlock()
		return r
	}
	p.mu.Unlock()
	r := probe(ctx)
	r.Check.ID = id
	if r.Check.Evidence == nil {
		r.Check.Evidence = []string{}
	}
	if ctx.Err() == nil {
		p.mu.Lock()
		if p.memo == nil {
			p.memo = map[string]ProbeResult{}
		}
		p.memo[id] = r
		p.mu.Unlock()
	}
	return r
}

// exitCoder is a child that ran and ended: *exec.ExitError (ExitCode -1
// when a signal killed it), or a test double's.
type exitCoder interface {
	error
	ExitCode() int
}

// ranCmd is the outcome of one probe command.
type ranCmd struct {
	stdout, stderr string
	// failure is "" on success, else why: "cmake --version timed out after
	// 10s", "… crashed (signal: segmentation fault)", "… exited with status
	// 1: <stderr excerpt>".
	failure string
}

// run runs argv under timeout (or p.Timeout) and describes any failure.
func (p *Prober) run(ctx context.Context, timeout time.Duration, dir string, argv ...string) ranCmd {
	if p.Timeout > 0 {
		timeout = p.Timeout
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, errOut, err := p.Runner.Run(cctx, dir, argv...)
	r := ranCmd{stdout: string(out), stderr: string(errOut)}
	if p.Log != nil {
		fmt.Fprintf(p.Log, "$ %s\n%s%s", strings.Join(argv, " "), out, errOut)
	}
	name := filepath.Base(argv[0])
	if len(argv) > 1 {
		name += " " + strings.Join(argv[1:], " ")
	}
	if len(name) > 80 {
		name = name[:77] + "..."
	}
	var xc exitCoder
	switch {
	case err == nil && cctx.Err() == nil:
		return r
	case ctx.Err() != nil:
		r.failure = name + ": interrupted"
	case errors.Is(cctx.Err(), context.DeadlineExceeded):
		r.failure = fmt.Sprintf("%s timed out after %s", name, timeout)
	case errors.As(err, &xc) && xc.ExitCode() < 0:
		// *exec.ExitError says "signal: segmentation fault".
		r.failure = fmt.Sprintf("%s crashed (%v)", name, err)
	case errors.As(err, &xc):
		r.failure = fmt.Sprintf("%s exited with status %d", name, xc.ExitCode())
	default:
		r.failure = fmt.Sprintf("cannot run %s: %v", name, err)
	}
	if ex := excerpt(r.stderr + "\n" + r.stdout); ex != "" {
		r.failure += ": " + ex
	}
	return r
}

// excerpt picks the informative part of a failed command's output: the
// first line mentioning "error", else the last non-empty line, shortened.
func excerpt(s string) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return ""
	}
	pick := lines[len(lines)-1]
	for _, l := range lines {
		if strings.Contains(strings.ToLower(l), "error") {
			pick = l
			break
		}
	}
	if len(pick) > 240 {
		pick = pick[:237] + "..."
	}
	return pick
}

// firstLine is s's first non-empty line, trimmed.
func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return ""
}

// result builds a ProbeResult with a check.
func result(title string, st checks.Status, evidence ...string) ProbeResult {
	return ProbeResult{Check: checks.Check{Title: title, Status: st, Evidence: evidence}}
}

// fail marks r failed with reason (first evidence line) and fix.
func (r ProbeResult) fail(reason string, fix Fix) ProbeResult {
	r.Check.Status = checks.Fail
	r.Reason = reason
	r.Check.Evidence = append([]string{reason}, r.Check.Evidence...)
	r.Fix = fix
	r.Check.Hint = fix.String()
	return r
}

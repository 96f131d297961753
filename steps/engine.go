package steps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/orchardkit/orchard/checks"
)

// Options configure one engine run.
type Options struct {
	BuildDir string
	Backend  string
	// Who is written into the lock file ("orchard rebuild").
	Who string
	// Force reruns every step, ignoring stamps.
	Force bool
	// NoCache neither reads nor writes stamps (orchard verify).
	NoCache bool
	// NoWait fails at once when another run holds the build dir.
	NoWait  bool
	Verbose bool
	// StepTimeout bounds each child process (0: 10 minutes).
	StepTimeout time.Duration
	Getenv      func(string) string
	// Events receives started/progress/finished events, in order, from the
	// engine's goroutine and the steps' output readers.
	Events func(Event)
}

// Run is what an engine run produced.
type Run struct {
	Steps  []checks.StepSummary
	Checks []checks.Check
	// EnvFailure: a step failed because the environment lacks something.
	EnvFailure bool
	// Failed: at least one step or check failed.
	Failed bool
}

// Engine runs pipelines of steps.
type Engine struct{ Opts Options }

// New returns an engine with opts.
func New(opts Options) *Engine { return &Engine{Opts: opts} }

func (e *Engine) emit(ev Event) {
	if e.Opts.Events != nil {
		e.Opts.Events(ev)
	}
}

// Run takes the build-dir lock and runs the pipeline in order. After a failed
// step the remaining steps are skipped with the reason. On cancellation it
// returns what ran so far and ctx's error; the interrupted step leaves no
// stamp.
func (e *Engine) Run(ctx context.Context, pipeline []Step) (*Run, error) {
	dir := e.Opts.BuildDir
	if dir == "" || !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("engine: build dir %q must be an absolute path", dir)
	}
	release, err := Lock(ctx, dir, e.Opts.Who, e.Opts.NoWait, func(holder string) {
		if holder == "" {
			holder = "another orchard run"
		}
		e.emit(Event{Kind: EventWaiting, Message: fmt.Sprintf("waiting for %s to finish with %s (Ctrl-C to stop; --no-wait fails at once)", holder, dir)})
	})
	if err != nil {
		return nil, err
	}
	defer release()

	r := &Run{}
	blocked := ""
	for _, st := range pipeline {
		if err := ctx.Err(); err != nil {
			return r, err
		}
		if blocked != "" {
			reason := "not run: " + blocked + " failed"
			r.Steps = append(r.Steps, checks.StepSummary{Name: st.Name(), Status: checks.Skip, Detail: reason})
			r.Checks = append(r.Checks, skippedChecks(st, e.Opts.Backend, reason)...)
			e.emit(Event{Kind: EventFinished, Step: st.Name(), Summary: r.Steps[len(r.Steps)-1]})
			continue
		}
		sum, res, err := e.runStep(ctx, st)
		if err != nil {
			// Interrupted: report the step as such and stop.
			sum.Status = checks.Fail
			sum.Detail = "interrupted"
			r.Steps = append(r.Steps, sum)
			e.emit(Event{Kind: EventFinished, Step: st.Name(), Summary: sum})
			return r, err
		}
		r.Steps = append(r.Steps, sum)
		r.Checks = append(r.Checks, res.Checks...)
		if sum.Status == checks.Fail {
			r.Failed = true
			if res.EnvFailure {
				r.EnvFailure = true
			}
			blocked = st.Name()
		}
		e.emit(Event{Kind: EventFinished, Step: st.Name(), Summary: sum, Elapsed: time.Duration(sum.DurationMS) * time.Millisecond})
	}
	return r, nil
}

// Titled steps give their checklist item a human title.
type Titled interface{ Title() string }

func title(st Step) string {
	if t, ok := st.(Titled); ok {
		return t.Title()
	}
	return st.Name()
}

// runStep runs one step with caching, its log file and timing. The error
// is non-nil only when ctx was cancelled.
func (e *Engine) runStep(ctx context.Context, st Step) (checks.StepSummary, Result, error) {
	name := st.Name()
	start := time.Now()
	sum := checks.StepSummary{Name: name}
	e.emit(Event{Kind: EventStarted, Step: name})

	logPath := filepath.Join(e.Opts.BuildDir, "logs", "steps", name+".log")
	sc := &Context{
		BuildDir: e.Opts.BuildDir,
		Backend:  e.Opts.Backend,
		Verbose:  e.Opts.Verbose,
		Timeout:  e.Opts.StepTimeout,
		Force:    e.Opts.Force,
		step:     name,
		events:   e.Opts.Events,
		getenv:   e.Opts.Getenv,
	}
	finish := func(res Result, explain string) (checks.StepSummary, Result, error) {
		sum.DurationMS = time.Since(start).Milliseconds()
		sum.Status = res.Status()
		sum.Detail = res.Detail
		sum.Explain = explain
		return sum, res, nil
	}

	// Cache lookup.
	cs, cacheable := st.(Cacheable)
	var parts map[string]string
	var stale []string
	explain := "ran: the step is not cacheable (always runs)"
	sp := stampPath(e.Opts.BuildDir, name)
	if cacheable && !e.Opts.NoCache {
		in, err := cs.Key(sc)
		if err == nil {
			parts, err = keyParts(name, in, e.Opts.Getenv)
		}
		if err != nil {
			return finish(failed(st, fmt.Errorf("cache key: %w", err)), "ran: cache key could not be computed")
		}
		old, rerr := readStamp(sp)
		if rerr == nil {
			stale = staleOutputs(old, e.Opts.BuildDir)
		}
		switch {
		case e.Opts.Force:
			explain = "ran: --force"
		case rerr != nil && os.IsNotExist(rerr):
			explain = "ran: no stamp (first run in this build dir)"
		case rerr != nil:
			explain = "ran: " + rerr.Error()
		default:
			ok, why := reuse(old, e.Opts.BuildDir, parts)
			explain = why
			if ok && json.Unmarshal(old.Output, cs.Output()) == nil {
				sum.Cached = true
				sum.CachedAt = old.Created.UTC().Format(time.RFC3339)
				sum.Log = logPath
				return finish(Result{Checks: old.Checks, Detail: old.Detail}, why)
			} else if ok {
				explain = "ran: the stamp's output could not be restored"
			}
		}
		// The step reruns: its old stamp no longer stands for anything, and
		// an output that no longer matches it goes, so the build tool must
		// remake it rather than find it up to date.
		_ = os.Remove(sp)
		for _, p := range stale {
			if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
				return finish(failed(st, fmt.Errorf("remove the damaged output %s: %w", p, err)), explain)
			}
		}
	} else if cacheable {
		explain = "ran: caching is off for this command"
	}

	// Run with the step's log.
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return finish(failed(st, fmt.Errorf("log dir: %w", err)), explain)
	}
	lf, err := os.Create(logPath)
	if err != nil {
		return finish(failed(st, fmt.Errorf("step log: %w", err)), explain)
	}
	defer lf.Close()
	sc.Log = lf
	sum.Log = logPath

	res, err := st.Run(ctx, sc)
	if ctx.Err() != nil {
		fmt.Fprintln(lf, "# interrupted")
		sum.DurationMS = time.Since(start).Milliseconds()
		return sum, Result{}, ctx.Err()
	}
	if err != nil {
		if reason, ok := IsSkip(err); ok {
			res = Result{Detail: reason, Checks: []checks.Check{{ID: name, Title: title(st), Status: checks.Skip, Evidence: []string{reason}}}}
		} else {
			fmt.Fprintf(lf, "# failed: %v\n", err)
			res = mergeFailure(st, res, err)
		}
	}
	if len(res.Checks) == 0 {
		res.Checks = []checks.Check{{ID: name, Title: title(st), Status: checks.Pass, Evidence: nonEmpty(res.Detail)}}
	}

	// Stamp only a success, and only once its outputs are hashed.
	if cacheable && !e.Opts.NoCache && err == nil && res.Status() != checks.Fail {
		if serr := e.writeStepStamp(cs, sc, sp, parts, res); serr != nil {
			res.Checks = append(res.Checks, checks.Check{ID: name + ".stamp", Title: "record " + name + " in the cache", Status: checks.Warn,
				Evidence: []string{serr.Error()}, Hint: "the step will rerun next time; check free space and permissions of " + e.Opts.BuildDir})
		}
	}
	return finish(res, explain)
}

func (e *Engine) writeStepStamp(cs Cacheable, sc *Context, path string, parts map[string]string, res Result) error {
	in, err := cs.Key(sc) // outputs may name files the run created
	if err != nil {
		return err
	}
	s := &stamp{BuildDir: e.Opts.BuildDir, Key: keyOf(parts), Parts: parts, Outputs: map[string]string{}, Checks: res.Checks, Detail: res.Detail, Created: time.Now().UTC()}
	for _, o := range in.Outputs {
		h, err := hashFile(o)
		if err != nil {
			return fmt.Errorf("output %s: %w", o, err)
		}
		s.Outputs[o] = h
	}
	if s.Output, err = json.Marshal(cs.Output()); err != nil {
		return err
	}
	return writeStamp(path, s)
}

// Hinter is an error that knows the fix.
type Hinter interface{ Hint() string }

func failed(st Step, err error) Result {
	return mergeFailure(st, Result{}, err)
}

// mergeFailure turns a step's error into a failed check (keeping the checks
// the step did report), with the child's output tail as evidence.
func mergeFailure(st Step, res Result, err error) Result {
	c := checks.Check{ID: st.Name(), Title: title(st), Status: checks.Fail, Evidence: []string{err.Error()}}
	var ee *ExecError
	if errors.As(err, &ee) {
		tail := ee.Tail
		if len(tail) > 12 {
			tail = tail[len(tail)-12:]
		}
		c.Evidence = append(c.Evidence, tail...)
	}
	var h Hinter
	if errors.As(err, &h) {
		c.Hint = h.Hint()
	}
	var others []checks.Check
	for _, x := range res.Checks {
		if x.ID == c.ID {
			c.Evidence = append(x.Evidence, c.Evidence...)
			if c.Hint == "" {
				c.Hint = x.Hint
			}
			continue
		}
		others = append(others, x)
	}
	out := res
	out.Checks = append([]checks.Check{c}, others...)
	if out.Detail == "" {
		out.Detail = err.Error()
	}
	return out
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/orchardkit/orchard/checks"
	"github.com/orchardkit/orchard/steps"
)

// ReportOptions are the output flags shared by rebuild, verify and doctor.
type ReportOptions struct {
	JUnit   string // --junit FILE
	Explain bool   // --explain
	// stepsShown: the live progress already showed each step's final line
	// on the terminal the report goes to.
	stepsShown bool
}

// emitReport prints a finished report: JSON alone on stdout with --json,
// otherwise the terminal checklist; plus a JUnit file on request and, in
// GitHub Actions, annotations and a job summary. Every format is written
// even when one fails; failing to write the JUnit file is an error (exit 1)
// that names the path.
func emitReport(f *Factory, r *checks.Report, ro ReportOptions) error {
	r.Finish()
	io := f.IO
	var junitErr error
	if ro.JUnit != "" {
		if err := writeJUnitFile(ro.JUnit, r); err != nil {
			junitErr = &exitError{code: exitFailed, msg: fmt.Sprintf("could not write the JUnit report to %s: %v", ro.JUnit, err)}
		}
	}
	if io.Getenv("GITHUB_ACTIONS") == "true" {
		// Annotations are workflow commands: they go to stdout unless stdout
		// carries JSON.
		w := io.Out
		if f.Global.JSON {
			w = io.ErrOut
		}
		_ = checks.WriteGitHubAnnotations(w, r, io.Getenv("GITHUB_WORKSPACE"))
		if p := io.Getenv("GITHUB_STEP_SUMMARY"); p != "" {
			if err := checks.AppendGitHubSummary(p, r); err != nil {
				fmt.Fprintf(io.ErrOut, "orchard: could not write the job summary: %v\n", err)
			}
		}
	}
	var err error
	if f.Global.JSON {
		err = checks.WriteJSON(io.Out, r)
	} else {
		err = renderTerminal(f, r, ro)
	}
	if err != nil {
		return err
	}
	return junitErr
}

func renderTerminal(f *Factory, r *checks.Report, ro ReportOptions) error {
	io := f.IO
	if ro.Explain {
		rr := renderer(io.Out, f.Color(), io.Getenv)
		fmt.Fprintln(io.Out, rr.NewStyle().Bold(true).Render("Why each step ran or was reused:"))
		for _, s := range r.Steps {
			why := s.Explain
			if why == "" {
				why = s.Detail
			}
			fmt.Fprintf(io.Out, "  %-14s %s\n", s.Name, why)
		}
		fmt.Fprintln(io.Out)
	}
	return checks.RenderTerminal(io.Out, r, checks.TermOptions{
		Renderer:  renderer(io.Out, f.Color(), io.Getenv),
		Verbose:   f.Global.Verbose,
		Width:     width(io.OutWidth),
		HideSteps: ro.stepsShown && !f.Global.Verbose, // verbose steps carry more
	})
}

// finishReport emits r and returns outcome, the run's own result; when the
// run itself succeeded, a report that could not be written is the error
// (when it failed, the write error is said on stderr and outcome stands).
func finishReport(f *Factory, r *checks.Report, ro ReportOptions, outcome error) error {
	err := emitReport(f, r, ro)
	if err == nil {
		return outcome
	}
	if outcome == nil {
		return err
	}
	fmt.Fprintln(f.IO.ErrOut, "orchard: "+err.Error())
	return outcome
}

// asPreflight is err as a failure before the first step, or nil: a
// steps.PreflightError, or another run holding the lock with --no-wait.
func asPreflight(err error) *steps.PreflightError {
	var pe *steps.PreflightError
	if errors.As(err, &pe) {
		return pe
	}
	var busy *steps.ErrBusy
	if errors.As(err, &busy) {
		holder := busy.Holder
		if holder == "" {
			holder = "another orchard run"
		}
		return steps.Preflight("build-dir.lock", "The build dir is free", "wait for that run to finish, or drop --no-wait to wait for it", true,
			fmt.Sprintf("%s is in use by %s", busy.Dir, holder))
	}
	return nil
}

// reportPreflight turns a failure before the first step into a report with
// that one failed check, in every format asked for, and the exit code the
// failure has (3 for the environment). Other errors are returned as they are.
func reportPreflight(f *Factory, command, backend, dir string, ro ReportOptions, err error) error {
	pe := asPreflight(err)
	if pe == nil {
		return err
	}
	r := &checks.Report{Command: command, Backend: backend, BuildDir: dir, Checks: []checks.Check{pe.Check}}
	outcome := &exitError{code: exitFailed}
	if pe.Env {
		outcome.code = exitEnvironment
	}
	if f.Global.JSON {
		// stdout is the report; people reading the terminal get the reason.
		outcome.msg = pe.Error()
	}
	return finishReport(f, r, ro, outcome)
}

// writeJUnitFile writes atomically, so a failed write leaves no half file;
// the file is world-readable (0644), as CI uploaders expect.
func writeJUnitFile(path string, r *checks.Report) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".junit-*.xml")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := checks.WriteJUnit(tmp, r); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// checksGitHubGroupFile folds a step's log into a collapsible group.
func checksGitHubGroupFile(w io.Writer, title, path string) error {
	return checks.GitHubGroup(w, title, func() error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(w, f)
		return err
	})
}

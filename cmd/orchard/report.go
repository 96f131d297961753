package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/orchardkit/orchard/checks"
)

// ReportOptions are the output flags shared by rebuild, verify and doctor.
type ReportOptions struct {
	JUnit   string // --junit FILE
	Explain bool   // --explain
}

// emitReport prints a finished report: JSON alone on stdout with --json,
// otherwise the terminal checklist; plus a JUnit file on request and, in
// GitHub Actions, annotations and a job summary.
func emitReport(f *Factory, r *checks.Report, ro ReportOptions) error {
	r.Finish()
	io := f.IO
	if ro.JUnit != "" {
		if err := writeJUnitFile(ro.JUnit, r); err != nil {
			fmt.Fprintf(io.ErrOut, "orchard: could not write the JUnit report: %v\n", err)
		}
	}
	if io.Getenv("GITHUB_ACTIONS") == "true" {
		// Annotations are workflow commands: they go to stdout unless stdout
		// carries JSON.
		w := io.Out
		if f.Global.JSON {
			w = io.ErrOut
		}
		_ = checks.WriteGitHubAnnotations(w, r)
		if p := io.Getenv("GITHUB_STEP_SUMMARY"); p != "" {
			if err := checks.AppendGitHubSummary(p, r); err != nil {
				fmt.Fprintf(io.ErrOut, "orchard: could not write the job summary: %v\n", err)
			}
		}
	}
	if f.Global.JSON {
		return checks.WriteJSON(io.Out, r)
	}
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
		Renderer: renderer(io.Out, f.Color(), io.Getenv),
		Verbose:  f.Global.Verbose,
	})
}

// writeJUnitFile writes atomically, so a failed write leaves no half file.
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

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/orchardkit/orchard/checks"
	"github.com/orchardkit/orchard/steps"
	"github.com/spf13/cobra"
)

// DoctorOptions holds `orchard doctor`'s inputs.
type DoctorOptions struct {
	F *Factory
	ReportOptions
	// Fix prints the install commands for what is missing; with Yes it
	// runs them, then probes again.
	Fix bool
	Yes bool
	// Prober probes the machine (nil: one from F.IO.Getenv).
	Prober *steps.Prober
	// RunFix runs one install command, its output streamed to w (nil: runs
	// it with os/exec). Tests replace the package manager here.
	RunFix func(ctx context.Context, argv []string, w io.Writer) error
}

func newDoctorCmd(f *Factory, runF func(*DoctorOptions) error) *cobra.Command {
	opts := &DoctorOptions{F: f}
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check the machine: tools, versions and the backend auto picks",
		Long: `Probe the environment and print a checklist, one item per probe, with the
path and version found, the range required and, when something is missing,
the exact command that fixes it on this machine:

  toolchain.os        the platform (and distribution / macOS version)
  toolchain.cmake     CMake >= ` + steps.MinCMake + `
  toolchain.cxx       a C++ compiler that really builds and runs C++20
                      with <barrier> and <source_location> ($CXX, else
                      c++, g++, clang++)
  toolchain.gpu       macOS: a non-paravirtual Apple GPU with Metal
  toolchain.xcrun     macOS: xcrun
  toolchain.xcode     macOS: Xcode >= ` + steps.MinXcode + ` (not only the Command Line Tools)
  toolchain.metal     macOS: ` + "`xcrun -sdk macosx metal --version`" + ` runs
                      (Xcode 26 needs the Metal Toolchain download)
  toolchain.metallib  macOS: ` + "`xcrun -sdk macosx metallib --version`" + ` runs
  toolchain.python3   information only
  toolchain.pytorch   information only: PyTorch >= ` + steps.MinTorch + ` and MPS availability
  backend             the backend auto picks, and why

The macOS probes are required with --backend metal and informational
otherwise. doctor exits 0 when every required probe passes and 3 when one
fails. See docs/troubleshooting.md for every hint it prints.`,
		Example: `  orchard doctor
  orchard doctor --fix          # print the install commands for what is missing
  orchard doctor --fix --yes    # run them, then probe again
  orchard doctor --json
  orchard doctor --backend metal`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Yes && !opts.Fix {
				return usageErrorf("--yes only applies to --fix: orchard doctor --fix --yes")
			}
			if runF != nil {
				return runF(opts)
			}
			return runDoctor(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&opts.Fix, "fix", false, "print the exact commands that install what is missing")
	fl.BoolVarP(&opts.Yes, "yes", "y", false, "with --fix: run those commands (output on stderr), then probe again")
	fl.StringVar(&opts.JUnit, "junit", "", "also write the checklist as JUnit XML to `FILE`")
	addBackendFlag(cmd, f.Global, backendsRun)
	addReportFlags(cmd, f.Global)
	setExitCodes(cmd, exitCodesDoctor)
	return cmd
}

// diagnosis is one round of probing.
type diagnosis struct {
	report     *checks.Report
	results    []steps.ProbeResult
	auto       string // what auto picks
	autoReason string
	backendErr error // the requested backend cannot run here
	commands   [][]string
	notes      []string
	failed     []steps.ProbeResult // required probes that failed
}

// diagnose runs every probe: the ones the backend needs (required) and the
// informational ones, plus a "backend" item saying what auto picks and why.
func diagnose(ctx context.Context, f *Factory, p *steps.Prober) *diagnosis {
	d := &diagnosis{}
	d.auto, d.autoReason, _ = steps.ResolveBackend(ctx, steps.BackendAuto, p)
	backend := d.auto
	bc := checks.Check{ID: "backend", Title: "Backend: auto picks " + d.auto, Status: checks.Pass,
		Evidence: []string{d.autoReason}}
	if req := f.Global.Backend; req != "" && req != steps.BackendAuto {
		var reason string
		backend, reason, d.backendErr = steps.ResolveBackend(ctx, req, p)
		bc.Title = "Backend: " + req + " requested"
		if d.backendErr != nil {
			backend = req
			bc.Status, bc.Hint = checks.Fail, "use --backend emu"
			reason = d.backendErr.Error()
		}
		bc.Evidence = []string{reason, "auto would pick " + d.auto + ": " + d.autoReason}
	}
	d.results = p.Probes(ctx, backend, true)
	d.report = &checks.Report{Command: "doctor", Backend: backend}
	for _, r := range d.results {
		d.report.Checks = append(d.report.Checks, r.Check)
		if r.Required && r.Failed() {
			d.failed = append(d.failed, r)
		}
	}
	d.report.Checks = append(d.report.Checks, bc)
	d.commands, d.notes = steps.FixPlan(d.results)
	return d
}

func runDoctor(ctx context.Context, opts *DoctorOptions) error {
	f := opts.F
	p := opts.Prober
	if p == nil {
		p = f.newProber()
	}
	d := diagnose(ctx, f, p)
	if err := ctx.Err(); err != nil {
		return err
	}
	// Text that is not the report goes to stderr when stdout carries JSON.
	w, color := f.IO.Out, f.Color()
	if f.Global.JSON {
		w, color = f.IO.ErrOut, f.ErrColor()
	}
	bold := renderer(w, color, f.IO.Getenv).NewStyle().Bold(true)

	ran := false
	if opts.Fix && opts.Yes && len(d.commands) > 0 {
		if !f.Global.JSON {
			// The checklist before the fixes, on screen only: the JUnit
			// file, annotations and JSON report are the final state's.
			if err := checks.RenderTerminal(f.IO.Out, d.report, checks.TermOptions{
				Renderer: renderer(f.IO.Out, f.Color(), f.IO.Getenv), Verbose: f.Global.Verbose,
			}); err != nil {
				return err
			}
			fmt.Fprintln(f.IO.Out)
		}
		if err := runFixes(ctx, f, d.commands, opts.RunFix); err != nil {
			if ctx.Err() != nil {
				return err
			}
			// The report still ends the run: the probes as they were, and
			// the fix that failed.
			d.report.Checks = append(d.report.Checks, checks.Check{ID: "fix", Title: "Install what is missing", Status: checks.Fail,
				Evidence: []string{err.Error()}, Hint: "run that command by hand to see why it failed (docs/troubleshooting.md)"})
			return finishReport(f, d.report, opts.ReportOptions, err)
		}
		ran = true
		p.Reset()
		d = diagnose(ctx, f, p)
		if err := ctx.Err(); err != nil {
			return err
		}
		fmt.Fprintln(w, bold.Render("After the fixes:"))
	}
	reportErr := emitReport(f, d.report, opts.ReportOptions)
	fmt.Fprintf(w, "Backend: auto picks %s (%s)\n", d.auto, d.autoReason)

	if opts.Fix {
		switch {
		case len(d.commands) == 0 && len(d.notes) == 0:
			fmt.Fprintln(w, "Nothing to fix.")
		case opts.Yes && ran:
			printFixPlan(w, bold.Render("Still to do by hand:"), nil, d.notes)
		default:
			printFixPlan(w, bold.Render("To fix, run:"), d.commands, d.notes)
		}
	}
	if len(d.failed) > 0 || d.backendErr != nil {
		if reportErr != nil {
			fmt.Fprintln(f.IO.ErrOut, "orchard: "+reportErr.Error())
		}
		return envErrorf("%s", missingMessage(d, opts.Fix))
	}
	return reportErr
}

// missingMessage names each failed required probe with its fix, once each;
// an impossible --backend comes first and covers the probes it explains.
func missingMessage(d *diagnosis, fixShown bool) string {
	var parts []string
	seen := map[string]bool{}
	if d.backendErr != nil {
		parts = append(parts, d.backendErr.Error())
	}
	for _, r := range d.failed {
		s := r.Reason
		if s == "" {
			s = r.Check.Title + " failed"
		}
		if seen[s] || (d.backendErr != nil && strings.Contains(d.backendErr.Error(), s)) {
			continue
		}
		seen[s] = true
		if h := r.Check.Hint; h != "" {
			s += " (fix: " + h + ")"
		}
		parts = append(parts, s)
	}
	msg := "environment not ready: " + strings.Join(parts, "; ")
	if !fixShown && len(d.commands) > 0 {
		msg += "; 'orchard doctor --fix --yes' runs the install commands"
	}
	return msg
}

func printFixPlan(w io.Writer, heading string, commands [][]string, notes []string) {
	if len(commands) == 0 && len(notes) == 0 {
		return
	}
	fmt.Fprintln(w, heading)
	for _, c := range commands {
		fmt.Fprintln(w, "  "+strings.Join(c, " "))
	}
	for _, n := range notes {
		fmt.Fprintln(w, "  # then: "+n)
	}
}

// runFixes runs the install commands in order, each echoed and streamed to
// stderr; the first failure stops them.
func runFixes(ctx context.Context, f *Factory, commands [][]string, run func(context.Context, []string, io.Writer) error) error {
	if run == nil {
		run = execFix(f.IO.Getenv)
	}
	for _, c := range commands {
		fmt.Fprintf(f.IO.ErrOut, "$ %s\n", strings.Join(c, " "))
		if err := run(ctx, c, f.IO.ErrOut); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return envErrorf("fix failed: %s: %v", strings.Join(c, " "), err)
		}
	}
	return nil
}

// execFix runs an install command as an argument vector, found on the PATH
// getenv gives, without prompts (DEBIAN_FRONTEND=noninteractive).
func execFix(getenv func(string) string) func(context.Context, []string, io.Writer) error {
	return func(ctx context.Context, argv []string, w io.Writer) error {
		r := steps.ExecRunner{Getenv: getenv}
		bin, err := r.LookPath(argv[0])
		if err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, bin, argv[1:]...)
		env := os.Environ()
		if p := getenv("PATH"); p != "" {
			env = append(env, "PATH="+p)
		}
		cmd.Env = append(env, "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = w, w
		return cmd.Run()
	}
}

// fixEnvironment is `orchard rebuild --fix`: it runs the install commands
// for what the backend needs and is missing (output on stderr), then makes
// the prober forget, so the run sees the new tools.
func fixEnvironment(ctx context.Context, f *Factory, p *steps.Prober) error {
	d := diagnose(ctx, f, p)
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(d.commands) > 0 {
		if err := runFixes(ctx, f, d.commands, nil); err != nil {
			return err
		}
	}
	for _, n := range d.notes {
		fmt.Fprintln(f.IO.ErrOut, "orchard: still to do by hand: "+n)
	}
	p.Reset()
	return nil
}

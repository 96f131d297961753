package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/orchardkit/orchard/steps"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Flags are registered per command, only where they mean something: a
// command gets --build-dir, --backend or --json only when it honours it.
// The values land in the Factory's GlobalOptions, which the shared helpers
// (resolveTarget, emitReport, the colour decision) read.

// backendsRun are the backends a build runs on; attn adds reference.
var (
	backendsRun  = []string{"auto", "emu", "metal"}
	backendsAttn = []string{"auto", "emu", "metal", "reference"}
)

// enumValue is a string flag with a fixed set of values: a bad value is a
// usage error naming the choices, and completion offers them.
type enumValue struct {
	p       *string
	allowed []string
}

func newEnum(p *string, def string, allowed []string) *enumValue {
	*p = def
	return &enumValue{p: p, allowed: allowed}
}

func (e *enumValue) String() string { return *e.p }
func (e *enumValue) Type() string   { return "string" }
func (e *enumValue) Set(s string) error {
	if !slices.Contains(e.allowed, s) {
		return fmt.Errorf("must be %s", orList(e.allowed))
	}
	*e.p = s
	return nil
}

// orList is "a, b or c".
func orList(xs []string) string {
	if len(xs) < 2 {
		return strings.Join(xs, "")
	}
	return strings.Join(xs[:len(xs)-1], ", ") + " or " + xs[len(xs)-1]
}

// addBuildDirFlag is --build-dir DIR. It records that the flag was given,
// so that --build-dir "" is a usage error rather than the default.
func addBuildDirFlag(cmd *cobra.Command, g *GlobalOptions) {
	cmd.Flags().Var(buildDirValue{g}, "build-dir", "build in `DIR` (default: <user cache dir>/orchard/<backend>)")
}

// buildDirValue sets GlobalOptions.BuildDir and BuildDirSet.
type buildDirValue struct{ g *GlobalOptions }

func (v buildDirValue) String() string { return v.g.BuildDir }
func (v buildDirValue) Type() string   { return "string" }
func (v buildDirValue) Set(s string) error {
	v.g.BuildDir, v.g.BuildDirSet = s, true
	return nil
}

// addBackendFlag is --backend with the given choices.
func addBackendFlag(cmd *cobra.Command, g *GlobalOptions, backends []string) {
	usage := "backend `NAME`: " + orList(backends) + " (auto: metal on a Mac with a GPU, else emu"
	if slices.Contains(backends, "reference") {
		usage += "; reference: float64 in Go, no runtime"
	}
	usage += ")"
	cmd.Flags().Var(newEnum(&g.Backend, "auto", backends), "backend", usage)
}

// addRuntimeFlag is --runtime DIR.
func addRuntimeFlag(cmd *cobra.Command, g *GlobalOptions) {
	cmd.Flags().StringVar(&g.Runtime, "runtime", "", "use the runtime sources in `DIR` (from 'orchard eject'), not the embedded ones")
}

// addTargetFlags are the flags that select a build: --build-dir,
// --backend and --runtime.
func addTargetFlags(cmd *cobra.Command, g *GlobalOptions, backends []string) {
	addBuildDirFlag(cmd, g)
	addBackendFlag(cmd, g, backends)
	addRuntimeFlag(cmd, g)
}

// addColorFlag is --color.
func addColorFlag(cmd *cobra.Command, g *GlobalOptions) {
	cmd.Flags().Var(newEnum(&g.Color, "auto", []string{"auto", "always", "never"}), "color",
		"colour `WHEN`: auto (on a terminal, unless NO_COLOR), always or never")
}

// addVerboseFlag is -v/--verbose.
func addVerboseFlag(cmd *cobra.Command, g *GlobalOptions) {
	cmd.Flags().BoolVarP(&g.Verbose, "verbose", "v", false, "show more detail")
}

// addJSONFlag is --json, with what it prints on this command.
func addJSONFlag(cmd *cobra.Command, g *GlobalOptions, usage string) {
	cmd.Flags().BoolVar(&g.JSON, "json", false, usage)
}

// addPythonFlag is --python PATH (rebuild, verify): the interpreter of the
// torch steps.
func addPythonFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVar(p, "python", "", "the Python `PATH` (or command) whose PyTorch the torch steps build and test against (default: $"+envPython+", else the first python3 on PATH that has torch, else "+steps.DefaultPython+")")
}

// envPython is --python's default.
const envPython = "ORCHARD_PYTHON"

// python is --python, else $ORCHARD_PYTHON, and which of the two it is.
func (f *Factory) python(flag string) (string, string) {
	if flag != "" {
		return flag, "--python"
	}
	if v := f.IO.Getenv(envPython); v != "" {
		return v, envPython
	}
	return "", ""
}

// checkPython is --python's usage check: an interpreter that does not
// exist is misuse (one without torch is not: its torch steps are skipped).
func (f *Factory) checkPython(flag string) error {
	name, from := f.python(flag)
	if name == "" {
		return nil
	}
	if _, err := steps.LookPython(name, f.IO.Getenv("PATH")); err != nil {
		return usageErrorf("%s %s: %v; give the path of a Python interpreter, e.g. --python /usr/bin/python3", from, name, err)
	}
	return nil
}

// pythonFor is the torch steps' interpreter choice, and --python as a hint
// repeats it.
func (f *Factory) pythonFor(b *steps.Build, flag string) {
	name, from := f.python(flag)
	b.Python = &steps.Python{Flag: name, From: from}
	if from == "--python" {
		if p, err := steps.LookPython(name, f.IO.Getenv("PATH")); err == nil {
			b.RerunFlags = append(b.RerunFlags, "--python "+shellQuote(p))
		}
	}
}

// validateUsage is --validate's help (rebuild, verify).
const validateUsage = "run the runner with Metal API and shader validation on (MTL_DEBUG_LAYER=1, MTL_SHADER_VALIDATION=1; metal backend; emu's own checks are always on)"

// addReportFlags are the flags of a command that ends with a report.
func addReportFlags(cmd *cobra.Command, g *GlobalOptions) {
	addColorFlag(cmd, g)
	addJSONFlag(cmd, g, "print the report as JSON on stdout (all else goes to stderr)")
	addVerboseFlag(cmd, g)
}

// rerunFlags are the flags that selected this build, as a hint repeats
// them: only those set, paths made absolute, each shell-quoted.
func (f *Factory) rerunFlags() []string {
	var out []string
	add := func(flag, v string, path bool) {
		if v == "" {
			return
		}
		if path {
			if a, err := filepath.Abs(v); err == nil {
				v = a
			}
		}
		out = append(out, flag+" "+shellQuote(v))
	}
	g := f.Global
	add("--runtime", g.Runtime, true)
	add("--build-dir", g.BuildDir, true)
	if g.Backend != "" && g.Backend != "auto" {
		add("--backend", g.Backend, false)
	}
	return out
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:@%+=,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Exit-code blocks, shown at the end of the help of the commands that use
// them (the annotation exitCodesKey); exitCode in root.go decides them.
const exitCodesKey = "exit-codes"

const (
	exitCodesPipeline = `Exit codes:
  0    every check passed (warnings and skips allowed)
  1    a check failed
  2    usage error (bad flag or argument)
  3    the environment cannot run the steps: a tool is missing or too old,
       --backend metal without a usable Metal GPU, another run holds the
       build dir (with --no-wait), or (verify) nothing is built yet;
       see 'orchard doctor --fix'
  130  interrupted (Ctrl-C)`

	exitCodesDoctor = `Exit codes:
  0    every required probe passed
  2    usage error (bad flag or argument)
  3    a required probe failed, --backend names a backend this machine
       cannot run, or a command of --fix --yes failed
  130  interrupted (Ctrl-C)`

	exitCodesAttn = `Exit codes:
  0    the outputs were written
  1    the runtime failed to build, or the runner failed
  2    usage error: bad flag or input file (nothing is written)
  3    the environment cannot build the runtime (see 'orchard doctor --fix')
  130  interrupted (Ctrl-C)`
)

const exitCodesBench = `Exit codes:
  0    every case ran
  1    the runtime failed to build, a runner failed, or --counters without
       the counters build
  2    usage error: bad flag or shape (nothing is run)
  3    the environment cannot build the runtime (see 'orchard doctor --fix')
  130  interrupted (Ctrl-C)`

func setExitCodes(cmd *cobra.Command, block string) {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[exitCodesKey] = block
}

// helpWidth is the width every help line fits in.
const helpWidth = 80

// usage is cobra's usage text with the flags wrapped to helpWidth and the
// command's exit codes, when it has them, at the end.
func usage(c *cobra.Command) error {
	w := c.OutOrStderr()
	fmt.Fprint(w, "Usage:")
	if c.Runnable() {
		fmt.Fprintf(w, "\n  %s", c.UseLine())
	}
	if c.HasAvailableSubCommands() {
		fmt.Fprintf(w, "\n  %s [command]", c.CommandPath())
	}
	if c.HasExample() {
		fmt.Fprintf(w, "\n\nExamples:\n%s", c.Example)
	}
	if c.HasAvailableSubCommands() {
		fmt.Fprint(w, "\n\nAvailable Commands:")
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() || sub.Name() == "help" {
				fmt.Fprintf(w, "\n  %-*s %s", sub.NamePadding(), sub.Name(), sub.Short)
			}
		}
	}
	if c.HasAvailableLocalFlags() {
		fmt.Fprintf(w, "\n\nFlags:\n%s", strings.TrimRight(c.LocalFlags().FlagUsagesWrapped(helpWidth), " \n"))
	}
	if c.HasAvailableInheritedFlags() {
		fmt.Fprintf(w, "\n\nGlobal Flags:\n%s", strings.TrimRight(c.InheritedFlags().FlagUsagesWrapped(helpWidth), " \n"))
	}
	if c.HasAvailableSubCommands() {
		fmt.Fprintf(w, "\n\nUse \"%s [command] --help\" for more information about a command.", c.CommandPath())
	}
	if block := c.Annotations[exitCodesKey]; block != "" {
		fmt.Fprintf(w, "\n\n%s", block)
	}
	fmt.Fprintln(w)
	return nil
}

// plainFlagUsages strips the backticks that mark a flag's placeholder
// (`DIR`), for completion descriptions, which show usage text raw.
func plainFlagUsages(c *cobra.Command) {
	strip := func(fl *pflag.Flag) { fl.Usage = strings.ReplaceAll(fl.Usage, "`", "") }
	c.Flags().VisitAll(strip)
	c.PersistentFlags().VisitAll(strip)
	for _, sub := range c.Commands() {
		plainFlagUsages(sub)
	}
}

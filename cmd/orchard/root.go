package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/orchardkit/orchard/metalkern"
	"github.com/orchardkit/orchard/steps"
	"github.com/spf13/cobra"
)

// Exit codes, decided in exactly one place (exitCode) and listed in the
// help of each command that uses them (flags.go) and in docs/json.md.
const (
	exitOK          = 0   // every check passed
	exitFailed      = 1   // a check failed
	exitUsage       = 2   // bad flags, arguments or input files
	exitEnvironment = 3   // the environment cannot run the steps (a tool is missing)
	exitInterrupted = 130 // interrupted (Ctrl-C / SIGTERM)
)

// GlobalOptions are the flags several commands share; each command
// registers only those it honours (flags.go).
type GlobalOptions struct {
	BuildDir string
	Backend  string
	Color    string
	JSON     bool
	Verbose  bool
	Runtime  string

	// BuildDirSet: --build-dir was given (perhaps as "").
	BuildDirSet bool
}

// Factory carries what commands share: the streams and the global flags.
type Factory struct {
	IO     *IOStreams
	Global *GlobalOptions
}

// Color reports the run's one colour decision for stdout.
func (f *Factory) Color() bool {
	return decideColor(f.Global.Color, f.IO.Getenv, f.IO.OutTTY)
}

// ErrColor reports the colour decision for stderr.
func (f *Factory) ErrColor() bool {
	return decideColor(f.Global.Color, f.IO.Getenv, f.IO.ErrTTY)
}

// runtimeSource is the embedded runtime, or --runtime DIR.
func (f *Factory) runtimeSource() (metalkern.Source, error) {
	if f.Global.Runtime == "" {
		return metalkern.Embedded(), nil
	}
	src, err := metalkern.FromDir(f.Global.Runtime)
	if err != nil {
		return src, usageErrorf("--runtime: %v", err)
	}
	return src, nil
}

// newProber returns the environment prober; on a Mac it also asks the Metal
// runner already built in the metal build dir (the --build-dir given, or the
// default one) what Metal reports for the GPU.
func (f *Factory) newProber() *steps.Prober {
	p := steps.NewProber(f.IO.Getenv)
	if p.GOOS == "darwin" {
		if dir, err := f.resolveBuildDir(steps.BackendMetal); err == nil {
			p.RunnerInfo = steps.MetalRunnerInfo(dir)
		}
	}
	return p
}

// resolveBuildDir returns --build-dir, or <user cache dir>/orchard/<backend>
// when the flag is not given. An empty --build-dir is a usage error, never
// a silent fall back to the shared default.
func (f *Factory) resolveBuildDir(backend string) (string, error) {
	if f.Global.BuildDirSet || f.Global.BuildDir != "" {
		if strings.TrimSpace(f.Global.BuildDir) == "" {
			return "", usageErrorf("--build-dir is empty: give a directory, or leave the flag out for the default <user cache dir>/orchard/%s", backend)
		}
		return filepath.Abs(f.Global.BuildDir)
	}
	base := f.IO.Getenv("XDG_CACHE_HOME")
	if base == "" || !filepath.IsAbs(base) {
		var err error
		base, err = os.UserCacheDir()
		if err != nil {
			return "", usageErrorf("cannot find a cache directory (%v): pass --build-dir DIR", err)
		}
	}
	return filepath.Join(base, "orchard", backend), nil
}

// exitError carries an exit code and a message already meant for people.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// usageErrorf is misuse: bad flags, arguments or input (exit 2).
func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitUsage, msg: fmt.Sprintf(format, args...)}
}

// envErrorf is an environment that cannot run the steps (exit 3).
func envErrorf(format string, args ...any) error {
	return &exitError{code: exitEnvironment, msg: fmt.Sprintf(format, args...)}
}

// errSilent ends a run whose output already said what failed (exit 1).
var errSilent = &exitError{code: exitFailed}

// silentExit ends a run with code and nothing more to print.
func silentExit(code int) error { return &exitError{code: code} }

// newRootCmd wires every command. Bare orchard runs rebuild and takes
// rebuild's flags (the same flag set); rebuildF, when not nil, replaces
// rebuild's run (tests capture the options through it).
func newRootCmd(f *Factory, rebuildF ...func(*RebuildOptions) error) *cobra.Command {
	var rf func(*RebuildOptions) error
	if len(rebuildF) > 0 {
		rf = rebuildF[0]
	}
	rebuild := newRebuildCmd(f, rf)
	showVersion := false
	cmd := &cobra.Command{
		Use:   "orchard",
		Short: "Build and verify the Metal flash-attention runtime",
		Long: `orchard builds and verifies the embedded Metal flash-attention runtime end
to end: environment check, shader compile, kernel build, smoke forward and
backward against a float64 reference, and log inspection, reported as a
checklist.

Backends: metal runs the kernels on an Apple GPU; emu compiles the same
.metal sources as C++ and runs them on the CPU (Linux, CI, VMs without a
GPU).

With no command, orchard runs 'orchard rebuild' and takes its flags (below).
Start with 'orchard doctor'.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// With no subcommand orchard rebuilds and verifies the runtime.
		RunE: func(cmd *cobra.Command, args []string) error {
			if showVersion {
				return runVersion(&VersionOptions{F: f})
			}
			if len(args) > 0 {
				return usageErrorf("unknown command %q for \"orchard\"; see orchard --help", args[0])
			}
			return rebuild.RunE(cmd, args)
		},
	}
	cmd.SetUsageFunc(usage)
	cmd.SetOut(f.IO.Out)
	cmd.SetErr(f.IO.ErrOut)
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErrorf("%v\nRun '%s --help' for usage.", err, c.CommandPath())
	})
	// The same flags as rebuild (the same *pflag.Flag values), so that
	// 'orchard --race' is 'orchard rebuild --race'.
	cmd.Flags().AddFlagSet(rebuild.Flags())
	cmd.Flags().BoolVarP(&showVersion, "version", "V", false, "print orchard's version and exit")
	setExitCodes(cmd, exitCodesPipeline)

	// Commands are wired here explicitly, one file each.
	cmd.AddCommand(
		rebuild,
		newVerifyCmd(f, nil),
		newDoctorCmd(f, nil),
		newAttnCmd(f, nil),
		newBenchCmd(f, nil),
		newEjectCmd(f, nil),
		newEnvCmd(f, nil),
		newTailLogsCmd(f, nil),
		newVersionCmd(f, nil),
		newCompletionCmd(f),
	)
	registerCompletions(cmd)
	return cmd
}

// run executes orchard with args and returns the process exit code. It is
// the one place where errors become exit codes and messages.
func run(ctx context.Context, args []string, io *IOStreams) int {
	f := &Factory{IO: io, Global: &GlobalOptions{}}
	root := newRootCmd(f)
	if len(args) > 0 && strings.HasPrefix(args[0], "__complete") {
		plainFlagUsages(root)
	}
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return exitCode(ctx, err, io)
}

func exitCode(ctx context.Context, err error, io *IOStreams) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, context.Canceled) || ctx.Err() != nil {
		fmt.Fprintln(io.ErrOut, "orchard: interrupted")
		return exitInterrupted
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(io.ErrOut, "orchard: "+ee.msg)
		}
		return ee.code
	}
	msg := err.Error()
	// cobra's own argument errors are usage errors.
	if strings.HasPrefix(msg, "unknown command") || strings.Contains(msg, "arg(s)") || strings.HasPrefix(msg, "unknown flag") {
		fmt.Fprintf(io.ErrOut, "orchard: %s\nRun 'orchard --help' for usage.\n", msg)
		return exitUsage
	}
	fmt.Fprintln(io.ErrOut, "orchard: "+msg)
	return exitFailed
}

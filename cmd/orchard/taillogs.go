package main

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/spf13/cobra"

	"github.com/orchardkit/orchard/logs"
	"github.com/orchardkit/orchard/steps"
)

// TailLogsOptions holds `orchard tail-logs`'s inputs.
type TailLogsOptions struct {
	F *Factory

	Files     []string // --file; empty: both logs of the build dir
	Lines     int      // -n
	FromStart bool     // --from-start
	Include   []string // -i
	Exclude   []string // -e
	Highlight []string // -H
	Output    string   // -o text|json (json also with the global --json)
	Raw       bool     // --raw: control characters as they are
	Poll      time.Duration
}

func newTailLogsCmd(f *Factory, runF func(context.Context, *TailLogsOptions) error) *cobra.Command {
	opts := &TailLogsOptions{F: f}
	cmd := &cobra.Command{
		Use:   "tail-logs",
		Short: "Follow the kernel-call and tensor profile logs (like tail -F)",
		Long: `Follow the runner's logs by name, like GNU tail -F: a file that does not
exist yet is waited for; a file truncated, deleted and recreated, rotated by
rename or replaced atomically is followed on, with a note on stderr, and no
line is lost or printed twice. Default files: flashattn_kernel_calls.log and
orchard_tensor_profile.log in <build-dir>/logs (or ORCHARD_KERNEL_LOG and
ORCHARD_TENSOR_PROFILE_LOG when set). The log format is in docs/logs.md.

A partial line is held until its newline (and printed on exit); a line over
1 MiB is cut with a marker; invalid UTF-8 is shown as U+FFFD. Control
characters in a line are shown escaped as less shows them (ESC as ^[, DEL as
^?; tabs kept), on a terminal or not, so a log line cannot drive the
terminal; --raw prints them as they are. A line is printed when it matches
some --include (or there is none) and no --exclude.

Only regular files are followed: a FIFO, device or socket at a given name is
refused at start (exit 2); one that appears later is reported and skipped
until a regular file is there again.

Ctrl-C or SIGTERM ends it: held lines are printed and orchard exits 130.`,
		Example: `  orchard tail-logs
  orchard tail-logs -n 0 -i 'FWD|BWD' -H 'dur_us=\d+'
  orchard tail-logs --file /tmp/k.log --from-start -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Lines < 0 {
				return usageErrorf("-n must be 0 or more, not %d", opts.Lines)
			}
			if opts.FromStart && cmd.Flags().Changed("lines") {
				return usageErrorf("use -n or --from-start, not both")
			}
			switch opts.Output {
			case "text", "json":
			default:
				return usageErrorf("-o must be text or json, not %q", opts.Output)
			}
			if opts.Poll <= 0 {
				return usageErrorf("--poll must be positive, not %v", opts.Poll)
			}
			if _, err := tailLogsPrint(opts); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runTailLogs(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&opts.Files, "file", nil, "follow `PATH` (repeatable; default: both logs of the build dir)")
	fl.IntVarP(&opts.Lines, "lines", "n", 10, "print the last `N` lines of each file first")
	fl.BoolVar(&opts.FromStart, "from-start", false, "print each file from its start instead of the last lines")
	fl.StringArrayVarP(&opts.Include, "include", "i", nil, "print only lines matching `REGEX` (repeatable)")
	fl.StringArrayVarP(&opts.Exclude, "exclude", "e", nil, "do not print lines matching `REGEX` (repeatable; wins over --include)")
	fl.StringArrayVarP(&opts.Highlight, "highlight", "H", nil, "highlight matches of `REGEX` (repeatable; with colour)")
	fl.StringVarP(&opts.Output, "output", "o", "text", "output `FORMAT`: text, or json (one object per line)")
	fl.BoolVar(&opts.Raw, "raw", false, "print control characters in lines as they are (default: escaped, ESC as ^[)")
	fl.DurationVar(&opts.Poll, "poll", logs.DefaultPoll, "safety poll every `DURATION`, for changes the file watcher missed")
	addBuildDirFlag(cmd, f.Global)
	addBackendFlag(cmd, f.Global, backendsRun)
	addColorFlag(cmd, f.Global)
	addJSONFlag(cmd, f.Global, "the same as -o json")
	return cmd
}

// tailLogsPrint compiles the filters: a bad regex is a usage error.
func tailLogsPrint(opts *TailLogsOptions) (logs.PrintOptions, error) {
	p := logs.PrintOptions{JSON: opts.Output == "json" || opts.F.Global.JSON, Raw: opts.Raw}
	compile := func(flag string, srcs []string) ([]*regexp.Regexp, error) {
		var res []*regexp.Regexp
		for _, s := range srcs {
			re, err := regexp.Compile(s)
			if err != nil {
				return nil, usageErrorf("--%s %q: %v", flag, s, err)
			}
			res = append(res, re)
		}
		return res, nil
	}
	var err error
	if p.Include, err = compile("include", opts.Include); err != nil {
		return p, err
	}
	if p.Exclude, err = compile("exclude", opts.Exclude); err != nil {
		return p, err
	}
	if p.Highlight, err = compile("highlight", opts.Highlight); err != nil {
		return p, err
	}
	p.Color = !p.JSON && opts.F.Color()
	return p, nil
}

// tailLogsFiles returns --file, or both logs of the build dir.
func tailLogsFiles(ctx context.Context, opts *TailLogsOptions) ([]string, error) {
	if len(opts.Files) > 0 {
		return opts.Files, nil
	}
	// Following a build dir's logs needs no GPU: an explicit backend only
	// names the build dir; auto resolves as rebuild would.
	backend := opts.F.Global.Backend
	if backend == steps.BackendAuto {
		var err error
		if backend, _, err = steps.ResolveBackend(ctx, backend, opts.F.newProber()); err != nil {
			return nil, envErrorf("%v", err)
		}
	}
	dir, err := opts.F.resolveBuildDir(backend)
	if err != nil {
		return nil, err
	}
	getenv := opts.F.IO.Getenv
	return []string{logs.KernelLogPath(dir, getenv), logs.ProfileLogPath(dir, getenv)}, nil
}

func runTailLogs(ctx context.Context, opts *TailLogsOptions) error {
	files, err := tailLogsFiles(ctx, opts)
	if err != nil {
		return err
	}
	pr, err := tailLogsPrint(opts)
	if err != nil {
		return err
	}
	fl, err := logs.NewFollower(logs.FollowOptions{
		Files: files, Lines: opts.Lines, FromStart: opts.FromStart, Poll: opts.Poll, Print: pr,
	}, opts.F.IO.Out, opts.F.IO.ErrOut)
	if err != nil {
		return usageErrorf("tail-logs: %v", err)
	}
	// On Ctrl-C Run returns ctx.Err(): exitCode turns it into 130. Run may
	// be stuck in a write to a stdout nobody reads (a paused pager): after
	// tailLogsGrace the command returns anyway and the process exits.
	done := make(chan error, 1)
	go func() { done <- fl.Run(ctx) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		select {
		case err = <-done:
		case <-time.After(tailLogsGrace):
			return ctx.Err()
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return fmt.Errorf("tail-logs: %w", err)
	}
	return nil
}

// tailLogsGrace is how long Ctrl-C waits for held lines to be printed.
const tailLogsGrace = time.Second

package main

import (
	"errors"
	"fmt"

	"github.com/orchardkit/orchard/metalkern"
	"github.com/spf13/cobra"
)

// EjectOptions holds `orchard eject`'s inputs.
type EjectOptions struct {
	F     *Factory
	Dir   string
	Force bool
}

func newEjectCmd(f *Factory, runF func(*EjectOptions) error) *cobra.Command {
	opts := &EjectOptions{F: f}
	cmd := &cobra.Command{
		Use:   "eject DIR",
		Short: "Write the embedded runtime's sources to DIR for editing",
		Long: `Write the embedded runtime — kernels (.metal), the params header, the emu shim
and launcher, the hosts and CMakeLists.txt — to DIR. Edit them, then pass
--runtime DIR to any command to use them instead of the embedded copy:

  orchard eject ./runtime
  $EDITOR ./runtime/kernels/attn_fwd.metal
  orchard rebuild --runtime ./runtime

Cache keys follow the files' contents, so after editing one .metal file only
the steps that depend on it run again. eject refuses a non-empty DIR unless
--force (which overwrites the runtime's files and leaves others alone).`,
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return nil, cobra.ShellCompDirectiveFilterDirs
		},
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErrorf("eject takes one directory, e.g. 'orchard eject ./runtime'")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Dir = args[0]
			if runF != nil {
				return runF(opts)
			}
			return runEject(opts)
		},
	}
	cmd.Flags().BoolVar(&opts.Force, "force", false, "write into a non-empty directory (overwrites the runtime's files only)")
	return cmd
}

func runEject(opts *EjectOptions) error {
	files, err := metalkern.Embedded().Eject(opts.Dir, opts.Force)
	if errors.Is(err, metalkern.ErrNotEmpty) {
		return usageErrorf("%s is not empty: choose an empty directory, or pass --force to overwrite the runtime's files there", opts.Dir)
	}
	if err != nil {
		return fmt.Errorf("eject: %w", err)
	}
	fmt.Fprintf(opts.F.IO.ErrOut, "wrote %d files to %s; use them with --runtime %s\n", len(files), opts.Dir, opts.Dir)
	return nil
}

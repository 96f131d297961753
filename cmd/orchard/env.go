package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/orchardkit/orchard/steps"
	"github.com/spf13/cobra"
)

// EnvOptions holds `orchard env`'s inputs.
type EnvOptions struct {
	F *Factory
}

// envReport is `orchard env --json`: the variables, and what they point at.
type envReport struct {
	// Env holds the variables to set, by name (PYTHONPATH holds only the
	// package's directory: prepend it to the one you have).
	Env      map[string]string `json:"env"`
	Library  string            `json:"library"`
	Package  string            `json:"package_dir"`
	Python   string            `json:"python"`
	Torch    string            `json:"torch"`
	Backend  string            `json:"backend"`
	BuildDir string            `json:"build_dir"`
}

func newEnvCmd(f *Factory, runF func(*EnvOptions) error) *cobra.Command {
	opts := &EnvOptions{F: f}
	cmd := &cobra.Command{
		Use:   "env",
		Short: "Print the shell lines that make 'import orchard_ops' work",
		Long: `Print the shell lines that let your Python import the orchard_ops package
built by 'orchard rebuild' (its torch-extension step) in the build dir:
PYTHONPATH gains the package's directory and ORCHARD_OPS_LIBRARY names the
op library. Evaluate them in your shell:

  eval "$(orchard env)"
  /usr/bin/python3 -c 'import orchard_ops'

Use the interpreter the library was built for (the report of the rebuild
names it; --python chooses it). --json prints the same as one JSON object
for tools. When the build dir has no op library yet, env says so (exit 3)
and prints nothing on stdout.`,
		Example: `  eval "$(orchard env)"
  eval "$(orchard env --build-dir /tmp/b)"
  orchard env --json | jq -r .library`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(opts)
			}
			return runEnv(cmd.Context(), opts)
		},
	}
	addBuildDirFlag(cmd, f.Global)
	addBackendFlag(cmd, f.Global, backendsRun)
	addJSONFlag(cmd, f.Global, "print the variables and what they point at as JSON on stdout")
	setExitCodes(cmd, exitCodesEnv)
	return cmd
}

const exitCodesEnv = `Exit codes:
  0    the lines were printed
  2    usage error (bad flag or argument)
  3    the build dir has no op library yet (run 'orchard rebuild' with
       PyTorch installed for the interpreter first)`

func runEnv(ctx context.Context, opts *EnvOptions) error {
	f := opts.F
	backend, _, err := steps.ResolveBackend(ctx, f.Global.Backend, f.newProber())
	if err != nil {
		return envErrorf("%v", err)
	}
	dir, err := f.resolveBuildDir(backend)
	if err != nil {
		return err
	}
	var ext steps.TorchExtOut
	err = steps.LoadOutput(dir, "torch-extension", &ext)
	rebuild := "orchard rebuild" + flagsText(f.rerunFlags())
	switch {
	case errors.Is(err, os.ErrNotExist):
		return envErrorf("no op library in %s: the %s backend was never rebuilt there; run '%s' first (with PyTorch for the interpreter: --python PATH)", dir, backend, rebuild)
	case err != nil:
		return envErrorf("the op library in %s cannot be used (%v): run '%s'", dir, err, rebuild)
	case ext.Library == "":
		why := ext.Python.Problem
		if why == "" {
			why = "the torch-extension step did not build it"
		}
		return envErrorf("no op library in %s: %s; %s, then run '%s'", dir, why, steps.TorchFix, rebuild)
	}
	if f.Global.JSON {
		r := envReport{
			Env:     map[string]string{"PYTHONPATH": ext.PackageDir, steps.EnvOpsLibrary: ext.Library},
			Library: ext.Library, Package: ext.PackageDir, Python: ext.Python.Path, Torch: ext.Python.Torch,
			Backend: backend, BuildDir: dir,
		}
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(f.IO.Out, "%s\n", b)
		return err
	}
	fmt.Fprintf(f.IO.Out, "# orchard_ops from %s, built for %s (PyTorch %s)\n", dir, ext.Python.Path, ext.Python.Torch)
	fmt.Fprintf(f.IO.Out, "export PYTHONPATH=%s\"${PYTHONPATH:+:$PYTHONPATH}\"\n", shellQuote(ext.PackageDir))
	fmt.Fprintf(f.IO.Out, "export %s=%s\n", steps.EnvOpsLibrary, shellQuote(ext.Library))
	return nil
}

// flagsText is " --a x --b y" for a hint (or "").
func flagsText(flags []string) string {
	s := ""
	for _, fl := range flags {
		s += " " + fl
	}
	return s
}

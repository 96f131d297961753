package main

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func newCompletionCmd(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish|powershell",
		Short: "Print a shell completion script",
		Long: `Print a shell completion script: commands, flags, flag values (--backend,
--color, -o) and the files or directories a flag takes.

bash needs the bash-completion package (apt install bash-completion; on
macOS, brew install bash-completion@2 and the line brew prints for
~/.bash_profile). Then load the script in this shell:

  source <(orchard completion bash)

or install it for every new shell:

  orchard completion bash > ~/.local/share/bash-completion/completions/orchard

zsh (with compinit on), fish and PowerShell:

  orchard completion zsh > "${fpath[1]}/_orchard"
  orchard completion fish > ~/.config/fish/completions/orchard.fish
  orchard completion powershell | Out-String | Invoke-Expression

Start a new shell afterwards.`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"bash", "zsh", "fish", "powershell"},
		RunE: func(cmd *cobra.Command, args []string) error {
			root := cmd.Root()
			out := f.IO.Out
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(out, true)
			case "zsh":
				return root.GenZshCompletion(out)
			case "fish":
				return root.GenFishCompletion(out, true)
			case "powershell":
				return root.GenPowerShellCompletionWithDesc(out)
			}
			return usageErrorf("unknown shell %q: use bash, zsh, fish or powershell", args[0])
		},
	}
}

// valueHelp describes each choice of an enum flag in completion.
var valueHelp = map[string]map[string]string{
	"backend": {
		"auto":      "metal on a Mac with a usable GPU, else emu",
		"emu":       "the .metal kernels compiled as C++, on the CPU",
		"metal":     "the Apple GPU",
		"reference": "float64 in Go, no runtime",
	},
	"color": {
		"auto":   "colour on a terminal, unless NO_COLOR is set",
		"always": "always colour",
		"never":  "never colour",
	},
	"output": {
		"text": "the log lines as they are",
		"json": "one JSON object per line",
	},
}

// Flags whose value is a directory, or a file (with the extensions offered).
var (
	dirFlags  = map[string]bool{"build-dir": true, "runtime": true, "out": true}
	fileFlags = map[string][]string{"q": {"npy"}, "k": {"npy"}, "v": {"npy"}, "do": {"npy"}, "junit": nil, "file": nil}
)

// registerCompletions gives every flag of every command under root its
// value completion: the choices of enum flags (and tail-logs' -o),
// directories or files for path flags, and nothing (no file names) for the
// other flags that take a value.
func registerCompletions(root *cobra.Command) {
	done := map[*pflag.Flag]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(fl *pflag.Flag) {
			if done[fl] || fl.Value.Type() == "bool" {
				return
			}
			done[fl] = true
			var choices []string
			if e, ok := fl.Value.(*enumValue); ok {
				choices = e.allowed
			} else if fl.Name == "output" {
				choices = []string{"text", "json"}
			}
			switch exts, isFile := fileFlags[fl.Name]; {
			case choices != nil:
				var comps []string
				for _, v := range choices {
					comps = append(comps, cobra.CompletionWithDesc(v, valueHelp[fl.Name][v]))
				}
				_ = c.RegisterFlagCompletionFunc(fl.Name, cobra.FixedCompletions(comps, cobra.ShellCompDirectiveNoFileComp))
			case dirFlags[fl.Name]:
				_ = c.MarkFlagDirname(fl.Name)
			case isFile:
				_ = c.MarkFlagFilename(fl.Name, exts...)
			default:
				_ = c.RegisterFlagCompletionFunc(fl.Name, cobra.NoFileCompletions)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

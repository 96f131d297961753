package main

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// VersionOptions holds `orchard version`'s inputs.
type VersionOptions struct {
	F *Factory
}

func newVersionCmd(f *Factory, runF func(*VersionOptions) error) *cobra.Command {
	opts := &VersionOptions{F: f}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print orchard's version (also: orchard --version)",
		Long: `Print orchard's version, the commit it was built from when known, and the
Go version and platform. A release build says what it was stamped with; a
'go install …@vX.Y.Z' build says vX.Y.Z; a build in a git checkout says its
revision and whether the checkout was modified; otherwise it says devel.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(opts)
			}
			return runVersion(opts)
		},
	}
	addJSONFlag(cmd, f.Global, "print the version as JSON")
	return cmd
}

// buildVersion is what orchard knows about its own build.
type buildVersion struct {
	Version  string `json:"version"`  // v1.2.3, a Go pseudo-version, or "devel"
	Commit   string `json:"commit"`   // the VCS revision; "" when unknown
	Date     string `json:"date"`     // release: build date; checkout: commit time; "" when unknown
	Modified bool   `json:"modified"` // the checkout had uncommitted changes
	Go       string `json:"go"`
	OS       string `json:"os"`
	Arch     string `json:"arch"`
}

// currentVersion is the release stamp (-ldflags -X main.version=…) when
// there is one, else what the Go toolchain recorded in the binary.
func currentVersion() buildVersion {
	if version != "dev" {
		v := platform(buildVersion{Version: version})
		if commit != "none" {
			v.Commit = commit
		}
		if date != "unknown" {
			v.Date = date
		}
		return v
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return platform(versionFromBuildInfo(bi))
}

func platform(v buildVersion) buildVersion {
	v.Go, v.OS, v.Arch = runtime.Version(), runtime.GOOS, runtime.GOARCH
	return v
}

// versionFromBuildInfo reads the module version (set by 'go install
// …@v1.2.3', or a pseudo-version in a checkout) and the VCS stamp of a
// checkout build. With neither (-buildvcs=false, no build info) it is
// "devel".
func versionFromBuildInfo(bi *debug.BuildInfo) buildVersion {
	v := buildVersion{Version: "devel"}
	if bi == nil {
		return v
	}
	if mv := bi.Main.Version; mv != "" && mv != "(devel)" {
		v.Version = mv
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
			if len(v.Commit) > 12 {
				v.Commit = v.Commit[:12]
			}
		case "vcs.time":
			v.Date = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// String is the one line `orchard version` prints.
func (v buildVersion) String() string {
	var parts []string
	switch {
	case v.Commit != "":
		c := "commit " + v.Commit
		if v.Modified {
			c += ", modified"
		}
		parts = append(parts, c)
	case v.Version == "devel":
		parts = append(parts, "no VCS information")
	}
	if v.Date != "" {
		parts = append(parts, v.Date)
	}
	parts = append(parts, v.Go, v.OS+"/"+v.Arch)
	return fmt.Sprintf("orchard %s (%s)", v.Version, strings.Join(parts, ", "))
}

func runVersion(opts *VersionOptions) error {
	out := opts.F.IO.Out
	v := currentVersion()
	if opts.F.Global.JSON {
		return json.NewEncoder(out).Encode(v)
	}
	_, err := fmt.Fprintln(out, v.String())
	return err
}

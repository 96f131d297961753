package steps

import (
	"bufio"
	"os"
	"strings"

	"github.com/orchardkit/orchard/checks"
)

// Package managers the fixes are written for.
const (
	pmApt  = "apt-get"
	pmDnf  = "dnf"
	pmBrew = "brew"
)

// Distro is what /etc/os-release says about a Linux machine.
type Distro struct {
	ID     string   // "debian", "ubuntu", "fedora"
	Like   []string // ID_LIKE words
	Pretty string   // PRETTY_NAME
}

// ParseOSRelease reads os-release content (KEY=value lines, values
// optionally quoted).
func ParseOSRelease(content string) Distro {
	var d Distro
	sc := bufio.NewScanner(strings.NewReader(content))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			continue
		}
		v = strings.Trim(v, `"'`)
		switch k {
		case "ID":
			d.ID = strings.ToLower(v)
		case "ID_LIKE":
			d.Like = strings.Fields(strings.ToLower(v))
		case "PRETTY_NAME":
			d.Pretty = v
		}
	}
	return d
}

// distro reads p.OSRelease (zero Distro when unreadable or not Linux).
func (p *Prober) distro() Distro {
	if p.GOOS != "linux" || p.OSRelease == "" {
		return Distro{}
	}
	b, err := os.ReadFile(p.OSRelease)
	if err != nil {
		return Distro{}
	}
	return ParseOSRelease(string(b))
}

// packageManager names how this machine installs packages ("" unknown).
func (p *Prober) packageManager() string {
	if p.GOOS == "darwin" {
		return pmBrew
	}
	d := p.distro()
	for _, id := range append([]string{d.ID}, d.Like...) {
		switch id {
		case "debian", "ubuntu":
			return pmApt
		case "fedora", "rhel", "centos":
			return pmDnf
		}
	}
	return ""
}

// install returns the commands installing pkg with this machine's package
// manager; note is the fallback advice when the manager is unknown.
func (p *Prober) install(pkgs map[string]string, note string) Fix {
	pm := p.packageManager()
	pkg, ok := pkgs[pm]
	if !ok || pkg == "" {
		return Fix{Note: note}
	}
	sudo := func(argv ...string) []string {
		if p.Root {
			return argv
		}
		return append([]string{"sudo"}, argv...)
	}
	switch pm {
	case pmApt:
		return Fix{Commands: [][]string{sudo("apt-get", "update"), sudo("apt-get", "install", "-y", pkg)}}
	case pmDnf:
		return Fix{Commands: [][]string{sudo("dnf", "install", "-y", pkg)}}
	case pmBrew:
		return Fix{Commands: [][]string{{"brew", "install", pkg}}}
	}
	return Fix{Note: note}
}

// Fixes for the probes, per machine.

func (p *Prober) fixCMakeMissing() Fix {
	return p.install(map[string]string{pmApt: "cmake", pmDnf: "cmake", pmBrew: "cmake"},
		"install CMake >= "+MinCMake+" with your package manager or from https://cmake.org/download/")
}

func (p *Prober) fixCMakeOld() Fix {
	// Distribution packages may be older still: point at Kitware's builds.
	return Fix{Note: "install CMake >= " + MinCMake + " from https://cmake.org/download/ (or `pipx install cmake`) and put it first on PATH"}
}

func (p *Prober) fixCXXMissing() Fix {
	if p.GOOS == "darwin" {
		return Fix{Commands: [][]string{{"xcode-select", "--install"}}}
	}
	return p.install(map[string]string{pmApt: "g++", pmDnf: "gcc-c++"},
		"install g++ >= 11 or clang++ >= 15 with your package manager")
}

func (p *Prober) fixCXXOld() Fix {
	if p.GOOS == "darwin" {
		return Fix{Note: "install Xcode 15 or newer (Apple clang 15 has <barrier> and <source_location>), or set CXX to such a compiler"}
	}
	f := p.install(map[string]string{pmApt: "g++-12", pmDnf: "gcc-c++"},
		"install g++ >= 11 or clang++ >= 15")
	if p.packageManager() == pmApt {
		f.Note = "export CXX=g++-12"
	} else if f.Note == "" {
		f.Note = "set CXX to the new compiler"
	} else {
		f.Note += ", then set CXX to it"
	}
	return f
}

func fixXcodeSelect() Fix {
	return Fix{Commands: [][]string{{"xcode-select", "--install"}}}
}

func fixFullXcode() Fix {
	return Fix{Note: "install Xcode from the App Store, then `sudo xcode-select -s /Applications/Xcode.app/Contents/Developer` (the Command Line Tools have no Metal compiler)"}
}

func fixMetalToolchain() Fix {
	return Fix{Commands: [][]string{{"xcodebuild", "-downloadComponent", "MetalToolchain"}}}
}

// FixPlan merges the fixes of failed probes into the commands to run, in
// order, without duplicates, package-index updates ("apt-get update") first;
// notes are the manual steps.
func FixPlan(results []ProbeResult) (commands [][]string, notes []string) {
	seen := map[string]bool{}
	var updates, rest [][]string
	for _, r := range results {
		if r.Check.Status != checks.Fail && r.Check.Status != checks.Warn {
			continue
		}
		for _, c := range r.Fix.Commands {
			k := strings.Join(c, "\x00")
			if seen[k] {
				continue
			}
			seen[k] = true
			if isIndexUpdate(c) {
				updates = append(updates, c)
			} else {
				rest = append(rest, c)
			}
		}
		if n := r.Fix.Note; n != "" && !seen["note:"+n] {
			seen["note:"+n] = true
			notes = append(notes, n)
		}
	}
	return append(updates, rest...), notes
}

func isIndexUpdate(argv []string) bool {
	if len(argv) > 0 && argv[0] == "sudo" {
		argv = argv[1:]
	}
	return len(argv) == 2 && argv[0] == pmApt && argv[1] == "update"
}

package steps

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/orchardkit/orchard/checks"
	"github.com/orchardkit/orchard/internal/proc"
)

// Probe timeouts (Prober.Timeout overrides them all).
const (
	versionTimeout  = 10 * time.Second
	compileTimeout  = 2 * time.Minute
	profileTimeout  = 30 * time.Second
	importTimeout   = time.Minute
	cxxProbeMarker  = "orchard-cxx-ok 1"
	cxxProbeSrcName = "probe.cpp"
)

// cxxProbeSource is what the compiler probe builds and runs: the emu backend
// needs std::barrier (threadgroup barriers) and std::source_location
// (diagnostics that point at the .metal line).
const cxxProbeSource = `// orchard toolchain probe: C++20 <barrier> and <source_location>.
#include <barrier>
#include <cstdio>
#include <source_location>
#include <thread>

int main() {
  std::barrier sync(2);
  int phase = 0;
  std::thread t([&] { sync.arrive_and_wait(); phase += 1; sync.arrive_and_wait(); });
  sync.arrive_and_wait();
  sync.arrive_and_wait();
  t.join();
  auto loc = std::source_location::current();
  std::printf("orchard-cxx-ok %d line %u\n", phase, static_cast<unsigned>(loc.line()));
  return phase == 1 ? 0 : 1;
}
`

// CXXFlags are the flags the compiler probe (and the emu build) rely on.
var CXXFlags = []string{"-std=c++20", "-pthread"}

// OS reports the platform (and the distribution or macOS version).
func (p *Prober) OS(ctx context.Context) ProbeResult {
	return p.once(ctx, ProbeOS, func(ctx context.Context) ProbeResult {
		r := result("Operating system", checks.Pass, "platform: "+p.Platform())
		switch p.GOOS {
		case "linux":
			if d := p.distro(); d.Pretty != "" {
				r.Check.Evidence = append(r.Check.Evidence, "distribution: "+d.Pretty)
				r.Version = d.Pretty
			}
		case "darwin":
			c := p.run(ctx, versionTimeout, "", "sw_vers", "-productVersion")
			if c.failure != "" {
				return r.fail(c.failure, Fix{})
			}
			r.Version = "macOS " + firstLine(c.stdout)
			r.Check.Evidence = append(r.Check.Evidence, "version: "+r.Version)
		default:
			return r.fail(fmt.Sprintf("unsupported OS %s: orchard runs on linux and darwin", p.GOOS), Fix{})
		}
		return r
	})
}

// CMake checks that cmake runs and is at least MinCMake.
func (p *Prober) CMake(ctx context.Context) ProbeResult {
	return p.once(ctx, ProbeCMake, func(ctx context.Context) ProbeResult {
		r := result("CMake >= "+MinCMake, checks.Pass)
		req := "required: >= " + MinCMake
		path, err := p.Runner.LookPath("cmake")
		if err != nil {
			r.Check.Evidence = append(r.Check.Evidence, req)
			return r.fail("cmake not found on PATH", p.fixCMakeMissing())
		}
		r.Path = path
		c := p.run(ctx, versionTimeout, "", path, "--version")
		if c.failure != "" {
			r.Check.Evidence = append(r.Check.Evidence, "path: "+path, req)
			return r.fail(c.failure, p.fixCMakeMissing())
		}
		v, err := ParseCMakeVersion(c.stdout)
		if err != nil {
			r.Check.Evidence = append(r.Check.Evidence, "path: "+path, req)
			return r.fail(err.Error(), p.fixCMakeMissing())
		}
		r.Version, r.VersionLine = v, firstLine(c.stdout)
		r.Check.Evidence = append(r.Check.Evidence, "found: "+v, req, "path: "+path)
		ok, err := VersionAtLeast(v, MinCMake)
		switch {
		case err != nil:
			return r.fail(err.Error(), p.fixCMakeMissing())
		case !ok:
			return r.fail(fmt.Sprintf("cmake %s is older than %s", v, MinCMake), p.fixCMakeOld())
		}
		return r
	})
}

// CXX finds a C++ compiler that really builds and runs a C++20 program
// using <barrier> and <source_location>: $CXX when set, else the first of
// c++, g++, clang++ that does.
// cxxProbeDirName names the compile probe's temp dirs (see proc.MkdirTemp).
const cxxProbeDirName = "orchard-cxx-probe"

func (p *Prober) CXX(ctx context.Context) ProbeResult {
	return p.once(ctx, ProbeCXX, func(ctx context.Context) ProbeResult {
		r := result("C++20 compiler", checks.Pass)
		req := "required: compiles and runs C++20 with <barrier> and <source_location> (" + strings.Join(CXXFlags, " ") + ")"
		var candidates [][]string
		envCXX := strings.TrimSpace(p.getenv("CXX"))
		if envCXX != "" {
			candidates = [][]string{strings.Fields(envCXX)}
		} else {
			candidates = [][]string{{"c++"}, {"g++"}, {"clang++"}}
		}
		proc.SweepTemp("", cxxProbeDirName) // probes of killed runs
		dir, err := proc.MkdirTemp("", cxxProbeDirName)
		if err != nil {
			return r.fail("cannot create a temp dir for the compile probe: "+err.Error(), Fix{})
		}
		defer os.RemoveAll(dir)
		if err := os.WriteFile(filepath.Join(dir, cxxProbeSrcName), []byte(cxxProbeSource), 0o644); err != nil {
			return r.fail("cannot write the compile probe: "+err.Error(), Fix{})
		}

		var tried []string
		found := false
		for _, cand := range candidates {
			path, err := p.Runner.LookPath(cand[0])
			if err != nil {
				tried = append(tried, cand[0]+": not found on PATH")
				continue
			}
			found = true
			line, ok, why := p.tryCompiler(ctx, dir, path, cand[1:])
			if !ok {
				tried = append(tried, path+": "+why)
				continue
			}
			r.Path, r.VersionLine = path, line
			_, r.Version = ParseCompilerVersion(line)
			ev := "path: " + path
			if real, err := filepath.EvalSymlinks(path); err == nil && real != path {
				ev += " (-> " + real + ")"
			}
			if envCXX != "" {
				ev += " (from CXX)"
			}
			r.Check.Evidence = append(r.Check.Evidence, "version: "+line, ev, req)
			r.Check.Evidence = append(r.Check.Evidence, tried...)
			return r
		}

		r.Check.Evidence = append(tried, req)
		var fix Fix
		var reason string
		switch {
		case !found && envCXX == "":
			reason = "no C++ compiler found (tried c++, g++, clang++)"
			fix = p.fixCXXMissing()
		case !found:
			reason = fmt.Sprintf("CXX=%s not found on PATH", envCXX)
			fix = Fix{Note: "unset CXX or set it to an installed C++20 compiler"}
		case envCXX != "":
			reason = fmt.Sprintf("CXX=%s cannot build C++20 with <barrier> and <source_location>", envCXX)
			fix = p.fixCXXOld()
		default:
			reason = "no C++ compiler builds C++20 with <barrier> and <source_location> (g++ >= 11 or clang++ >= 15 needed)"
			fix = p.fixCXXOld()
		}
		return r.fail(reason, fix)
	})
}

// tryCompiler reads the compiler's version line, compiles the probe in dir
// and runs it. why explains a failure.
func (p *Prober) tryCompiler(ctx context.Context, dir, path string, extra []string) (line string, ok bool, why string) {
	argv := slices.Concat([]string{path}, extra)
	c := p.run(ctx, versionTimeout, dir, slices.Concat(argv, []string{"--version"})...)
	if c.failure != "" {
		return "", false, c.failure
	}
	line, _ = ParseCompilerVersion(c.stdout)
	exe := filepath.Join(dir, "probe")
	_ = os.Remove(exe)
	compile := slices.Concat(argv, CXXFlags, []string{cxxProbeSrcName, "-o", "probe"})
	if c := p.run(ctx, compileTimeout, dir, compile...); c.failure != "" {
		return line, false, "compile failed: " + c.failure
	}
	c = p.run(ctx, versionTimeout, dir, exe)
	if c.failure != "" {
		return line, false, "the compiled probe failed: " + c.failure
	}
	if !strings.Contains(c.stdout, cxxProbeMarker) {
		return line, false, fmt.Sprintf("the compiled probe printed %q, want %q", firstLine(c.stdout), cxxProbeMarker)
	}
	return line, true, ""
}

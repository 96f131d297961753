package steps

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/orchardkit/orchard/checks"
)

// ToolchainInfo is the toolchain step's typed output: the tools later steps
// run and whose versions go into their cache keys.
type ToolchainInfo struct {
	Backend        string   `json:"backend"`
	Platform       string   `json:"platform"`   // "linux/amd64"
	OSVersion      string   `json:"os_version"` // "Debian GNU/Linux 12 (bookworm)", "macOS 15.5"
	CMakePath      string   `json:"cmake_path"`
	CMakeVersion   string   `json:"cmake_version"`
	CXXPath        string   `json:"cxx_path"`
	CXXVersion     string   `json:"cxx_version"`      // "12.2.0"
	CXXVersionLine string   `json:"cxx_version_line"` // "c++ (Debian 12.2.0-14) 12.2.0"
	CXXFlags       []string `json:"cxx_flags"`        // what the probe compiled with
	// Metal backend only.
	XcrunPath       string   `json:"xcrun_path,omitempty"`
	XcodeVersion    string   `json:"xcode_version,omitempty"`
	MetalPath       string   `json:"metal_path,omitempty"`
	MetalVersion    string   `json:"metal_version,omitempty"`
	MetallibPath    string   `json:"metallib_path,omitempty"`
	MetallibVersion string   `json:"metallib_version,omitempty"`
	GPU             *GPUInfo `json:"gpu,omitempty"`
}

// Tools maps each tool to "version path", for KeyInputs.Tools.
func (t ToolchainInfo) Tools() map[string]string {
	m := map[string]string{}
	add := func(k, ver, path string) {
		if v := strings.TrimSpace(ver + " " + path); v != "" {
			m[k] = v
		}
	}
	add("cmake", t.CMakeVersion, t.CMakePath)
	add("cxx", t.CXXVersionLine, t.CXXPath)
	add("xcode", t.XcodeVersion, "")
	add("metal", t.MetalVersion, t.MetalPath)
	add("metallib", t.MetallibVersion, t.MetallibPath)
	return m
}

// ToolchainStep checks the tools the backend needs. It is not cacheable as
// a step (the environment is checked on every run), but with a build dir it
// reuses the CMake and compiler probes' passing answers from the probe
// cache (probecache.go) while the tools' files, PATH and CXX are unchanged;
// --force (sc.Force) always re-probes.
type ToolchainStep struct {
	// Prober is shared with ResolveBackend so no probe runs twice; nil
	// makes one from the run's environment.
	Prober *Prober
	// Out is filled by Run.
	Out ToolchainInfo
}

// Name is the step id.
func (s *ToolchainStep) Name() string { return "toolchain" }

// Title is the step's checklist title.
func (s *ToolchainStep) Title() string { return "Toolchain" }

// CheckIDs: the probes Run makes for backend on this machine.
func (s *ToolchainStep) CheckIDs(backend string) []string {
	ids := []string{ProbeOS, ProbeCMake, ProbeCXX}
	switch {
	case backend == BackendMetal:
		ids = append(ids, ProbeGPU, ProbeXcrun, ProbeXcode, ProbeMetal, ProbeMetallib)
	case s.Prober != nil && s.Prober.GOOS == "darwin":
		ids = append(ids, ProbeMetal, ProbeMetallib)
	}
	return ids
}

// Run probes the tools for sc.Backend ("emu" when empty).
func (s *ToolchainStep) Run(ctx context.Context, sc *Context) (Result, error) {
	p := s.Prober
	if p == nil {
		p = NewProber(sc.Getenv)
	}
	backend := sc.Backend
	if backend == "" {
		backend = BackendEmu
	}
	reused, key := s.useProbeCache(sc, p)
	results := p.Probes(ctx, backend, false)
	if backend == BackendEmu && p.GOOS == "darwin" {
		// A Mac whose GPU cannot run the kernels (a hosted runner) still
		// compiles them for Metal when it can: the Metal compiler catches
		// what emu forgives (address spaces, MSL rules). Optional here.
		for _, r := range []ProbeResult{p.Metal(ctx), p.Metallib(ctx)} {
			if r.Failed() {
				r.Check.Status = checks.Warn
				r.Check.Evidence = append(r.Check.Evidence, "the kernels are checked on emu only; the Metal compile check is skipped")
			}
			results = append(results, r)
		}
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	if len(reused) == 0 && key != nil {
		if err := saveProbeCache(probeCacheFile(sc.BuildDir), key, results); err != nil && sc.Log != nil {
			fmt.Fprintf(sc.Log, "probe cache not written (the next run probes again): %v\n", err)
		}
	}
	s.Out = ToolchainInfo{Backend: backend, Platform: p.Platform(), CXXFlags: slices.Clone(CXXFlags)}
	var res Result
	var have, missing []string
	for _, r := range results {
		if when, ok := reused[r.Check.ID]; ok {
			r.Check.Evidence = append(slices.Clip(r.Check.Evidence), "probed "+when.Local().Format(time.DateTime)+
				"; reused while the tool files, PATH and CXX are unchanged (--force probes again)")
		}
		res.Checks = append(res.Checks, r.Check)
		if sc.Log != nil {
			fmt.Fprintf(sc.Log, "%s: %s\n", r.Check.ID, r.Check.Status)
			for _, e := range r.Check.Evidence {
				fmt.Fprintf(sc.Log, "  %s\n", e)
			}
			if r.Check.Hint != "" {
				fmt.Fprintf(sc.Log, "  fix: %s\n", r.Check.Hint)
			}
		}
		if r.Failed() {
			res.EnvFailure = true
			missing = append(missing, strings.TrimPrefix(r.Check.ID, "toolchain."))
			continue
		}
		if r.Check.Status == checks.Warn {
			continue
		}
		s.Out.fill(r)
		if r.Version != "" && r.Check.ID != ProbeOS {
			have = append(have, strings.TrimPrefix(r.Check.ID, "toolchain.")+" "+r.Version)
		}
	}
	if res.EnvFailure {
		res.Detail = "missing or unusable: " + strings.Join(missing, ", ") + " (see: orchard doctor --fix)"
	} else {
		res.Detail = strings.Join(have, ", ")
	}
	return res, nil
}

// useProbeCache seeds p with the cached probe answers for sc's build dir
// when their key still holds. It returns when each seeded probe ran (nil:
// none were; they probe now) and the key, taken before any probe runs so a
// tool replaced meanwhile is probed again next time. The step log says
// why it probes.
func (s *ToolchainStep) useProbeCache(sc *Context, p *Prober) (map[string]time.Time, map[string]string) {
	if sc.BuildDir == "" {
		return nil, nil
	}
	path := probeCacheFile(sc.BuildDir)
	parts := p.probeKeyParts()
	why := "--force"
	if !sc.Force {
		if c := loadProbeCache(path, parts); c != nil {
			used := map[string]time.Time{}
			for _, id := range p.seed(c.Results) {
				used[id] = c.Created
			}
			if sc.Log != nil {
				fmt.Fprintf(sc.Log, "probes reused from %s (probed %s): tool files, PATH and CXX unchanged\n", path, c.Created.Format(time.RFC3339))
			}
			return used, parts
		}
		why = whyReprobe(path, parts)
	}
	if sc.Log != nil {
		fmt.Fprintf(sc.Log, "probing: %s\n", why)
	}
	return nil, parts
}

// fill copies a passed probe's facts into t.
func (t *ToolchainInfo) fill(r ProbeResult) {
	switch r.Check.ID {
	case ProbeOS:
		t.OSVersion = r.Version
	case ProbeCMake:
		t.CMakePath, t.CMakeVersion = r.Path, r.Version
	case ProbeCXX:
		t.CXXPath, t.CXXVersion, t.CXXVersionLine = r.Path, r.Version, r.VersionLine
	case ProbeXcrun:
		t.XcrunPath = r.Path
	case ProbeXcode:
		t.XcodeVersion = r.Version
	case ProbeMetal:
		t.MetalPath, t.MetalVersion = r.Path, r.Version
	case ProbeMetallib:
		t.MetallibPath, t.MetallibVersion = r.Path, r.Version
	case ProbeGPU:
		t.GPU = r.GPU
	}
}

// compile-time check: the step implements Step.
var _ Step = (*ToolchainStep)(nil)

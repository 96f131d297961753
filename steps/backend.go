package steps

import (
	"context"
	"fmt"

	"github.com/orchardkit/orchard/checks"
)

// Backends.
const (
	BackendAuto  = "auto"
	BackendEmu   = "emu"
	BackendMetal = "metal"
)

type probeFunc func(context.Context) ProbeResult

// metalProbes are what the metal backend needs beyond the emu ones, GPU
// first: on a hosted runner the GPU is the reason that matters.
func (p *Prober) metalProbes() []probeFunc {
	return []probeFunc{p.GPU, p.Xcrun, p.Xcode, p.Metal, p.Metallib}
}

// Probes runs the probes backend needs (OS, cmake, C++ compiler; for metal
// also xcrun, Xcode, metal, metallib and the GPU) and, with info, the
// informational ones (on another backend the Metal probes, then python3 and
// PyTorch). A required probe that fails or cannot apply (a Metal probe off
// macOS) fails; an informational failure is a warning.
func (p *Prober) Probes(ctx context.Context, backend string, info bool) []ProbeResult {
	required := []probeFunc{p.OS, p.CMake, p.CXX}
	var optional []probeFunc
	if backend == BackendMetal {
		required = append(required, p.metalProbes()...)
	} else if info {
		optional = append(optional, p.metalProbes()...)
	}
	if info {
		optional = append(optional, p.Python, p.Torch)
	}
	var out []ProbeResult
	for _, f := range required {
		r := f(ctx)
		r.Required = true
		if r.Check.Status == checks.Skip {
			r.Check.Status = checks.Fail
			r.Check.Hint = "use --backend emu"
		}
		out = append(out, r)
	}
	for _, f := range optional {
		r := f(ctx)
		if r.Check.Status == checks.Fail {
			r.Check.Status = checks.Warn
		}
		out = append(out, r)
	}
	return out
}

// metalUnavailable says why the metal backend cannot run here ("" when it
// can).
func (p *Prober) metalUnavailable(ctx context.Context) string {
	if p.GOOS != "darwin" {
		return "not macOS (" + p.Platform() + ")"
	}
	for _, f := range p.metalProbes() {
		if r := f(ctx); r.Failed() {
			if len(r.Fix.Commands) > 0 {
				return r.Reason + " (fix: " + r.Fix.String() + ")"
			}
			return r.Reason
		}
	}
	return ""
}

// ResolveBackend turns --backend into "emu" or "metal" with the reason. auto
// picks metal only on macOS with a working Metal toolchain and a
// non-paravirtual Apple GPU, else emu ("Metal unavailable: not macOS
// (linux/amd64); using emu"). metal where it cannot run is an error saying
// why and suggesting --backend emu.
func ResolveBackend(ctx context.Context, requested string, p *Prober) (backend, reason string, err error) {
	switch requested {
	case BackendEmu:
		return BackendEmu, "requested with --backend emu", nil
	case BackendAuto, "":
		if why := p.metalUnavailable(ctx); why != "" {
			return BackendEmu, "Metal unavailable: " + why + "; using emu", nil
		}
		return BackendMetal, "Metal available: " + p.metalSummary(ctx), nil
	case BackendMetal:
		if why := p.metalUnavailable(ctx); why != "" {
			return "", "", fmt.Errorf("--backend metal cannot run here: %s; use --backend emu", why)
		}
		return BackendMetal, "requested with --backend metal: " + p.metalSummary(ctx), nil
	}
	return "", "", fmt.Errorf("unknown backend %q: use auto, emu or metal", requested)
}

// metalSummary is "Apple M3 Pro (18 cores, Metal 3) on Mac15,6, metal 32023.883".
func (p *Prober) metalSummary(ctx context.Context) string {
	s := "metal " + p.Metal(ctx).Version
	if g := p.GPU(ctx).GPU; g != nil {
		s = g.String() + ", " + s
	}
	return s
}

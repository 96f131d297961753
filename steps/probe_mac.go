package steps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/orchardkit/orchard/checks"
	"github.com/orchardkit/orchard/metalkern"
)

// GPUInfo is what macOS reports about the GPU.
type GPUInfo struct {
	Model       string `json:"model"`        // sppci_model: "Apple M3 Pro", "Apple Paravirtual device"
	Cores       string `json:"cores"`        // sppci_cores ("" on the paravirtual device)
	MetalFamily string `json:"metal_family"` // spdisplays_mtlgpufamilysupport: "spdisplays_metal3"
	HWModel     string `json:"hw_model"`     // sysctl hw.model: "MacBookPro18,3", "VirtualMac2,1"
	// Paravirtual: a VM's GPU (GitHub-hosted macOS runners) with no usable
	// Metal compute (no simdgroup matrix, allocations fail).
	Paravirtual bool `json:"paravirtual"`
}

// MetalSupport renders MetalFamily for people ("spdisplays_metal3" → "Metal 3").
func (g GPUInfo) MetalSupport() string {
	if s, ok := strings.CutPrefix(g.MetalFamily, "spdisplays_metal"); ok && s != "" {
		return "Metal " + s
	}
	return g.MetalFamily
}

// String is "Apple M3 Pro (18 cores, Metal 3) on MacBookPro18,3".
func (g GPUInfo) String() string {
	var attrs []string
	if g.Cores != "" {
		attrs = append(attrs, g.Cores+" cores")
	}
	if m := g.MetalSupport(); m != "" {
		attrs = append(attrs, m)
	}
	s := g.Model
	if len(attrs) > 0 {
		s += " (" + strings.Join(attrs, ", ") + ")"
	}
	if g.HWModel != "" {
		s += " on " + g.HWModel
	}
	return s
}

// ParseDisplays reads `system_profiler SPDisplaysDataType -json` and returns
// its GPUs.
func ParseDisplays(out []byte) ([]GPUInfo, error) {
	var doc struct {
		Displays []struct {
			Model  string `json:"sppci_model"`
			Cores  string `json:"sppci_cores"`
			Family string `json:"spdisplays_mtlgpufamilysupport"`
		} `json:"SPDisplaysDataType"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("cannot parse system_profiler output: %v", err)
	}
	gpus := make([]GPUInfo, 0, len(doc.Displays))
	for _, d := range doc.Displays {
		gpus = append(gpus, GPUInfo{Model: d.Model, Cores: d.Cores, MetalFamily: d.Family})
	}
	return gpus, nil
}

// IsParavirtual reports a VM GPU: the "Apple Paravirtual device" chipset or
// a VirtualMac hardware model.
func IsParavirtual(model, hwModel string) bool {
	return strings.Contains(model, "Paravirtual") || strings.HasPrefix(hwModel, "VirtualMac")
}

// notMac answers a macOS-only probe on another OS.
func (p *Prober) notMac(title string) (ProbeResult, bool) {
	if p.GOOS == "darwin" {
		return ProbeResult{}, false
	}
	r := result(title, checks.Skip, "not macOS ("+p.Platform()+")")
	r.Reason = "not macOS (" + p.Platform() + ")"
	return r, true
}

// Xcrun checks that xcrun runs.
func (p *Prober) Xcrun(ctx context.Context) ProbeResult {
	return p.once(ctx, ProbeXcrun, func(ctx context.Context) ProbeResult {
		const title = "xcrun (Xcode command-line tools)"
		if r, ok := p.notMac(title); ok {
			return r
		}
		r := result(title, checks.Pass)
		path, err := p.Runner.LookPath("xcrun")
		if err != nil {
			return r.fail("xcrun not found on PATH", fixXcodeSelect())
		}
		r.Path = path
		r.Check.Evidence = append(r.Check.Evidence, "path: "+path)
		c := p.run(ctx, versionTimeout, "", path, "--version")
		if c.failure != "" {
			return r.fail(c.failure, fixXcodeSelect())
		}
		r.VersionLine = firstLine(c.stdout + c.stderr)
		if v, err := ParseToolVersion(r.VersionLine); err == nil {
			r.Version = v.Original()
		}
		r.Check.Evidence = append(r.Check.Evidence, "version: "+r.VersionLine)
		return r
	})
}

// Xcode checks that a full Xcode (not only the Command Line Tools) is
// selected and at least MinXcode. Betas count as their release.
func (p *Prober) Xcode(ctx context.Context) ProbeResult {
	return p.once(ctx, ProbeXcode, func(ctx context.Context) ProbeResult {
		title := "Xcode >= " + MinXcode
		if r, ok := p.notMac(title); ok {
			return r
		}
		r := result(title, checks.Pass)
		req := "required: >= " + MinXcode
		c := p.run(ctx, versionTimeout, "", "xcodebuild", "-version")
		if notADeveloperTool(c.stdout + c.stderr) {
			r.Check.Evidence = append(r.Check.Evidence, req)
			return r.fail("only the Command Line Tools are selected; the Metal compiler needs Xcode", fixFullXcode())
		}
		if c.failure != "" {
			r.Check.Evidence = append(r.Check.Evidence, req)
			return r.fail(c.failure, fixFullXcode())
		}
		v, err := ParseXcodeVersion(c.stdout)
		if err != nil {
			r.Check.Evidence = append(r.Check.Evidence, req)
			return r.fail(err.Error(), fixFullXcode())
		}
		r.Version, r.VersionLine = v, firstLine(c.stdout)
		r.Check.Evidence = append(r.Check.Evidence, "found: Xcode "+v, req)
		if ok, err := VersionAtLeast(v, MinXcode); err != nil || !ok {
			return r.fail(fmt.Sprintf("Xcode %s is older than %s", v, MinXcode),
				Fix{Note: "install Xcode " + MinXcode + " or newer and select it with `sudo xcode-select -s`"})
		}
		return r
	})
}

// Metal runs `xcrun -sdk macosx metal --version`: `xcrun -f metal` succeeds
// even when Xcode 26's separately downloaded Metal Toolchain is missing, so
// only running the compiler tells.
func (p *Prober) Metal(ctx context.Context) ProbeResult {
	return p.once(ctx, ProbeMetal, func(ctx context.Context) ProbeResult {
		return p.metalTool(ctx, "metal", "Metal shader compiler (xcrun metal)", ParseMetalVersion)
	})
}

// Metallib runs `xcrun -sdk macosx metallib --version`.
func (p *Prober) Metallib(ctx context.Context) ProbeResult {
	return p.once(ctx, ProbeMetallib, func(ctx context.Context) ProbeResult {
		return p.metalTool(ctx, "metallib", "Metal library linker (xcrun metallib)", ParseMetallibVersion)
	})
}

func (p *Prober) metalTool(ctx context.Context, tool, title string, parse func(string) (string, error)) ProbeResult {
	if r, ok := p.notMac(title); ok {
		return r
	}
	r := result(title, checks.Pass)
	if _, err := p.Runner.LookPath("xcrun"); err != nil {
		return r.fail("xcrun not found on PATH", fixXcodeSelect())
	}
	c := p.run(ctx, versionTimeout, "", "xcrun", "-sdk", "macosx", tool, "--version")
	all := c.stdout + "\n" + c.stderr
	switch {
	case missingMetalToolchain(all):
		r.Check.Evidence = append(r.Check.Evidence, excerpt(all))
		return r.fail("Metal Toolchain missing (Xcode 26+ downloads it separately)", fixMetalToolchain())
	case notADeveloperTool(all):
		r.Check.Evidence = append(r.Check.Evidence, excerpt(all))
		return r.fail(tool+" not found: only the Command Line Tools are selected", fixFullXcode())
	case c.failure != "":
		return r.fail(c.failure, fixMetalToolchain())
	}
	v, err := parse(all)
	if err != nil {
		return r.fail(err.Error(), Fix{})
	}
	r.Version, r.VersionLine = v, firstLine(all)
	if f := p.run(ctx, versionTimeout, "", "xcrun", "-sdk", "macosx", "-f", tool); f.failure == "" {
		r.Path = firstLine(f.stdout)
		r.Check.Evidence = append(r.Check.Evidence, "path: "+r.Path)
	}
	r.Check.Evidence = append(r.Check.Evidence, "version: "+r.VersionLine)
	return r
}

// GPU asks system_profiler for the GPU and sysctl for the hardware model: a
// non-paravirtual Apple GPU with Metal support passes.
func (p *Prober) GPU(ctx context.Context) ProbeResult {
	return p.once(ctx, ProbeGPU, func(ctx context.Context) ProbeResult {
		const title = "Apple GPU with Metal"
		if r, ok := p.notMac(title); ok {
			return r
		}
		r := result(title, checks.Pass)
		if p.RunnerInfo != nil {
			info, err := p.RunnerInfo(ctx)
			if err == nil && info.Backend == BackendMetal && info.DeviceInfo.Name != "" {
				return gpuFromRunner(r, info)
			}
			if err != nil && !errors.Is(err, ErrNoMetalRunner) {
				r.Check.Evidence = append(r.Check.Evidence, "runner info unavailable ("+firstLine(err.Error())+"): asking system_profiler")
			}
		}
		c := p.run(ctx, profileTimeout, "", "system_profiler", "SPDisplaysDataType", "-json")
		if c.failure != "" {
			return r.fail(c.failure, Fix{})
		}
		gpus, err := ParseDisplays([]byte(c.stdout))
		if err != nil {
			return r.fail(err.Error(), Fix{})
		}
		hw := p.run(ctx, versionTimeout, "", "sysctl", "-n", "hw.model")
		if hw.failure != "" {
			return r.fail(hw.failure, Fix{})
		}
		if len(gpus) == 0 {
			return r.fail("system_profiler reports no GPU", Fix{Note: "use --backend emu"})
		}
		g := gpus[0]
		for _, x := range gpus {
			if strings.HasPrefix(x.Model, "Apple") {
				g = x
				break
			}
		}
		g.HWModel = firstLine(hw.stdout)
		g.Paravirtual = IsParavirtual(g.Model, g.HWModel)
		r.GPU = &g
		r.Check.Evidence = append(r.Check.Evidence, "gpu: "+g.String())
		switch {
		case g.Paravirtual:
			return r.fail(fmt.Sprintf("%s on %s is a VM's GPU (GitHub-hosted runner): no usable Metal compute", g.Model, g.HWModel),
				Fix{Note: "use --backend emu here; run the Metal stages on an Apple-silicon Mac (e.g. a self-hosted runner)"})
		case !strings.HasPrefix(g.Model, "Apple"):
			return r.fail(fmt.Sprintf("GPU %q is not an Apple-silicon GPU", g.Model), Fix{Note: "use --backend emu"})
		case g.MetalFamily == "":
			return r.fail(g.Model+" reports no Metal support", Fix{Note: "use --backend emu"})
		}
		return r
	})
}

// gpuFromRunner is the GPU probe's verdict from a built Metal runner's
// `info`: the device Metal chose, its highest Apple family and whether it
// is paravirtual, as Metal reports them. A paravirtual or pre-Apple7 GPU
// fails: --backend auto then skips the Metal steps with this reason (the
// Metal compile still runs, emu verifies the kernels).
func gpuFromRunner(r ProbeResult, info metalkern.Info) ProbeResult {
	d := info.DeviceInfo
	g := GPUInfo{Model: d.Name, Paravirtual: d.Paravirtual}
	if d.MetalFamily != "" {
		g.MetalFamily = "spdisplays_" + d.MetalFamily
	}
	r.GPU = &g
	r.Check.Evidence = append(r.Check.Evidence, "runner info: "+strings.TrimPrefix(deviceEvidence(info), "device: "))
	emu := Fix{Note: "use --backend emu here (it verifies the same kernels on the CPU); run the Metal stages on an Apple-silicon Mac (e.g. a self-hosted runner)"}
	switch {
	case d.Paravirtual:
		return r.fail(fmt.Sprintf("%s is a VM's GPU (GitHub-hosted runner): no usable Metal compute", d.Name), emu)
	case d.AppleFamily() < 7:
		fam := d.GPUFamily
		if fam == "" {
			fam = "no Apple GPU family"
		}
		return r.fail(fmt.Sprintf("%s supports %s; the kernels need apple7+ (simdgroup matrices: M1 or newer)", d.Name, fam), emu)
	case d.Problem != "":
		return r.fail(d.Problem, emu)
	}
	return r
}

package steps

import (
	"context"
	"fmt"
	"strings"

	"github.com/orchardkit/orchard/checks"
)

// torchProbeScript prints PyTorch's version and MPS availability, or
// "missing" when it is not installed. Passed to python3 -c as one argument.
const torchProbeScript = `import sys
try:
    import torch
except ImportError as e:
    print("missing", e)
    sys.exit(0)
mps = getattr(torch.backends, "mps", None)
print("torch", torch.__version__)
print("mps_built", bool(mps is not None and mps.is_built()))
print("mps_available", bool(mps is not None and mps.is_available()))
`

// TorchInfo is what the PyTorch probe read.
type TorchInfo struct {
	Missing      string // the ImportError when PyTorch is not installed
	Version      string // torch.__version__ ("2.4.1", "2.1.0+cpu")
	MPSBuilt     bool
	MPSAvailable bool
}

// ParseTorchProbe reads torchProbeScript's output.
func ParseTorchProbe(out string) (TorchInfo, error) {
	var t TorchInfo
	for _, l := range strings.Split(out, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(l), " ")
		switch k {
		case "missing":
			t.Missing = v
			if t.Missing == "" {
				t.Missing = "not installed"
			}
			return t, nil
		case "torch":
			t.Version = v
		case "mps_built":
			t.MPSBuilt = v == "True"
		case "mps_available":
			t.MPSAvailable = v == "True"
		}
	}
	if t.Version == "" {
		return t, fmt.Errorf("unexpected output from the PyTorch probe: %q", firstLine(out))
	}
	return t, nil
}

// Python reports python3's version. Optional: absent is a skip.
func (p *Prober) Python(ctx context.Context) ProbeResult {
	return p.once(ctx, ProbePython, func(ctx context.Context) ProbeResult {
		r := result("python3 (optional)", checks.Pass)
		path, err := p.Runner.LookPath("python3")
		if err != nil {
			r.Check.Status = checks.Skip
			r.Reason = "python3 not found on PATH (optional: only the PyTorch comparison uses it)"
			r.Check.Evidence = []string{r.Reason}
			return r
		}
		r.Path = path
		r.Check.Evidence = append(r.Check.Evidence, "path: "+path)
		c := p.run(ctx, versionTimeout, "", path, "--version")
		if c.failure != "" {
			return r.fail(c.failure, Fix{})
		}
		v, err := ParsePythonVersion(c.stdout + c.stderr)
		if err != nil {
			return r.fail(err.Error(), Fix{})
		}
		r.Version, r.VersionLine = v, firstLine(c.stdout+c.stderr)
		r.Check.Evidence = append(r.Check.Evidence, "version: "+v)
		return r
	})
}

// Torch reports PyTorch >= MinTorch and whether MPS is available. Optional:
// no python3 or no torch is a skip with the reason, an old torch a warning.
func (p *Prober) Torch(ctx context.Context) ProbeResult {
	return p.once(ctx, ProbeTorch, func(ctx context.Context) ProbeResult {
		r := result("PyTorch >= "+MinTorch+" and MPS (optional)", checks.Pass)
		py := p.Python(ctx)
		switch py.Check.Status {
		case checks.Skip:
			r.Check.Status, r.Reason = checks.Skip, "python3 not found, so no PyTorch (optional)"
			r.Check.Evidence = []string{r.Reason}
			return r
		case checks.Fail:
			return r.fail("python3 does not run: "+py.Reason, Fix{})
		}
		c := p.run(ctx, importTimeout, "", py.Path, "-c", torchProbeScript)
		if c.failure != "" {
			return r.fail(c.failure, Fix{})
		}
		t, err := ParseTorchProbe(c.stdout)
		if err != nil {
			return r.fail(err.Error(), Fix{})
		}
		if t.Missing != "" {
			r.Check.Status, r.Reason = checks.Skip, "PyTorch not installed (optional): "+t.Missing
			r.Check.Evidence = []string{r.Reason}
			r.Check.Hint = "optional: python3 -m pip install 'torch>=" + MinTorch + "'"
			return r
		}
		r.Version = t.Version
		mps := fmt.Sprintf("MPS: available=%v built=%v", t.MPSAvailable, t.MPSBuilt)
		if p.GOOS != "darwin" {
			mps += " (MPS exists only on macOS)"
		}
		r.Check.Evidence = append(r.Check.Evidence, "found: torch "+t.Version, "required: >= "+MinTorch, mps)
		if ok, err := VersionAtLeast(t.Version, MinTorch); err != nil || !ok {
			r.Check.Status, r.Reason = checks.Warn, fmt.Sprintf("torch %s is older than %s (orchard_ops needs %s)", t.Version, MinTorch, MinTorch)
			r.Check.Evidence = append([]string{r.Reason}, r.Check.Evidence...)
			r.Check.Hint = "optional: python3 -m pip install -U 'torch>=" + MinTorch + "'"
		} else if ok, err := VersionAtLeast(t.Version, MinTorchMPS); p.GOOS == "darwin" && (err != nil || !ok) {
			r.Check.Status, r.Reason = checks.Warn, fmt.Sprintf("torch %s is older than %s: orchard_ops runs on CPU tensors only (its MPS ops need %s)", t.Version, MinTorchMPS, MinTorchMPS)
			r.Check.Evidence = append([]string{r.Reason}, r.Check.Evidence...)
			r.Check.Hint = "optional: python3 -m pip install -U 'torch>=" + MinTorchMPS + "'"
		}
		return r
	})
}

package steps

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/orchardkit/orchard/checks"
	"github.com/orchardkit/orchard/metalkern"
)

// fakeRunnerInfo is a test double for a built orchard-runner-metal (no Mac
// exists here): its `info` prints the fixture, which metalkern.Runner.Info
// parses as it parses the real runner's output.
func fakeRunnerInfo(t *testing.T, fixture string) func(context.Context) (metalkern.Info, error) {
	out := readFixture(t, fixture)
	exec := func(_ context.Context, argv, _ []string, stdout io.Writer) error {
		if argv[len(argv)-1] != "info" {
			t.Errorf("fake runner called with %v, want info", argv)
		}
		_, err := io.WriteString(stdout, out)
		return err
	}
	return func(ctx context.Context) (metalkern.Info, error) {
		return metalkern.Runner{Path: "/fake/orchard-runner-metal"}.Info(ctx, exec)
	}
}

func TestProbeMacRunnerInfoParavirtual(t *testing.T) {
	p, f := newFakeMac(t) // system_profiler says M3 Pro: the runner's answer must win
	p.RunnerInfo = fakeRunnerInfo(t, "runner-info-paravirtual.json")
	ctx := context.Background()
	r := p.GPU(ctx)
	if r.Check.Status != checks.Fail || !strings.Contains(r.Reason, "Apple Paravirtual device is a VM's GPU") ||
		!strings.Contains(r.Check.Hint, "--backend emu") {
		t.Fatalf("paravirtual from runner info: %s %q hint %q", r.Check.Status, r.Reason, r.Check.Hint)
	}
	if !strings.Contains(evidence(r), "runner info: Apple Paravirtual device, family apple5") || !strings.Contains(evidence(r), "paravirtual") {
		t.Errorf("evidence:\n%s", evidence(r))
	}
	if f.ran("system_profiler SPDisplaysDataType -json") {
		t.Error("system_profiler asked although the runner answered")
	}
	// --backend auto: emu, with the runner's reason.
	be, why, err := ResolveBackend(ctx, BackendAuto, p)
	if err != nil || be != BackendEmu || !strings.Contains(why, "Metal unavailable: Apple Paravirtual device is a VM's GPU") {
		t.Errorf("auto: %q %q %v", be, why, err)
	}
	if _, _, err := ResolveBackend(ctx, BackendMetal, p); err == nil || !strings.Contains(err.Error(), "paravirtual") && !strings.Contains(err.Error(), "VM's GPU") {
		t.Errorf("--backend metal on a paravirtual GPU: %v", err)
	}
}

func TestProbeMacRunnerInfoGoodAndOld(t *testing.T) {
	p, _ := newFakeMac(t)
	p.RunnerInfo = fakeRunnerInfo(t, "runner-info-m3pro.json")
	r := p.GPU(context.Background())
	if r.Check.Status != checks.Pass || r.GPU == nil || r.GPU.Model != "Apple M3 Pro" || r.GPU.MetalSupport() != "Metal 3" {
		t.Fatalf("m3 pro from runner info: %s %+v %s", r.Check.Status, r.GPU, evidence(r))
	}
	if !strings.Contains(evidence(r), "family apple9, metal3, 32768 B threadgroup memory, 1024 threads/threadgroup, working set 27.0 GiB, unified memory") {
		t.Errorf("evidence:\n%s", evidence(r))
	}

	// An Apple6 GPU (A13): too old for simdgroup matrices.
	p, _ = newFakeMac(t)
	good := fakeRunnerInfo(t, "runner-info-m3pro.json")
	p.RunnerInfo = func(ctx context.Context) (metalkern.Info, error) {
		info, err := good(ctx)
		info.DeviceInfo.Name, info.DeviceInfo.GPUFamily = "Apple A13 GPU", "apple6"
		return info, err
	}
	if r := p.GPU(context.Background()); r.Check.Status != checks.Fail || !strings.Contains(r.Reason, "supports apple6; the kernels need apple7+") {
		t.Errorf("apple6: %s %q", r.Check.Status, r.Reason)
	}
}

func TestProbeMacRunnerInfoUnavailableFallsBack(t *testing.T) {
	p, f := newFakeMac(t)
	p.RunnerInfo = func(context.Context) (metalkern.Info, error) {
		return metalkern.Info{}, errors.New("no metal runner built in /b")
	}
	r := p.GPU(context.Background())
	if r.Check.Status != checks.Pass || !f.ran("system_profiler SPDisplaysDataType -json") ||
		!strings.Contains(evidence(r), "runner info unavailable (no metal runner built in /b)") {
		t.Errorf("fallback: %s ran system_profiler %v\n%s", r.Check.Status, f.ran("system_profiler SPDisplaysDataType -json"), evidence(r))
	}
}

// Before any Metal build the probe asks system_profiler and says nothing of
// the runner; MetalRunnerInfo on an empty build dir is ErrNoMetalRunner.
func TestProbeMacNoMetalRunnerYet(t *testing.T) {
	p, f := newFakeMac(t)
	p.RunnerInfo = MetalRunnerInfo(t.TempDir())
	if _, err := p.RunnerInfo(context.Background()); !errors.Is(err, ErrNoMetalRunner) {
		t.Fatalf("MetalRunnerInfo on an empty build dir: %v, want ErrNoMetalRunner", err)
	}
	r := p.GPU(context.Background())
	if !f.ran("system_profiler SPDisplaysDataType -json") || strings.Contains(evidence(r), "runner info") {
		t.Errorf("no runner yet: system_profiler asked %v, evidence:\n%s", f.ran("system_profiler SPDisplaysDataType -json"), evidence(r))
	}
}

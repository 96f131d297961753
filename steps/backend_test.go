package steps

import (
	"context"
	"strings"
	"testing"
)

func TestBackendResolveOnThisLinux(t *testing.T) {
	p := testProber(t, map[string]string{"PATH": realPath()}, "os-release-debian")
	ctx := context.Background()
	b, reason, err := ResolveBackend(ctx, "auto", p)
	want := "Metal unavailable: not macOS (" + p.Platform() + "); using emu"
	if err != nil || b != "emu" || reason != want {
		t.Errorf("auto: %q %q %v; want emu %q", b, reason, err, want)
	}
	if b, reason, err := ResolveBackend(ctx, "emu", p); err != nil || b != "emu" || reason != "requested with --backend emu" {
		t.Errorf("emu: %q %q %v", b, reason, err)
	}
	_, _, err = ResolveBackend(ctx, "metal", p)
	if err == nil || err.Error() != "--backend metal cannot run here: not macOS ("+p.Platform()+"); use --backend emu" {
		t.Errorf("metal on Linux: %v", err)
	}
	if _, _, err := ResolveBackend(ctx, "cuda", p); err == nil || !strings.Contains(err.Error(), "auto, emu or metal") {
		t.Errorf("cuda: %v", err)
	}
}

func TestBackendResolveOnFakeMacs(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(*testing.T, *fakeMac)
		auto       string
		reasonHas  []string
		metalError string // "" when --backend metal works
	}{
		{"M3 Pro with Xcode 16.4", nil, "metal",
			[]string{"Metal available: Apple M3 Pro (18 cores, Metal 3) on Mac15,6, metal 32023.883"}, ""},
		{"hosted-runner VM", paravirtual, "emu",
			[]string{"Metal unavailable: Apple Paravirtual device on VirtualMac2,1 is a VM's GPU", "; using emu"},
			"Paravirtual"},
		{"Xcode 26 without Metal Toolchain", xcode26NoToolchain, "emu",
			[]string{"Metal Toolchain missing", "(fix: xcodebuild -downloadComponent MetalToolchain)"},
			"Metal Toolchain missing"},
		{"Command Line Tools only", cltOnly, "emu",
			[]string{"only the Command Line Tools are selected"}, "Command Line Tools"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, f := newFakeMac(t)
			if tt.setup != nil {
				tt.setup(t, f)
			}
			ctx := context.Background()
			b, reason, err := ResolveBackend(ctx, "auto", p)
			if err != nil || b != tt.auto {
				t.Fatalf("auto: %q %q %v; want %s", b, reason, err, tt.auto)
			}
			for _, s := range tt.reasonHas {
				if !strings.Contains(reason, s) {
					t.Errorf("reason %q lacks %q", reason, s)
				}
			}
			b, _, err = ResolveBackend(ctx, "metal", p)
			switch {
			case tt.metalError == "" && (err != nil || b != "metal"):
				t.Errorf("metal: %q %v", b, err)
			case tt.metalError != "" && (err == nil || !strings.Contains(err.Error(), tt.metalError) || !strings.HasSuffix(err.Error(), "use --backend emu")):
				t.Errorf("metal: %v; want an error with %q and the emu suggestion", err, tt.metalError)
			}
		})
	}
}

package metalkern

// The emu backend inside another program's process, as torch's op library
// uses it: the emulator, host/emu_backend.cpp and two test kernel files
// (matmul.metal, limits.metal) are built once into a shared library
// (position-independent, -fstack-clash-protection as the runtime's CMake
// builds them), and testdata/emu/inproc/host.cpp, linked to it, runs one
// subcommand per property: fork, concurrent dispatches, exit during a
// dispatch, fiber stack overflow, configure. Every run has a deadline so a
// hang fails fast.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

type emuInprocBuild struct {
	lib, host string
	err       error
}

var (
	emuInprocOnce  sync.Once
	emuInprocBuilt emuInprocBuild
)

func emuInproc(t *testing.T) emuInprocBuild {
	t.Helper()
	emuNeedTools(t, "g++")
	emuInprocOnce.Do(func() { emuInprocBuilt = buildEmuInproc(emuRuntimeDir(t), filepath.Join(emuTmpRoot, "inproc")) })
	if emuInprocBuilt.err != nil {
		t.Fatal(emuInprocBuilt.err)
	}
	return emuInprocBuilt
}

func buildEmuInproc(rt, root string) (b emuInprocBuild) {
	gen := filepath.Join(root, "gen")
	if b.err = os.MkdirAll(gen, 0o755); b.err != nil {
		return
	}
	ok := filepath.Join("testdata", "emu", "ok")
	tmp := filepath.Join(root, "metal")
	if b.err = os.MkdirAll(tmp, 0o755); b.err != nil {
		return
	}
	for _, name := range []string{"matmul.metal", "limits.metal", "emu_test.h", "tile.h"} {
		src, err := os.ReadFile(filepath.Join(ok, name))
		if err != nil {
			b.err = err
			return
		}
		if b.err = os.WriteFile(filepath.Join(tmp, name), src, 0o644); b.err != nil {
			return
		}
	}
	if b.err = emuGenerateAll(rt, tmp, gen); b.err != nil {
		return
	}
	// The hand-written sources as one unit, as the runtime's unity build does.
	var unity strings.Builder
	for _, f := range []string{"emu/launcher.cpp", "emu/group.cpp", "emu/fibers.cpp", "emu/threads.cpp",
		"emu/fiber_switch.cpp", "host/emu_backend.cpp"} {
		fmt.Fprintf(&unity, "#include %q\n", filepath.Join(rt, f))
	}
	unityFile := filepath.Join(root, "emu_unity.cpp")
	if b.err = os.WriteFile(unityFile, []byte(unity.String()), 0o644); b.err != nil {
		return
	}
	gens, _ := filepath.Glob(filepath.Join(gen, "*.emu.cpp"))
	sources := append([]string{unityFile}, gens...)
	inc := []string{"-I", filepath.Join(rt, "host"), "-I", filepath.Join(rt, "include"), "-I",
		filepath.Join(rt, "emu"), "-I", filepath.Join(rt, "emu", "include")}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	objs := make([]string, len(sources))
	errs := make([]error, len(sources))
	sem := make(chan struct{}, runtime.NumCPU())
	var wg sync.WaitGroup
	for i, src := range sources {
		objs[i] = filepath.Join(root, strings.TrimSuffix(filepath.Base(src), ".cpp")+".o")
		wg.Add(1)
		go func(i int, src string) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			args := append([]string{"-std=c++20", "-O1", "-fPIC", "-pthread", "-Wno-attributes",
				"-fstack-clash-protection"}, inc...)
			out, err := exec.CommandContext(ctx, "g++", append(args, "-c", src, "-o", objs[i])...).CombinedOutput()
			if err != nil {
				errs[i] = fmt.Errorf("g++ -c %s: %v\n%s", src, err, emuTail(out, 30))
			}
		}(i, src)
	}
	wg.Wait()
	if b.err = errors.Join(errs...); b.err != nil {
		return
	}
	b.lib = filepath.Join(root, "libemu_inproc.so")
	if out, err := exec.CommandContext(ctx, "g++", append(append([]string{"-shared", "-pthread"}, objs...),
		"-o", b.lib)...).CombinedOutput(); err != nil {
		b.err = fmt.Errorf("linking %s: %v\n%s", b.lib, err, emuTail(out, 30))
		return
	}
	host, _ := filepath.Abs(filepath.Join("testdata", "emu", "inproc", "host.cpp"))
	b.host = filepath.Join(root, "host")
	args := append([]string{"-std=c++20", "-O1", "-pthread"}, inc...)
	args = append(args, host, "-o", b.host, "-L", root, "-lemu_inproc", "-Wl,-rpath,"+root)
	if out, err := exec.CommandContext(ctx, "g++", args...).CombinedOutput(); err != nil {
		b.err = fmt.Errorf("g++ %s: %v\n%s", host, err, emuTail(out, 30))
	}
	return
}

// emuInprocRun runs `host sub` with a deadline; it fails the test on a hang.
func emuInprocRun(t *testing.T, sub string, deadline time.Duration, env ...string) (string, error) {
	t.Helper()
	b := emuInproc(t)
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.host, sub)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("host %s hung: killed after %v\n%s", sub, deadline, out.String())
	}
	return out.String(), err
}

func emuInprocMustPass(t *testing.T, sub string, deadline time.Duration, env ...string) string {
	t.Helper()
	out, err := emuInprocRun(t, sub, deadline, env...)
	if err != nil || !strings.Contains(out, "ok: ") {
		t.Fatalf("host %s: %v\n%s", sub, err, out)
	}
	t.Log(strings.TrimSpace(out))
	return out
}

// A child of fork() (also one forked while another thread dispatches)
// dispatches and exits; the parent goes on dispatching.
func TestEmuInprocFork(t *testing.T) {
	emuInprocMustPass(t, "fork", 90*time.Second, "ORCHARD_EMU_WORKERS=2")
}

// Four threads dispatch on one backend at once, every result exact.
func TestEmuInprocConcurrentDispatches(t *testing.T) {
	for _, mode := range emuModes {
		t.Run(mode, func(t *testing.T) {
			emuInprocMustPass(t, "threads", 2*time.Minute, "ORCHARD_EMU_MODE="+mode)
		})
	}
}

// exit() while a dispatch runs on another thread (a kernel that never
// ends): no static destructor may wait for the pool's threads.
func TestEmuInprocExitDuringDispatch(t *testing.T) {
	start := time.Now()
	emuInprocMustPass(t, "exit", 30*time.Second)
	t.Logf("exited after %v", time.Since(start).Round(time.Millisecond))
}

// A fiber stack overflow is an exception naming the kernel, the stack size
// and the knob; the process goes on, and a larger stack_kb makes it pass.
func TestEmuInprocStackOverflowIsAnError(t *testing.T) {
	for _, mode := range emuModes {
		t.Run(mode, func(t *testing.T) {
			out := emuInprocMustPass(t, "overflow", time.Minute, "ORCHARD_EMU_MODE="+mode)
			want := "overflow error: kernel 'deep_stack', threadgroup (0,0,0): stack overflow in thread "
			if !strings.Contains(out, want) || !strings.Contains(out, "256 KiB stack ("+mode+" mode)") {
				t.Errorf("output lacks %q and '256 KiB stack (%s mode)':\n%s", want, mode, out)
			}
		})
	}
}

// emu_configure validates; the environment is read at first use; a
// configured value wins over a bad environment value.
func TestEmuInprocConfigure(t *testing.T) {
	out := emuInprocMustPass(t, "configure", time.Minute, "ORCHARD_EMU_STACK_KB=abc")
	for _, want := range []string{
		"env error: emu: ORCHARD_EMU_STACK_KB=abc: want a whole number of KiB (the stack of each emulated thread) from 64 to 1048576",
		"invalid_argument: emu_configure: stack_kb='12': want a whole number of KiB (the stack of each emulated thread) from 64 to 1048576",
		"invalid_argument: emu_configure: stack_kb='lots': want a whole number of KiB",
		"invalid_argument: emu_configure: workers='-1': want a whole number of fibers worker threads (0 = all cores) from 0 to 4096",
		"invalid_argument: emu_configure: mode='gpu': want fibers or threads",
		"invalid_argument: emu_configure: watchdog_seconds='0': want a whole number of seconds",
		"invalid_argument: emu_configure: unknown key 'colour': want one of mode, workers, stack_kb, watchdog_seconds",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

// The shared library exports the backend but not the fiber switch's
// assembly symbols.
func TestEmuInprocHidesFiberSymbols(t *testing.T) {
	emuNeedTools(t, "nm")
	b := emuInproc(t)
	out, err := exec.Command("nm", "-D", "--defined-only", b.lib).CombinedOutput()
	if err != nil {
		t.Fatalf("nm -D %s: %v\n%s", b.lib, err, out)
	}
	syms := string(out)
	if !strings.Contains(syms, "make_backend") {
		t.Fatalf("nm -D shows no make_backend: is this the library?\n%s", emuTail(out, 20))
	}
	for _, s := range []string{"orchard_fiber_switch", "orchard_fiber_start"} {
		if strings.Contains(syms, s) {
			t.Errorf("%s is exported from %s", s, filepath.Base(b.lib))
		}
	}
}

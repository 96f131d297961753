package metalkern

// End-to-end tests of the emu backend share one build: the test kernels in
// testdata/emu/ok go through emugen.Generate, then the real
// runtime/CMakeLists.txt builds them with testdata/emu/driver.cpp as the
// runner's main (orchard-runner-emu, and orchard-runner-emu-tsan when
// libtsan is installed). The build happens once, on first use, in a
// directory TestMain removes at the end.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orchardkit/orchard/metalkern/emugen"
)

var emuTmpRoot string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "orchard-emu-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	emuTmpRoot = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type emuBuild struct {
	dir          string // the CMake build directory
	bin, tsanBin string
	tsanSkip     string // why there is no TSan runner
	err          error
	tsanOnce     sync.Once
	tsanErr      error
}

var (
	emuOnce  sync.Once
	emuBuilt *emuBuild
)

// emuTSan returns the TSan runner, building it on first use, or skips.
func emuTSan(t *testing.T) string {
	t.Helper()
	b := emu(t)
	if b.tsanSkip != "" {
		t.Skip(b.tsanSkip)
	}
	b.tsanOnce.Do(func() { b.tsanErr = emuCMakeBuild(b.dir, "orchard-runner-emu-tsan") })
	if b.tsanErr != nil {
		t.Fatal(b.tsanErr)
	}
	return b.tsanBin
}

func emuCMakeBuild(dir, target string) error {
	argv := []string{"cmake", "--build", dir, "--target", target, "-j", strconv.Itoa(runtime.NumCPU())}
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, emuTail(out, 60))
	}
	return nil
}

func emuRuntimeDir(t testing.TB) string {
	d, err := filepath.Abs("runtime")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func emuNeedTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (apt-get install cmake g++): the emu build cannot be tested", tool)
		}
	}
}

// emu returns the shared build, building it on first use.
func emu(t *testing.T) *emuBuild {
	t.Helper()
	emuNeedTools(t, "cmake", "g++", "make")
	emuOnce.Do(func() { emuBuilt = buildEmu(emuRuntimeDir(t), filepath.Join(emuTmpRoot, "native")) })
	if emuBuilt.err != nil {
		t.Fatal(emuBuilt.err)
	}
	return emuBuilt
}

// emuGenerateAll writes <gen>/*.emu.cpp for every .metal file in dir.
func emuGenerateAll(rt, dir, gen string) error {
	return emugen.GenerateDir(dir, gen, filepath.Join(rt, "include"))
}

func buildEmu(rt, root string) *emuBuild {
	b := &emuBuild{}
	gen, build := filepath.Join(root, "gen"), filepath.Join(root, "build")
	if b.err = emuGenerateAll(rt, filepath.Join("testdata", "emu", "ok"), gen); b.err != nil {
		return b
	}
	driver, _ := filepath.Abs(filepath.Join("testdata", "emu", "driver.cpp"))
	tsan := "OFF"
	if b.tsanSkip = emuTSanMissing(root); b.tsanSkip == "" {
		tsan = "ON"
	}
	argv := []string{"cmake", "-S", rt, "-B", build, "-DORCHARD_BACKEND=emu", "-DORCHARD_GEN_DIR=" + gen,
		"-DORCHARD_RUNNER_SOURCES=" + driver, "-DORCHARD_TSAN=" + tsan}
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		b.err = fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, emuTail(out, 60))
		return b
	}
	b.dir = build
	if b.err = emuCMakeBuild(build, "orchard-runner-emu"); b.err != nil {
		return b
	}
	b.bin = filepath.Join(build, "orchard-runner-emu")
	if tsan == "ON" {
		b.tsanBin = filepath.Join(build, "orchard-runner-emu-tsan")
	}
	return b
}

// emuTSanMissing returns why ThreadSanitizer programs cannot be built, or "".
func emuTSanMissing(root string) string {
	dir := filepath.Join(root, "tsan-probe")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err.Error()
	}
	src := filepath.Join(dir, "p.cpp")
	if err := os.WriteFile(src, []byte("int main() { return 0; }\n"), 0o644); err != nil {
		return err.Error()
	}
	out, err := exec.Command("g++", "-fsanitize=thread", src, "-o", filepath.Join(dir, "p")).CombinedOutput()
	if err != nil {
		return "g++ -fsanitize=thread does not link (libtsan missing? apt-get install libtsan2): " +
			strings.TrimSpace(emuTail(out, 3))
	}
	return ""
}

func emuTail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// emuRun is one driver invocation.
type emuRun struct {
	kernel   string
	mode     string // "" = backend default
	grid, tg [3]int
	in       map[int][]byte
	out      map[int]int // index -> bytes
	u32      map[int][]int64
	env      []string
	repeat   int
	storage  string // "" = shared (the driver's default)
	offset   int    // bytes each buffer is bound into its allocation
	direct   bool   // read the outputs through Buffer::data(), not download()
}

type emuResult struct {
	out            map[int][]byte
	stdout, stderr string
	err            error // non-nil when the driver failed
	elapsed        time.Duration
}

// emuLauncher runs the driver: natively, or under qemu for another arch.
type emuLauncher func(ctx context.Context, args ...string) *exec.Cmd

func emuNative(bin string) emuLauncher {
	return func(ctx context.Context, args ...string) *exec.Cmd { return exec.CommandContext(ctx, bin, args...) }
}

func (l emuLauncher) run(t *testing.T, r emuRun) emuResult {
	t.Helper()
	dir := t.TempDir()
	dims := func(d [3]int) string { return fmt.Sprintf("%d,%d,%d", d[0], d[1], d[2]) }
	args := []string{"run", "--kernel", r.kernel, "--grid", dims(r.grid), "--tg", dims(r.tg)}
	if r.mode != "" {
		args = append(args, "--mode", r.mode)
	}
	if r.repeat > 0 {
		args = append(args, "--repeat", strconv.Itoa(r.repeat))
	}
	if r.storage != "" {
		args = append(args, "--storage", r.storage)
	}
	if r.offset != 0 {
		args = append(args, "--offset", strconv.Itoa(r.offset))
	}
	if r.direct {
		args = append(args, "--read", "direct")
	}
	for i, data := range r.in {
		p := filepath.Join(dir, fmt.Sprintf("in%d.bin", i))
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--in", fmt.Sprintf("%d=%s", i, p))
	}
	for i, n := range r.out {
		args = append(args, "--out", fmt.Sprintf("%d=%s:%d", i, filepath.Join(dir, fmt.Sprintf("out%d.bin", i)), n))
	}
	for i, vals := range r.u32 {
		var s []string
		for _, v := range vals {
			s = append(s, strconv.FormatInt(v, 10))
		}
		args = append(args, "--u32", fmt.Sprintf("%d=%s", i, strings.Join(s, ",")))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := l(ctx, args...)
	cmd.Env = append(os.Environ(), r.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	res := emuResult{stdout: stdout.String(), stderr: stderr.String(), err: err, elapsed: time.Since(start),
		out: map[int][]byte{}}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("%s (%s) hung: killed after 2 minutes", r.kernel, r.mode)
	}
	if err == nil {
		for i := range r.out {
			b, rerr := os.ReadFile(filepath.Join(dir, fmt.Sprintf("out%d.bin", i)))
			if rerr != nil {
				t.Fatal(rerr)
			}
			res.out[i] = b
		}
	}
	return res
}

// mustRun runs r and fails the test on a driver error.
func (l emuLauncher) mustRun(t *testing.T, r emuRun) emuResult {
	t.Helper()
	res := l.run(t, r)
	if res.err != nil {
		t.Fatalf("%s (%s): %v\n%s", r.kernel, r.mode, res.err, res.stderr)
	}
	return res
}

func emuU32s(b []byte) []uint32 {
	x := make([]uint32, len(b)/4)
	for i := range x {
		x[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return x
}

// emuExactHalf encodes a float32 that half represents exactly as a normal
// number or zero (test inputs are chosen that way).
func emuExactHalf(f float32) uint16 {
	bits := math.Float32bits(f)
	sign := uint16(bits>>16) & 0x8000
	if bits&0x7fffffff == 0 {
		return sign
	}
	exp := int(bits>>23&0xff) - 127 + 15
	if exp <= 0 || exp >= 31 || bits&0x1fff != 0 {
		panic(fmt.Sprintf("%g is not exactly representable as a normal half", f))
	}
	return sign | uint16(exp)<<10 | uint16(bits>>13&0x3ff)
}

// emuSiteLine returns the line of the "SITE: name" marker in a test kernel.
func emuSiteLine(t *testing.T, file, name string) int {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(string(src), "\n") {
		if strings.HasSuffix(strings.TrimSpace(line), "SITE: "+name) {
			return i + 1
		}
	}
	t.Fatalf("no SITE: %s marker in %s", name, file)
	return 0
}

var emuModes = []string{"fibers", "threads"}

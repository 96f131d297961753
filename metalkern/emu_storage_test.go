package metalkern

// Storage modes and offsets on the emu backend (backend.h): a private
// buffer has no host pointer, so host code that touches it directly fails
// with a message saying why; upload()/download() stage it through a shared
// buffer and Backend::copy; kernels see every buffer at its offset.

import (
	"bytes"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Reading a private buffer's bytes on the host (Buffer::data()) is refused
// with the buffer's name and the way out; the same read of a shared buffer
// works.
func TestEmuPrivateBufferRefusesHostAccess(t *testing.T) {
	l := emuNative(emu(t).bin)
	run := emuRun{kernel: "features", mode: "fibers", grid: [3]int{1, 1, 1}, tg: [3]int{32, 1, 1},
		out: map[int]int{0: 4 * 32 * 8}, direct: true}
	if res := l.run(t, run); res.err != nil {
		t.Fatalf("shared buffer read directly: %v\n%s", res.err, res.stderr)
	}
	run.storage = "private"
	res := l.run(t, run)
	if res.err == nil {
		t.Fatal("the host read a private buffer directly: want a refusal")
	}
	for _, want := range []string{"is in private storage", "the host cannot read or write it directly", "upload()/download()"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("stderr %q lacks %q", res.stderr, want)
		}
	}
}

// upload → private buffer → Backend::copy → private buffer → download
// returns the input byte for byte, at sizes that are not multiples of the
// copy alignment and at several offsets; an unaligned offset is refused.
func TestEmuStagingRoundTrips(t *testing.T) {
	bin := emu(t).bin
	dir := t.TempDir()
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for _, storage := range []string{"private", "shared"} {
		for _, size := range []int{1, 2, 6, 10, 4098, 65537} {
			for _, off := range []int{0, 4, 20, 16388} {
				data := make([]byte, size)
				rng.Read(data)
				in, out := filepath.Join(dir, "in.bin"), filepath.Join(dir, "out.bin")
				if err := os.WriteFile(in, data, 0o644); err != nil {
					t.Fatal(err)
				}
				os.Remove(out)
				cmd := exec.Command(bin, "stage", "--in", in, "--out", out, "--storage", storage, "--offset", strconv.Itoa(off))
				if b, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("%s size %d offset %d: %v\n%s", storage, size, off, err, b)
				}
				got, err := os.ReadFile(out)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, data) {
					t.Fatalf("%s size %d offset %d: round trip changed the bytes", storage, size, off)
				}
			}
		}
	}
	b, err := exec.Command(bin, "stage", "--in", filepath.Join(dir, "in.bin"), "--out", filepath.Join(dir, "x.bin"),
		"--storage", "private", "--offset", "6").CombinedOutput()
	if err == nil || !strings.Contains(string(b), "offsets must be multiples of 4") {
		t.Errorf("offset 6: %v %q, want a refusal naming the alignment", err, b)
	}
}

// Kernels see private buffers, and buffers bound at an offset, exactly as
// shared ones at offset 0: the same matmul results, bit for bit.
func TestEmuKernelsSeePrivateBuffersAtTheirOffset(t *testing.T) {
	l := emuNative(emu(t).bin)
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	base := emuCheckMatmul(t, l, "fibers", rand.New(rand.NewSource(seed)))
	for _, c := range []struct {
		storage string
		offset  int
	}{{"private", 0}, {"private", 20}, {"shared", 4}, {"shared", 16388}} {
		got := emuCheckMatmul(t, l, "fibers", rand.New(rand.NewSource(seed)), func(r *emuRun) {
			r.storage, r.offset = c.storage, c.offset
		})
		if !bytes.Equal(got, base) {
			t.Errorf("%s storage at offset %d: matmul_f32 differs from shared at offset 0", c.storage, c.offset)
		}
	}
}

package metalkern

// The real runner in both storage modes and at buffer offsets
// (--storage, --buffer-offset; docs/runtime.md): the same outputs bit for
// bit, and the logs say which mode each dispatch and buffer used.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orchardkit/orchard/metalkern/npy"
	"github.com/orchardkit/orchard/metalkern/reference"

	"github.com/orchardkit/orchard/logs"
)

func TestRunnerPrivateStorageAndOffsets(t *testing.T) {
	bin := runlogRunner(t)
	dir := t.TempDir()
	calls, profile := filepath.Join(dir, "calls.log"), filepath.Join(dir, "profile.log")
	c := runlogCase{s: reference.Shape{B: 1, H: 2, Nq: 19, Nk: 33, D: 13}, dt: npy.Float16, causal: true, bwd: true}
	args := withoutOut(c.args(t, filepath.Join(dir, "in"))) // each run gets its own --out
	outputs := []string{"o", "lse", "dq", "dk", "dv"}
	runs := []struct {
		storage string
		offset  string
	}{{"shared", "0"}, {"private", "0"}, {"private", "20"}, {"shared", "1028"}}
	var base map[string][]byte
	for i, r := range runs {
		out := filepath.Join(dir, fmt.Sprint(i))
		a := append(append([]string{}, args...), "--out", out, "--storage", r.storage, "--buffer-offset", r.offset)
		runID := fmt.Sprintf("storage-%d", i)
		res := runlogExec(t, bin, runlogEnv(calls, profile, runID), a...)
		if res.code != 0 {
			t.Fatalf("%s offset %s: exit %d\n%s", r.storage, r.offset, res.code, res.stderr)
		}
		got := map[string][]byte{}
		for _, o := range outputs {
			b, err := os.ReadFile(filepath.Join(out, o+".npy"))
			if err != nil {
				t.Fatal(err)
			}
			got[o] = b
		}
		if base == nil {
			base = got
		}
		for _, o := range outputs {
			if !bytes.Equal(got[o], base[o]) {
				t.Errorf("%s offset %s: %s.npy differs from shared storage at offset 0", r.storage, r.offset, o)
			}
		}
		lines := runlogLines(t, calls)
		n := 0
		for _, l := range runlogOfPID(lines, res.pid, logs.WordFWD, logs.WordBWD) {
			n++
			if l.Storage != r.storage {
				t.Errorf("%s run: %s line has storage=%s", r.storage, l.Word, l.Storage)
			}
		}
		if n != 3 { // 1 forward, 2 backward dispatches
			t.Errorf("%s run: %d FWD/BWD lines, want 3", r.storage, n)
		}
		allocs := runlogOfPID(runlogLines(t, profile), res.pid, logs.WordAlloc)
		for _, l := range allocs {
			if l.Storage != r.storage {
				t.Errorf("%s run: ALLOC %s has storage=%s", r.storage, l.Name, l.Storage)
			}
		}
		if len(allocs) != 10 {
			t.Errorf("%s run: %d ALLOC lines, want 10 (no line for staging buffers)", r.storage, len(allocs))
		}
	}
	// The outputs are right, not just equal: against the float64 reference.
	in := func(name string) []float64 {
		a, err := npy.Read(filepath.Join(dir, "in", name+".npy"))
		if err != nil {
			t.Fatal(err)
		}
		return reference.Float64s(a.Data)
	}
	o, lse := reference.Forward(in("q"), in("k"), in("v"), c.s, true, reference.DefaultScale(c.s.D))
	tol, _ := reference.ToleranceFor(npy.Float16)
	for name, ref := range map[string][]float64{"o": o, "lse": lse} {
		a, err := npy.Read(filepath.Join(dir, "2", name+".npy"))
		if err != nil {
			t.Fatal(err)
		}
		if e := reference.RelErr(a.Data, ref); !(e <= tol.MaxRelErr) {
			t.Errorf("private at offset 20: %s rel err %g > %g", name, e, tol.MaxRelErr)
		}
	}

	for _, bad := range []struct{ flag, val, want string }{
		{"--storage", "managed", "--storage must be shared or private"},
		{"--buffer-offset", "6", "--buffer-offset must be a multiple of 4"},
		{"--buffer-offset", "-4", "--buffer-offset must be a multiple of 4"},
	} {
		a := append(append([]string{}, args...), "--out", filepath.Join(dir, "bad"), bad.flag, bad.val)
		res := runlogExec(t, bin, nil, a...)
		if res.code != 2 || !strings.Contains(res.stderr, bad.want) {
			t.Errorf("%s %s: exit %d, stderr %q; want exit 2 and %q", bad.flag, bad.val, res.code, res.stderr, bad.want)
		}
	}
	res := runlogExec(t, bin, nil, "info", "--storage", "private")
	if res.code != 2 || !strings.Contains(res.stderr, "not valid for info") {
		t.Errorf("info --storage: exit %d, stderr %q; want exit 2", res.code, res.stderr)
	}
}

// withoutOut drops the "--out DIR" pair runlogCase.args added.
func withoutOut(a []string) []string {
	for i := 0; i+1 < len(a); i++ {
		if a[i] == "--out" {
			return append(a[:i:i], a[i+2:]...)
		}
	}
	return a
}

package npy

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The tests in this file cross-check against numpy, an independent
// implementation of both the .npy format and float16 rounding. They need a
// python3 with numpy (Debian: apt-get install python3-numpy) and are skipped
// with that reason otherwise.

// findNumpyPython returns a python3 that can import numpy: $ORCHARD_PYTHON,
// then python3 on PATH, then /usr/bin/python3 (where Debian's python3-numpy
// installs when PATH holds a pyenv or venv python).
func findNumpyPython(t *testing.T) string {
	t.Helper()
	var tried []string
	cands := []string{os.Getenv("ORCHARD_PYTHON"), "python3", "/usr/bin/python3"}
	for _, c := range cands {
		if c == "" {
			continue
		}
		path, err := exec.LookPath(c)
		if err != nil {
			continue
		}
		tried = append(tried, path)
		if exec.Command(path, "-c", "import numpy").Run() == nil {
			return path
		}
	}
	t.Skipf("numpy cross-check skipped: no python3 with numpy (tried %v); install python3-numpy or set ORCHARD_PYTHON", tried)
	return ""
}

const numpyScript = `
import json, sys, os
import numpy as np
d = sys.argv[1]
p = lambda n: os.path.join(d, n)
man = json.load(open(p("manifest.json")))
out = {}

# 1. Load every Go-written file and save it again with numpy.
for name in man["go_files"]:
    a = np.load(p(name))
    np.save(p("resaved_" + name), a)
    out[name] = {"dtype": a.dtype.str, "shape": list(a.shape)}

# Hand-built golden files: numpy's view of their values.
for i, path in enumerate(man["golden"]):
    np.asarray(np.load(path), dtype="<f4").tofile(p("golden%d.raw" % i))

# 2. Files written by numpy for Go to read; .raw holds the expected values
#    as little-endian float32.
rng = np.random.default_rng(7)
def save(name, a, version=None, raw=True):
    with open(p(name), "wb") as f:
        np.lib.format.write_array(f, a, version=version, allow_pickle=True)
    if raw:
        np.asarray(a, dtype="<f4").tofile(p(name + ".raw"))
x = rng.standard_normal((3, 5, 7)).astype(np.float32)
save("py_f4.npy", x)
save("py_f2.npy", np.array([0, -0.0, 1, -2, 65504, 6e-8, 1e-5, np.inf, -np.inf, np.nan, 1/3], dtype=np.float16))
save("py_f2_rand.npy", rng.standard_normal((4, 9)).astype(np.float16))
save("py_v2.npy", x, version=(2, 0))
save("py_v3.npy", x, version=(3, 0))
save("py_scalar.npy", np.float32(1.5))
save("py_empty.npy", np.zeros((0, 3), np.float32))
save("py_strided.npy", x[:, ::2, 1:])
save("py_fortran.npy", np.asfortranarray(x), raw=False)
save("py_transposed.npy", x.T, raw=False)
save("py_be.npy", x.astype(">f4"), raw=False)
save("py_f8.npy", x.astype(np.float64), raw=False)
save("py_i4.npy", np.arange(6, dtype=np.int32), raw=False)
save("py_obj.npy", np.array([1, "a"], dtype=object), raw=False)
save("py_struct.npy", np.zeros(2, dtype=[("a", "<f4"), ("b", "<f4")]), raw=False)

# 3. float16 conversions.
np.arange(65536, dtype=np.uint16).view(np.float16).astype("<f4").tofile(p("half_to_f32.raw"))
f = np.fromfile(p("f32_samples.raw"), dtype="<f4")
f.astype(np.float16).view("<u2").tofile(p("f32_to_half.raw"))
json.dump(out, open(p("result.json"), "w"))
`

func TestNumpyCrossCheck(t *testing.T) {
	py := findNumpyPython(t)
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(11, 12))

	goArrays := map[string]*Array{
		"go_f4.npy":        randomArray(rng, Float32, 2, 3, 4),
		"go_f2.npy":        randomArray(rng, Float16, 5, 7),
		"go_scalar.npy":    {Shape: []int{}, DType: Float32, Data: []float32{-3.25}},
		"go_empty.npy":     {Shape: []int{0, 4}, DType: Float16, Data: []float32{}},
		"go_rank5.npy":     randomArray(rng, Float32, 1, 2, 1, 3, 2),
		"go_long_axis.npy": randomArray(rng, Float32, 123456),
		"go_f2_specials.npy": {Shape: []int{6}, DType: Float16, Data: []float32{
			float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 0x1p-24, 65504, 1e5}},
	}
	var names []string
	for name, a := range goArrays {
		if err := Write(filepath.Join(dir, name), a); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	var golden []goldenCase
	var goldenPaths []string
	for _, c := range goldenCases() {
		if c.want != nil {
			abs, err := filepath.Abs(filepath.Join("testdata", c.file))
			if err != nil {
				t.Fatal(err)
			}
			golden = append(golden, c)
			goldenPaths = append(goldenPaths, abs)
		}
	}
	manifest, _ := json.Marshal(map[string]any{"go_files": names, "golden": goldenPaths})
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), manifest, 0o644); err != nil {
		t.Fatal(err)
	}
	samples := float16Samples(rng)
	if err := os.WriteFile(filepath.Join(dir, "f32_samples.raw"), Float32Bytes(samples), 0o644); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(py, "-c", numpyScript, dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s failed: %v\n%s", py, err, out)
	}

	t.Run("numpy reads Go files", func(t *testing.T) {
		var res map[string]struct {
			DType string
			Shape []int
		}
		readJSON(t, filepath.Join(dir, "result.json"), &res)
		for name, a := range goArrays {
			r := res[name]
			wantDescr := map[DType]string{Float32: "<f4", Float16: "<f2"}[a.DType]
			if r.DType != wantDescr || len(r.Shape) != len(a.Shape) {
				t.Errorf("%s: numpy sees %s %v, want %s %v", name, r.DType, r.Shape, wantDescr, a.Shape)
			}
			// numpy's own save of what it loaded is byte-identical to ours:
			// same header layout, same data.
			ours, _ := os.ReadFile(filepath.Join(dir, name))
			theirs, _ := os.ReadFile(filepath.Join(dir, "resaved_"+name))
			if !bytes.Equal(ours, theirs) {
				t.Errorf("%s: numpy.save of the loaded array differs from Encode's bytes:\n ours %q\n numpy %q",
					name, head(ours), head(theirs))
			}
		}
	})

	t.Run("numpy reads the golden files", func(t *testing.T) {
		for i, c := range golden {
			raw, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("golden%d.raw", i)))
			if err != nil {
				t.Fatal(err)
			}
			got := Float32sFromBytes(raw)
			for j := range got {
				if j >= len(c.want.Data) || math.Float32bits(got[j]) != math.Float32bits(c.want.Data[j]) &&
					!(math.IsNaN(float64(got[j])) && math.IsNaN(float64(c.want.Data[j]))) {
					t.Fatalf("%s: numpy reads %v, want %v", c.file, got, c.want.Data)
				}
			}
			if len(got) != len(c.want.Data) {
				t.Fatalf("%s: numpy reads %d values, want %d", c.file, len(got), len(c.want.Data))
			}
		}
	})

	t.Run("Go reads numpy files", func(t *testing.T) {
		for _, name := range []string{"py_f4.npy", "py_f2.npy", "py_f2_rand.npy", "py_v2.npy", "py_v3.npy",
			"py_scalar.npy", "py_empty.npy", "py_strided.npy"} {
			a, err := Read(filepath.Join(dir, name))
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			raw, err := os.ReadFile(filepath.Join(dir, name+".raw"))
			if err != nil {
				t.Fatal(err)
			}
			want := Float32sFromBytes(raw)
			if len(want) != len(a.Data) {
				t.Errorf("%s: %d values, numpy has %d", name, len(a.Data), len(want))
				continue
			}
			for i := range want {
				if a.Data[i] != want[i] && !(math.IsNaN(float64(want[i])) && math.IsNaN(float64(a.Data[i]))) {
					t.Errorf("%s[%d] = %v, numpy has %v", name, i, a.Data[i], want[i])
					break
				}
			}
		}
		for name, wantErr := range map[string]string{
			"py_fortran.npy":    "Fortran order",
			"py_transposed.npy": "Fortran order",
			"py_be.npy":         "big-endian data (descr '>f4')",
			"py_f8.npy":         "float64 is not supported",
			"py_i4.npy":         "integer data",
			"py_obj.npy":        "object arrays are not supported",
			"py_struct.npy":     "structured or sub-array dtype",
		} {
			_, err := Read(filepath.Join(dir, name))
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Errorf("%s: error %v, want %q", name, err, wantErr)
			}
		}
	})

	t.Run("float16 to float32 matches numpy", func(t *testing.T) {
		raw, err := os.ReadFile(filepath.Join(dir, "half_to_f32.raw"))
		if err != nil {
			t.Fatal(err)
		}
		want := Float32sFromBytes(raw)
		for h := range want {
			got := Float16ToFloat32(uint16(h))
			if math.Float32bits(got) != math.Float32bits(want[h]) &&
				!(math.IsNaN(float64(got)) && math.IsNaN(float64(want[h]))) {
				t.Fatalf("%#04x: %v, numpy %v", h, got, want[h])
			}
		}
	})

	t.Run("float32 to float16 matches numpy", func(t *testing.T) {
		raw, err := os.ReadFile(filepath.Join(dir, "f32_to_half.raw"))
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range samples {
			want := binary.LittleEndian.Uint16(raw[2*i:])
			got := Float32ToFloat16(f)
			if math.IsNaN(float64(f)) {
				if got&0x7c00 != 0x7c00 || got&0x3ff == 0 || got>>15 != want>>15 {
					t.Fatalf("NaN %#08x -> %#04x, numpy %#04x", math.Float32bits(f), got, want)
				}
				continue
			}
			if got != want {
				t.Fatalf("%v (%#08x) -> %#04x, numpy %#04x", f, math.Float32bits(f), got, want)
			}
		}
	})
}

// float16Samples returns float32 values that stress float16 rounding: every
// midpoint between neighbouring halves and its two float32 neighbours, plus
// random bit patterns.
func float16Samples(rng *rand.Rand) []float32 {
	var s []float32
	for h := range 0x7c00 {
		lo := float64(Float16ToFloat32(uint16(h)))
		hi := 65536.0
		if h < 0x7bff {
			hi = float64(Float16ToFloat32(uint16(h + 1)))
		}
		mid := float32((lo + hi) / 2)
		for _, f := range []float32{mid, math.Nextafter32(mid, 0), math.Nextafter32(mid, float32(math.Inf(1)))} {
			s = append(s, f, -f)
		}
	}
	for range 1 << 18 {
		s = append(s, math.Float32frombits(rng.Uint32()))
	}
	return s
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func head(b []byte) []byte { return b[:min(len(b), 160)] }

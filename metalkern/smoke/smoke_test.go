package smoke

import (
	"testing"

	"github.com/orchardkit/orchard/metalkern"
	"github.com/orchardkit/orchard/metalkern/npy"
)

// The suite runs half its cases in each storage mode, and every dtype and
// mask in both (the staging path differs by element size).
func TestSuiteCoversBothStorageModes(t *testing.T) {
	type key struct {
		dt      npy.DType
		causal  bool
		storage string
	}
	seen := map[key]int{}
	modes := map[string]int{}
	perShape := map[string]map[string]map[npy.DType]bool{}
	for _, c := range Suite() {
		if c.Storage != metalkern.StorageShared && c.Storage != metalkern.StoragePrivate {
			t.Fatalf("%s: storage %q, want shared or private", c.Name(), c.Storage)
		}
		seen[key{c.DType, c.Causal, c.Storage}]++
		modes[c.Storage]++
		sk := c.Shape
		name := Case{Shape: sk}.Name()
		if perShape[name] == nil {
			perShape[name] = map[string]map[npy.DType]bool{}
		}
		if perShape[name][c.Storage] == nil {
			perShape[name][c.Storage] = map[npy.DType]bool{}
		}
		perShape[name][c.Storage][c.DType] = true
	}
	if modes[metalkern.StorageShared] != modes[metalkern.StoragePrivate] {
		t.Errorf("storage modes %v: want half of the cases each", modes)
	}
	for _, dt := range []npy.DType{npy.Float32, npy.Float16} {
		for _, causal := range []bool{false, true} {
			for _, st := range metalkern.Storages {
				if seen[key{dt, causal, st}] == 0 {
					t.Errorf("no %s causal=%v case in %s storage", dt, causal, st)
				}
			}
		}
	}
	for name, m := range perShape {
		if len(m) != 2 {
			t.Errorf("shape %s runs in one storage mode only: %v", name, m)
		}
	}
	for _, c := range RaceSuite() {
		modes[c.Storage+"-race"]++
	}
	if modes["shared-race"] == 0 || modes["private-race"] == 0 {
		t.Errorf("race suite storage modes %v: want both", modes)
	}
}

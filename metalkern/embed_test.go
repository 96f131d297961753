package metalkern

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"
)

func TestEmbeddedRuntimeHasItsParts(t *testing.T) {
	files, err := Embedded().Files()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, f := range files {
		have[f] = true
	}
	for _, want := range []string{"CMakeLists.txt", "kernels/attn_fwd.metal", "kernels/attn_bwd.metal",
		"include/orchard/params.h", "host/runner.cpp", "host/metal_backend.mm", "host/emu_backend.cpp", "emu/include/metal_stdlib"} {
		if !have[want] {
			t.Errorf("embedded runtime lacks %s", want)
		}
	}
}

func TestMaterializeRewritesOnlyWhatChanged(t *testing.T) {
	src := fstest.MapFS{
		"kernels/a.metal": {Data: []byte("kernel a")},
		"host/runner.cpp": {Data: []byte("int main(){}")},
	}
	dst := t.TempDir()
	s := Source{FS: src}
	if _, err := s.Materialize(dst); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	for _, f := range []string{"kernels/a.metal", "host/runner.cpp"} {
		os.Chtimes(filepath.Join(dst, f), old, old)
	}
	os.WriteFile(filepath.Join(dst, "host", "stale.cpp"), []byte("from an older orchard"), 0o644)

	src["host/runner.cpp"] = &fstest.MapFile{Data: []byte("int main(){return 1;}")}
	if _, err := s.Materialize(dst); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(filepath.Join(dst, "kernels/a.metal"))
	if !st.ModTime().Equal(old.Truncate(time.Second)) && st.ModTime().After(old.Add(time.Minute)) {
		t.Errorf("an unchanged file was rewritten (mtime %v)", st.ModTime())
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "host/runner.cpp")); string(b) != "int main(){return 1;}" {
		t.Errorf("a changed file was not rewritten: %q", b)
	}
	if _, err := os.Stat(filepath.Join(dst, "host", "stale.cpp")); !os.IsNotExist(err) {
		t.Errorf("a file the runtime no longer has was kept")
	}
}

func TestEjectRefusesNonEmptyAndHashFollowsContent(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "x"), nil, 0o644)
	if _, err := Embedded().Eject(dir, false); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("eject over a non-empty dir: %v", err)
	}
	out := filepath.Join(t.TempDir(), "rt")
	if _, err := Embedded().Eject(out, false); err != nil {
		t.Fatal(err)
	}
	ej, err := FromDir(out)
	if err != nil {
		t.Fatal(err)
	}
	h1, _ := ej.Hash(nil)
	e1, _ := Embedded().Hash(nil)
	if h1 != e1 {
		t.Fatal("an ejected runtime hashes differently from the embedded one")
	}
	os.WriteFile(filepath.Join(out, "kernels", "attn_fwd.metal"), []byte("// edited\n"), 0o644)
	if h2, _ := ej.Hash(nil); h2 == h1 {
		t.Fatal("editing a kernel did not change the hash")
	}
	onlyHost := func(p string) bool { return filepath.Dir(p) == "host" }
	a, _ := ej.Hash(onlyHost)
	b, _ := Embedded().Hash(onlyHost)
	if a != b {
		t.Fatal("editing a kernel changed the hash of the host files")
	}
}

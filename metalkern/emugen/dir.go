package emugen

import (
	"fmt"
	"os"
	"path/filepath"
)

// GenerateDir writes Generate's translation unit for every .metal file in
// dir into outDir (as OutputName), with includeDirs as Generate's. For
// tools and tests that build an emu runner by hand; orchard's shader step
// generates file by file to report each file's diagnostics.
func GenerateDir(dir, outDir string, includeDirs ...string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.metal"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no .metal files in %s", dir)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		code, _, err := Generate(f, src, includeDirs...)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(outDir, OutputName(f)), code, 0o644); err != nil {
			return err
		}
	}
	return nil
}

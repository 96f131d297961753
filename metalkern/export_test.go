package metalkern

import "testing"

// BuiltRunnerForTest is the real emu runner the package's tests build once
// (runlogRunner), for the external tests that drive it through
// metalkern/smoke.
func BuiltRunnerForTest(t *testing.T) string { return runlogRunner(t) }

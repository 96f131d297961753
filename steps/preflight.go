package steps

import (
	"strings"

	"github.com/orchardkit/orchard/checks"
)

// PreflightError is a failure before the first step runs (the build dir
// cannot be used, the backend is unavailable, nothing was built yet): it
// carries the failed check that the report shows in every format, so an
// early failure reports like any other. Env marks an environment failure
// (exit 3) rather than a failed check (exit 1).
type PreflightError struct {
	Check checks.Check
	Env   bool
}

func (e *PreflightError) Error() string {
	if len(e.Check.Evidence) > 0 {
		return e.Check.Title + ": " + e.Check.Evidence[0]
	}
	return e.Check.Title
}

// Preflight returns a PreflightError for check id with its evidence and fix.
func Preflight(id, title, fix string, env bool, evidence ...string) *PreflightError {
	return &PreflightError{Env: env, Check: checks.Check{ID: id, Title: title, Status: checks.Fail, Evidence: evidence, Hint: fix}}
}

// Rerun is the user's command with the flags that select this build
// (--runtime, --build-dir, --backend), plus extra: hints quote it so that
// following a hint rebuilds what the user was building, not the default.
func (b *Build) Rerun(command string, extra ...string) string {
	parts := append([]string{"orchard", command}, b.RerunFlags...)
	return strings.Join(append(parts, extra...), " ")
}

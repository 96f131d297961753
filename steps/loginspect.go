package steps

import (
	"context"
	"fmt"

	"github.com/orchardkit/orchard/logs"
)

// LogInspectStep reads the kernel-call log lines of the smoke step's run
// (by run id: older lines, and other runs', do not count) and checks that
// every dispatch was logged (in the storage mode its case ran in: the
// suite runs both), that nothing errored or fell back to the CPU, and that
// the lines name the backend requested.
type LogInspectStep struct {
	Smoke *SmokeStep
}

func (s *LogInspectStep) Name() string  { return "logs" }
func (s *LogInspectStep) Title() string { return "Log inspection" }
func (s *LogInspectStep) Output() any   { return &struct{}{} }

// CheckIDs: the three verdicts of logs.CheckRun.
func (s *LogInspectStep) CheckIDs(string) []string {
	return []string{logs.CheckKernelCalls, logs.CheckLogsClean, logs.CheckOnAccelerator}
}

// Key: the smoke run it judges. A cached smoke step keeps its run id, so
// its verdict on the log is reused with it; a new smoke run is inspected
// afresh.
func (s *LogInspectStep) Key(sc *Context) (KeyInputs, error) {
	return KeyInputs{Version: "2", Config: map[string]string{
		"run": s.Smoke.Out.RunID, "fwd": fmt.Sprint(s.Smoke.Out.FWD), "bwd": fmt.Sprint(s.Smoke.Out.BWD),
		"storage": fmt.Sprint(s.Smoke.Out.Storage),
		"log":     logs.KernelLogPath(sc.BuildDir, sc.Getenv),
	}}, nil
}

func (s *LogInspectStep) Run(ctx context.Context, sc *Context) (Result, error) {
	path := logs.KernelLogPath(sc.BuildDir, sc.Getenv)
	want := logs.Want{FWD: s.Smoke.Out.FWD, BWD: s.Smoke.Out.BWD, Storage: s.Smoke.Out.Storage}
	cs := logs.CheckRunWant(path, s.Smoke.Out.RunID, want, sc.Backend)
	return Result{Checks: cs, Detail: fmt.Sprintf("run %s: %d FWD, %d BWD expected", s.Smoke.Out.RunID, s.Smoke.Out.FWD, s.Smoke.Out.BWD)}, nil
}

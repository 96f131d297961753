package steps

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// A runner call that failed on its own — it crashed, was killed, hung, or
// exited with an error of its own — as opposed to kernels that ran and
// computed wrong numbers. Such a failure stops the suite at that case: the
// next cases would only fail the same way, each after its own timeout.
type runnerFailure struct {
	// Summary is one line: how the runner ended and its own message.
	Summary string
	// Tail is the last lines of the runner's stderr.
	Tail []string
	// Hint is what to do for this kind of failure.
	Hint string
}

// stderrTailLines is how much of the runner's stderr a report shows.
const stderrTailLines = 8

// describeRunnerFailure explains err (from one runner call) for a report.
// watchdog is the emu watchdog the call ran with (0: none set by orchard).
func describeRunnerFailure(err error, b *Build, sc *Context, watchdog int) runnerFailure {
	stepLog := filepath.Join(sc.BuildDir, "logs", "steps", sc.step+".log")
	var ee *ExecError
	if !errors.As(err, &ee) {
		// orchard's own side failed (writing the inputs, say).
		return runnerFailure{Summary: err.Error(),
			Hint: "orchard could not prepare the case: fix what the error names (free space, permissions of " + sc.BuildDir + ") and rerun '" + b.Rerun("rebuild") + "'"}
	}
	f := runnerFailure{Summary: ee.Error()}
	msg := runnerMessage(ee)
	if msg != "" && ee.TimedOut == 0 {
		f.Summary += ": " + msg
	}
	// The tail, less the message the summary already quotes.
	for _, l := range ee.Tail {
		if ee.TimedOut > 0 || strings.TrimSpace(l) != msg {
			f.Tail = append(f.Tail, l)
		}
	}
	if len(f.Tail) > stderrTailLines {
		f.Tail = f.Tail[len(f.Tail)-stderrTailLines:]
	}
	longer := b.Rerun("rebuild", "--runner-timeout", (4 * b.runnerTimeout()).String())
	switch {
	case ee.TimedOut > 0:
		why := "a hang in the host code (a hang inside a kernel is stopped earlier by the emu watchdog"
		if watchdog > 0 {
			why += fmt.Sprintf(", ORCHARD_EMU_WATCHDOG_SECONDS=%d", watchdog)
		}
		why += ")"
		if sc.Backend != BackendEmu {
			why = "a hang in the host code or a GPU command that never completes"
		}
		f.Hint = fmt.Sprintf("the runner did not finish within %s and was killed: %s; the call is in %s. If it is only slow, allow more with '%s'",
			ee.TimedOut, why, stepLog, longer)
	case strings.Contains(msg, "no progress for"):
		f.Hint = fmt.Sprintf("a kernel hung and the emu watchdog stopped it after %ds (ORCHARD_EMU_WATCHDOG_SECONDS, set by orchard to a quarter of --runner-timeout): look for an endless loop or a spin-wait in the kernel named above. If the kernel is only slow, allow more with '%s'",
			watchdog, longer)
	case ee.Crashed():
		core := "no core was written; 'ulimit -c unlimited' before rerunning keeps one (where: /proc/sys/kernel/core_pattern)"
		if ee.Core {
			core = "a core was written (where: /proc/sys/kernel/core_pattern)"
		}
		f.Hint = fmt.Sprintf("the runner crashed (%s): its last output is above and the full call in %s; %s. Debug the call there under gdb, then rerun '%s'",
			ee.Signal, stepLog, core, b.Rerun("rebuild"))
	case logRefusal(msg):
		f.Hint = "the runner refused its log file (which one and why is above): fix that path, or point the variable named there elsewhere, then rerun '" + b.Rerun("rebuild") + "'"
	case ee.ExitCode == 2:
		f.Hint = "the runner rejected its input or flags (exit 2): the runtime's host and orchard disagree about the runner contract (docs/runtime.md); rebuild with '" + b.Rerun("rebuild", "--force") + "'"
	default:
		f.Hint = fmt.Sprintf("the runner failed with an error of its own (above; full output in %s): fix what it names, then rerun '%s'", stepLog, b.Rerun("rebuild"))
	}
	return f
}

// runnerMessage is the runner's own error line ("orchard-runner: ..."), or
// the last line of its stderr.
func runnerMessage(ee *ExecError) string {
	for i := len(ee.Tail) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(ee.Tail[i]); strings.HasPrefix(l, "orchard-runner: ") {
			return l
		}
	}
	return ee.LastLine()
}

// logRefusal: the runner could not open, create or write one of its logs
// (runlog.cpp's LogError messages).
func logRefusal(msg string) bool {
	for _, p := range []string{"cannot open the ", "cannot write the ", "cannot create directory "} {
		if strings.Contains(msg, p) && strings.Contains(msg, " log") {
			return true
		}
	}
	return false
}

// watchdogFor is the emu watchdog (whole seconds) for runner calls bounded
// by timeout: a quarter of it, 1..20 s, so that a hanging kernel is
// reported by the emu itself (naming the kernel and thread) well before the
// call is killed.
func watchdogFor(timeout time.Duration) int {
	s := int(timeout / 4 / time.Second)
	return max(1, min(s, 20))
}

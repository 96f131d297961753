package logs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"

	"github.com/orchardkit/orchard/checks"
)

// Summary is what one run left in a log (Inspect).
type Summary struct {
	Path      string   // the log asked for
	Files     []string // files read, oldest first: Path+".1" (if present), Path
	RunID     string
	Lines     int      // lines of this run
	OtherRuns int      // lines of other runs (or without run=), ignored
	FWD       int      // FWD lines of this run
	BWD       int      // BWD lines of this run
	Allocs    int      // ALLOC lines of this run
	Errors    int      // ERROR lines of this run
	Fallbacks int      // FALLBACK lines of this run
	Malformed int      // lines that mention run=<id> but do not parse
	Backends  []string // distinct backend= values of this run, sorted
	// Storage counts this run's FWD and BWD lines by storage= value ("" for
	// a line without one).
	Storage map[string]int

	// The first KeptLines offending lines of each kind, verbatim.
	ErrorLines, FallbackLines, MalformedLines []string
}

// KeptLines is how many offending lines of each kind a Summary keeps.
const KeptLines = 20

func keep(lines []string, l []byte) []string {
	if len(lines) < KeptLines {
		lines = append(lines, string(l))
	}
	return lines
}

// maxInspectLine: longer lines cannot be log records; they are skipped.
const maxInspectLine = 1 << 20

// Inspect reads the lines of run runID from path and its rotated sibling
// path.1 (read first, when present). If path is replaced while it is being
// read (rotation), it is read again, up to three times. A missing log is an
// error wrapping fs.ErrNotExist.
func Inspect(path, runID string) (Summary, error) {
	if runID == "" {
		return Summary{}, errors.New("inspect: empty run id")
	}
	var (
		s   Summary
		err error
	)
	for attempt := 0; attempt < 3; attempt++ {
		var stable bool
		s, stable, err = inspectOnce(path, runID)
		if stable || err != nil {
			break
		}
	}
	return s, err
}

// inspectOnce reads both files; stable is false when path was replaced
// meanwhile, so the read may have missed lines.
func inspectOnce(path, runID string) (s Summary, stable bool, err error) {
	s = Summary{Path: path, RunID: runID}
	cur, curErr := os.Open(path)
	if curErr == nil {
		defer cur.Close()
	} else if !errors.Is(curErr, fs.ErrNotExist) {
		return s, true, fmt.Errorf("inspect: %w", curErr)
	}
	old, oldErr := os.Open(path + ".1")
	if oldErr == nil {
		defer old.Close()
	}
	if cur == nil && old == nil {
		return s, true, fmt.Errorf("inspect: no log at %s: %w", path, fs.ErrNotExist)
	}
	curID := fileID{}
	if cur != nil {
		curID = fdID(cur)
	}
	backends := map[string]bool{}
	if old != nil && (cur == nil || fdID(old) != curID) {
		s.Files = append(s.Files, path+".1")
		if err := s.scan(old, backends); err != nil {
			return s, true, err
		}
	}
	if cur != nil {
		s.Files = append(s.Files, path)
		if err := s.scan(cur, backends); err != nil {
			return s, true, err
		}
	}
	for b := range backends {
		s.Backends = append(s.Backends, b)
	}
	sort.Strings(s.Backends)
	now, statErr := os.Stat(path)
	switch {
	case statErr != nil && cur == nil:
		stable = true
	case statErr != nil || cur == nil:
		stable = false // path disappeared or appeared while reading
	default:
		stable = statID(now) == curID
	}
	return s, stable, nil
}

// scan reads complete lines from r; a last line without "\n" is ignored.
func (s *Summary) scan(r io.Reader, backends map[string]bool) error {
	br := bufio.NewReaderSize(r, 64<<10)
	needle := []byte(s.RunID)
	var long []byte // a line longer than the buffer, being assembled
	skipping := false
	for {
		chunk, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if !skipping {
				long = append(long, chunk...)
				if len(long) > maxInspectLine {
					long, skipping = nil, true
				}
			}
			continue
		}
		if err != nil {
			if err == io.EOF {
				return nil // a partial last line (or none): ignore it
			}
			return fmt.Errorf("inspect: %w", err)
		}
		line := chunk
		if long != nil {
			line = append(long, chunk...)
			long = nil
		}
		if skipping {
			skipping = false
			continue
		}
		s.line(bytes.TrimRight(line, "\r\n"), needle, backends)
	}
}

func (s *Summary) line(raw, needle []byte, backends map[string]bool) {
	if !bytes.Contains(raw, needle) {
		s.OtherRuns++
		return
	}
	l, err := Parse(string(raw))
	if err != nil {
		if bytes.Contains(raw, append([]byte("run="), needle...)) || bytes.Contains(raw, append([]byte(`run="`), needle...)) {
			s.Malformed++
			s.MalformedLines = keep(s.MalformedLines, raw)
		} else {
			s.OtherRuns++
		}
		return
	}
	if l.Run != s.RunID {
		s.OtherRuns++
		return
	}
	s.Lines++
	if l.Backend != "" {
		backends[l.Backend] = true
	}
	if l.Word == WordFWD || l.Word == WordBWD {
		if s.Storage == nil {
			s.Storage = map[string]int{}
		}
		s.Storage[l.Storage]++
	}
	switch l.Word {
	case WordFWD:
		s.FWD++
	case WordBWD:
		s.BWD++
	case WordAlloc:
		s.Allocs++
	case WordError:
		s.Errors++
		s.ErrorLines = keep(s.ErrorLines, raw)
	case WordFallback:
		s.Fallbacks++
		s.FallbackLines = keep(s.FallbackLines, raw)
	}
}

// Checklist ids of the `logs` step.
const (
	CheckKernelCalls   = "kernel-calls-logged"
	CheckLogsClean     = "logs-clean"
	CheckOnAccelerator = "on-accelerator"
)

// Want is what a run should have left in the kernel-call log.
type Want struct {
	FWD, BWD int
	// Storage is the FWD+BWD lines expected per storage= mode; nil: the
	// modes are reported but not checked.
	Storage map[string]int
}

// CheckRun inspects the kernel-call log at path for run runID and returns the
// three checklist items of the `logs` step: kernel-calls-logged
// (FWD/BWD counts equal wantFWD/wantBWD), logs-clean (no ERROR, FALLBACK or
// malformed lines, quoted as evidence) and on-accelerator (every line of the
// run ran on backend, the resolved "metal" or "emu", and nothing fell back).
func CheckRun(path, runID string, wantFWD, wantBWD int, backend string) []checks.Check {
	return CheckRunWant(path, runID, Want{FWD: wantFWD, BWD: wantBWD}, backend)
}

// CheckRunWant is CheckRun that also holds kernel-calls-logged to the
// lines per storage mode in want.Storage (the smoke suite runs both).
func CheckRunWant(path, runID string, want Want, backend string) []checks.Check {
	s, err := Inspect(path, runID)
	if err != nil {
		return missingLogChecks(path, runID, err)
	}
	return s.ChecksWant(want, backend)
}

func missingLogChecks(path, runID string, err error) []checks.Check {
	hint := fmt.Sprintf("run the runner with %s=1 (and %s=%s); the log is written only when enabled",
		EnvDebugFlashAttn, EnvRunID, runID)
	if !errors.Is(err, fs.ErrNotExist) {
		hint = "make the log readable: " + path
	}
	skip := func(id, title string) checks.Check {
		return checks.Check{ID: id, Title: title, Status: checks.Skip,
			Evidence: []string{"no kernel-call log to inspect"}}
	}
	return []checks.Check{
		{ID: CheckKernelCalls, Title: "kernel calls logged", Status: checks.Fail,
			Evidence: []string{err.Error()}, Hint: hint},
		skip(CheckLogsClean, "logs clean"),
		skip(CheckOnAccelerator, "ran on the requested backend"),
	}
}

// Checks judges the summary (see CheckRun).
func (s Summary) Checks(wantFWD, wantBWD int, backend string) []checks.Check {
	return s.ChecksWant(Want{FWD: wantFWD, BWD: wantBWD}, backend)
}

// ChecksWant judges the summary (see CheckRunWant).
func (s Summary) ChecksWant(want Want, backend string) []checks.Check {
	wantFWD, wantBWD := want.FWD, want.BWD
	files := "read " + strings.Join(s.Files, " then ")
	stale := fmt.Sprintf("run %s: %d lines; %d lines of other runs ignored", s.RunID, s.Lines, s.OtherRuns)

	calls := checks.Check{ID: CheckKernelCalls, Title: "kernel calls logged", Status: checks.Pass,
		Evidence: []string{
			fmt.Sprintf("FWD lines: %d (expected %d)", s.FWD, wantFWD),
			fmt.Sprintf("BWD lines: %d (expected %d)", s.BWD, wantBWD),
			stale, files,
		}}
	if s.FWD != wantFWD || s.BWD != wantBWD {
		calls.Status = checks.Fail
		calls.Hint = "every dispatch must write one FWD/BWD line with run=" + s.RunID +
			" (docs/logs.md); missing lines mean a dispatch was skipped or its line not written"
		if s.Lines == 0 {
			calls.Hint = fmt.Sprintf("no line of this run: did the runner get %s=%s and %s=1?",
				EnvRunID, s.RunID, EnvDebugFlashAttn)
		}
	}
	modes := "storage modes: " + countsString(s.Storage)
	if want.Storage != nil {
		modes += " (expected " + countsString(want.Storage) + ")"
	}
	calls.Evidence = append(calls.Evidence[:2:2], append([]string{modes}, calls.Evidence[2:]...)...)
	if want.Storage != nil && !sameCounts(s.Storage, want.Storage) && calls.Status == checks.Pass {
		calls.Status = checks.Fail
		calls.Hint = "every FWD/BWD line must carry the storage= mode its runner was given (--storage; " +
			"docs/logs.md): the counts per mode differ from the dispatches run in each"
	}

	clean := checks.Check{ID: CheckLogsClean, Title: "logs clean", Status: checks.Pass,
		Evidence: []string{fmt.Sprintf("ERROR lines: %d, FALLBACK lines: %d, malformed lines: %d",
			s.Errors, s.Fallbacks, s.Malformed)}}
	clean.Evidence = append(clean.Evidence, quoted("ERROR", s.ErrorLines, s.Errors)...)
	clean.Evidence = append(clean.Evidence, quoted("FALLBACK", s.FallbackLines, s.Fallbacks)...)
	clean.Evidence = append(clean.Evidence, quoted("malformed", s.MalformedLines, s.Malformed)...)
	if s.Errors+s.Fallbacks+s.Malformed > 0 {
		clean.Status = checks.Fail
		clean.Hint = "read the quoted lines; ERROR and FALLBACK say what failed in msg=, " +
			"malformed lines break the grammar of docs/logs.md"
	}

	acc := checks.Check{ID: CheckOnAccelerator, Title: "ran on the requested backend (" + backend + ")",
		Status: checks.Pass,
		Evidence: []string{fmt.Sprintf("backends in the log: %s (requested %s)",
			orNone(s.Backends), backend)}}
	switch {
	case s.Lines == 0 && wantFWD+wantBWD == 0:
		acc.Status = checks.Skip
		acc.Evidence = append(acc.Evidence, "no kernel calls expected")
	case s.Lines == 0:
		acc.Status = checks.Fail
		acc.Hint = "no line of this run to tell where it ran"
	case len(s.Backends) != 1 || s.Backends[0] != backend:
		acc.Status = checks.Fail
		acc.Hint = "the runner ran on " + orNone(s.Backends) + ", not " + backend +
			"; every line must carry backend=" + backend
	case s.Fallbacks > 0:
		acc.Status = checks.Fail
		acc.Evidence = append(acc.Evidence, fmt.Sprintf("%d FALLBACK lines: work ran on the CPU", s.Fallbacks))
		acc.Hint = "see the FALLBACK lines under logs-clean for why"
	}
	return []checks.Check{calls, clean, acc}
}

// quoted renders kept lines as evidence, Go-quoted so that control bytes and
// trailing spaces stay visible.
func quoted(kind string, lines []string, total int) []string {
	var out []string
	for i, l := range lines {
		if i == 5 {
			break
		}
		out = append(out, fmt.Sprintf("%s: %q", kind, l))
	}
	if total > len(out) {
		out = append(out, fmt.Sprintf("… and %d more %s lines", total-len(out), kind))
	}
	return out
}

// countsString is "private 88, shared 88" (sorted; "none" when empty; a
// line without the field counts as "(no storage=)").
func countsString(m map[string]int) string {
	var parts []string
	for _, k := range sortedCountKeys(m) {
		if m[k] == 0 {
			continue
		}
		name := k
		if name == "" {
			name = "(no storage=)"
		}
		parts = append(parts, fmt.Sprintf("%s %d", name, m[k]))
	}
	return orNone(parts)
}

func sortedCountKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// sameCounts compares two count maps, a missing key counting as 0.
func sameCounts(a, b map[string]int) bool {
	for k, n := range a {
		if b[k] != n {
			return false
		}
	}
	for k, n := range b {
		if a[k] != n {
			return false
		}
	}
	return true
}

func orNone(ss []string) string {
	if len(ss) == 0 {
		return "none"
	}
	return strings.Join(ss, ", ")
}

// Package checks holds orchard's checklist model — one item per thing a run
// verified — and the renderers that show it: terminal (lipgloss), JSON,
// JUnit XML and GitHub Actions.
package checks

// Status is the outcome of one checklist item or step. The words are part of
// the JSON schema (docs/json.md): keep them stable.
type Status string

const (
	Pass Status = "pass"
	Fail Status = "fail"
	Skip Status = "skip"
	Warn Status = "warn"
)

// Rank orders statuses from best to worst, so a step's status can be the
// worst of its checks: pass < skip < warn < fail.
func (s Status) Rank() int {
	switch s {
	case Pass:
		return 0
	case Skip:
		return 1
	case Warn:
		return 2
	case Fail:
		return 3
	}
	return 3
}

// Worst returns the worst of the given statuses (Pass for none).
func Worst(ss ...Status) Status {
	w := Pass
	for _, s := range ss {
		if s.Rank() > w.Rank() {
			w = s
		}
	}
	return w
}

// Check is one item of the checklist. A skipped check gives its reason as its
// first evidence line (or, without evidence, as its hint).
type Check struct {
	ID       string   `json:"id"`       // stable, e.g. "toolchain.cmake", "forward"
	Title    string   `json:"title"`    // one line for people
	Status   Status   `json:"status"`   // pass|fail|skip|warn
	Evidence []string `json:"evidence"` // what was seen: versions, paths, figures
	Hint     string   `json:"hint"`     // the fix, when there is one
	// File and Line point a diagnostic into a source (a .metal kernel, say);
	// renderers turn them into file:line and GitHub annotation positions.
	// Line is 1-based and only meaningful with File.
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
	// Locations are every compiler diagnostic behind a failed check, each
	// pointing into the runtime source the user has (the ejected dir, or for
	// the embedded runtime its path in this repository): GitHub gets one
	// annotation per location. File and Line repeat the first one.
	Locations []Location `json:"locations,omitempty"`
	// Step is the step that produced the check ("" outside a pipeline, as in
	// doctor); JUnit takes the testcase's time from it.
	Step string `json:"step,omitempty"`
}

// Location is one diagnostic: a 1-based line and column (0: unknown) in a
// source file, with the compiler's message.
type Location struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Col     int    `json:"col,omitempty"`
	Message string `json:"message"`
}

// StepSummary is one step of a run as the report shows it.
type StepSummary struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Cached bool   `json:"cached"`
	// CachedAt is when the run that produced a cached step's result
	// finished its step (RFC 3339, UTC); absent unless Cached.
	CachedAt   string `json:"cached_at,omitempty"`
	DurationMS int64  `json:"duration_ms"`
	Detail     string `json:"detail"`
	// Explain says why the step ran or was reused (with --explain).
	Explain string `json:"explain,omitempty"`
	// Log is the path of the step's full output, when it has one.
	Log string `json:"log,omitempty"`
}

// Report is everything a run produced; it is what --json prints.
type Report struct {
	OK       bool          `json:"ok"`
	Command  string        `json:"command"`
	Backend  string        `json:"backend"`
	BuildDir string        `json:"build_dir"`
	Steps    []StepSummary `json:"steps"`
	Checks   []Check       `json:"checks"`
}

// Finish sets OK from the checks: a report is OK when nothing failed.
func (r *Report) Finish() {
	r.OK = true
	for _, c := range r.Checks {
		if c.Status == Fail {
			r.OK = false
		}
	}
	for _, s := range r.Steps {
		if s.Status == Fail {
			r.OK = false
		}
	}
	if r.Steps == nil {
		r.Steps = []StepSummary{}
	}
	if r.Checks == nil {
		r.Checks = []Check{}
	}
	for i := range r.Checks {
		if r.Checks[i].Evidence == nil {
			r.Checks[i].Evidence = []string{}
		}
	}
}

package checks

import (
	"encoding/json"
	"io"
)

// WriteJSON writes the report as indented JSON in the schema of model.go
// (documented in docs/json.md), followed by a newline. It does not modify r:
// it writes a finished copy (see Report.Finish), so "ok" follows the checks
// and steps, and empty lists are [] rather than null. Text is written as is
// (no HTML escaping of <, > and &; escape sequences stay, JSON-escaped).
func WriteJSON(w io.Writer, r *Report) error {
	out := r.finished()
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(out)
}

// finished returns a copy of r after Finish, leaving r and its slices alone.
func (r *Report) finished() *Report {
	out := *r
	if r.Steps != nil {
		out.Steps = append([]StepSummary(nil), r.Steps...)
	}
	if r.Checks != nil {
		out.Checks = append([]Check(nil), r.Checks...)
	}
	out.Finish()
	return &out
}

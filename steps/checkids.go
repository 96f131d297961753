package steps

import (
	"strings"

	"github.com/orchardkit/orchard/checks"
)

// CheckIDs is implemented by steps that can say, before they run, which
// checklist ids they produce on backend. For a step that does not run
// (blocked by an earlier failure) the engine reports each of them as
// skipped, so a report — and its JUnit testcases — has the same ids
// whatever the outcome.
type CheckIDs interface {
	CheckIDs(backend string) []string
}

// declaredIDs is st's check ids: what it declares, else its name.
func declaredIDs(st Step, backend string) []string {
	if c, ok := st.(CheckIDs); ok {
		if ids := c.CheckIDs(backend); len(ids) > 0 {
			return ids
		}
	}
	return []string{st.Name()}
}

// skippedChecks is one skipped check per id st declares, with the reason.
func skippedChecks(st Step, backend, reason string) []checks.Check {
	var cs []checks.Check
	for _, id := range declaredIDs(st, backend) {
		t := title(st)
		if id != st.Name() {
			t = id
		}
		cs = append(cs, checks.Check{ID: id, Title: t, Status: checks.Skip, Evidence: []string{reason}, Step: st.Name()})
	}
	return cs
}

// AttributeChecks sets each check's Step to the pipeline step that declares
// its id (or whose name is the id or its dotted prefix, as in
// "shaders.stamp"); checks already attributed are left alone.
func AttributeChecks(pipeline []Step, backend string, cs []checks.Check) {
	owner := map[string]string{}
	for _, st := range pipeline {
		for _, id := range declaredIDs(st, backend) {
			owner[id] = st.Name()
		}
	}
	for i := range cs {
		if cs[i].Step != "" {
			continue
		}
		if s, ok := owner[cs[i].ID]; ok {
			cs[i].Step = s
			continue
		}
		for _, st := range pipeline {
			if cs[i].ID == st.Name() || strings.HasPrefix(cs[i].ID, st.Name()+".") {
				cs[i].Step = st.Name()
				break
			}
		}
	}
}

// CheckPerformance is the id of rebuild --bench's item (PerformanceStep):
// stable, as scripts and JUnit testcases key on it.
const CheckPerformance = "performance"

package steps

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// PytestSummary is what a pytest run's output says: the counts of its
// final line and the tests of the short summary (-rfE) that failed or
// errored.
type PytestSummary struct {
	// Counts by outcome word: passed, failed, skipped, error, xfailed,
	// xpassed, deselected, warning (plural forms folded).
	Counts map[string]int `json:"counts"`
	// Failed are "FAILED path::test[param] - message" lines, without the word.
	Failed []string `json:"failed,omitempty"`
	// Errors are the "ERROR …" lines, without the word.
	Errors []string `json:"errors,omitempty"`
	// Seconds is the run's time as pytest printed it ("1.62s").
	Seconds string `json:"seconds,omitempty"`
	// Found: a final summary line was seen.
	Found bool `json:"found"`
}

var (
	pytestCountRE = regexp.MustCompile(`(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected|warnings?)\b`)
	pytestTimeRE  = regexp.MustCompile(` in ([0-9.]+s)\b`)
)

// ParsePytest reads pytest's output (-q or not, with -rfE).
func ParsePytest(out string) PytestSummary {
	s := PytestSummary{Counts: map[string]int{}}
	for _, raw := range strings.Split(out, "\n") {
		l := strings.TrimSpace(raw)
		if rest, ok := strings.CutPrefix(l, "FAILED "); ok {
			s.Failed = append(s.Failed, rest)
			continue
		}
		if rest, ok := strings.CutPrefix(l, "ERROR "); ok {
			s.Errors = append(s.Errors, rest)
			continue
		}
		// The final line: "1 failed, 2 passed, 1 skipped in 0.02s", inside
		// ===== rules without -q; the last such line wins.
		body := strings.Trim(l, "= ")
		if !pytestTimeRE.MatchString(body) || !pytestCountRE.MatchString(body) {
			if body == "no tests ran" || strings.HasPrefix(body, "no tests ran in ") {
				s.Found, s.Counts = true, map[string]int{}
			}
			continue
		}
		s.Found, s.Counts = true, map[string]int{}
		for _, m := range pytestCountRE.FindAllStringSubmatch(body, -1) {
			n, _ := strconv.Atoi(m[1])
			s.Counts[strings.TrimSuffix(m[2], "s")] += n
		}
		if m := pytestTimeRE.FindStringSubmatch(body); m != nil {
			s.Seconds = m[1]
		}
	}
	return s
}

// Line is the summary as pytest words it, in a fixed order: "35 passed, 1
// failed, 2 skipped".
func (s PytestSummary) Line() string {
	order := []string{"passed", "failed", "error", "skipped", "xfailed", "xpassed", "deselected", "warning"}
	var parts []string
	for _, k := range order {
		if n := s.Counts[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, k))
		}
	}
	var rest []string
	for k := range s.Counts {
		if !slices.Contains(order, k) {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	for _, k := range rest {
		parts = append(parts, fmt.Sprintf("%d %s", s.Counts[k], k))
	}
	if len(parts) == 0 {
		return "no tests ran"
	}
	return strings.Join(parts, ", ")
}

// TestName is the test id of a FAILED/ERROR line ("path::test[param]").
func TestName(line string) string {
	name, _, _ := strings.Cut(line, " - ")
	return strings.TrimSpace(name)
}

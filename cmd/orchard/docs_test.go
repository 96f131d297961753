package main

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// shape is a JSON value's structure: "string", "number", "bool", "null",
// {key: shape} for objects, and [shape] for arrays, whose elements' shapes
// are merged (an object's keys are the union over the elements).
func shape(v any) (any, error) {
	switch x := v.(type) {
	case string:
		return "string", nil
	case float64:
		return "number", nil
	case bool:
		return "bool", nil
	case nil:
		return "null", nil
	case map[string]any:
		m := map[string]any{}
		for k, e := range x {
			s, err := shape(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			m[k] = s
		}
		return m, nil
	case []any:
		var merged any
		for i, e := range x {
			s, err := shape(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			if merged, err = mergeShapes(merged, s); err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
		}
		return []any{merged}, nil
	}
	return nil, fmt.Errorf("unexpected %T", v)
}

func mergeShapes(a, b any) (any, error) {
	if a == nil {
		return b, nil
	}
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		out := map[string]any{}
		for k, v := range am {
			out[k] = v
		}
		for k, v := range bm {
			m, err := mergeShapes(out[k], v)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out[k] = m
		}
		return out, nil
	}
	aa, aok := a.([]any)
	ba, bok := b.([]any)
	if aok && bok {
		m, err := mergeShapes(aa[0], ba[0])
		return []any{m}, err
	}
	if fmt.Sprint(a) != fmt.Sprint(b) {
		return nil, fmt.Errorf("%v here, %v there", a, b)
	}
	return a, nil
}

// diffShapes lists where doc and real differ, by JSON path.
func diffShapes(path string, doc, real any) []string {
	dm, dok := doc.(map[string]any)
	rm, rok := real.(map[string]any)
	if dok && rok {
		var out []string
		for k := range dm {
			if _, ok := rm[k]; !ok {
				out = append(out, path+"."+k+": in the docs' example, not in a real report")
			}
		}
		for k, v := range rm {
			d, ok := dm[k]
			if !ok {
				out = append(out, path+"."+k+": in a real report, not in the docs' example")
				continue
			}
			out = append(out, diffShapes(path+"."+k, d, v)...)
		}
		return out
	}
	da, dok := doc.([]any)
	ra, rok := real.([]any)
	if dok && rok {
		if da[0] == nil || ra[0] == nil {
			return nil // an empty array fits any element shape
		}
		return diffShapes(path+"[]", da[0], ra[0])
	}
	if fmt.Sprint(doc) != fmt.Sprint(real) {
		return []string{fmt.Sprintf("%s: %v in the docs' example, %v in a real report", path, doc, real)}
	}
	return nil
}

// keysOf lists every object key in a shape.
func keysOf(s any, into map[string]bool) {
	switch x := s.(type) {
	case map[string]any:
		for k, v := range x {
			into[k] = true
			keysOf(v, into)
		}
	case []any:
		keysOf(x[0], into)
	}
}

// TestJSONDocExampleIsARealReport parses the example in docs/json.md and
// the --json report of a real verify run, and compares their shapes: the
// same keys with the same types, recursively; and every key is in the
// docs' field tables.
func TestJSONDocExampleIsARealReport(t *testing.T) {
	doc, err := os.ReadFile("../../docs/json.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	i := strings.Index(text, "## Example")
	if i < 0 {
		t.Fatal("docs/json.md has no ## Example")
	}
	m := regexp.MustCompile("(?s)```json\n(.*?)\n```").FindStringSubmatch(text[i:])
	if m == nil {
		t.Fatal("docs/json.md: no ```json block under ## Example")
	}
	var example any
	if err := json.Unmarshal([]byte(m[1]), &example); err != nil {
		t.Fatalf("docs/json.md's example is not JSON: %v", err)
	}

	dir := sharedBuild(t)
	code, out, errOut := runCLI(t, nil, "verify", "--build-dir", dir, "--json")
	if code != 0 {
		t.Fatalf("verify: exit %d\n%s", code, errOut)
	}
	var real any
	if err := json.Unmarshal([]byte(out), &real); err != nil {
		t.Fatalf("verify --json: %v\n%s", err, out)
	}

	ds, err := shape(example)
	if err != nil {
		t.Fatalf("docs' example: %v", err)
	}
	rs, err := shape(real)
	if err != nil {
		t.Fatalf("real report: %v", err)
	}
	if diff := diffShapes("report", ds, rs); len(diff) > 0 {
		sort.Strings(diff)
		t.Errorf("docs/json.md's example does not have a real report's shape:\n  %s", strings.Join(diff, "\n  "))
	}

	// Every key of either is a documented field.
	documented := map[string]bool{}
	for _, f := range regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\|").FindAllStringSubmatch(text, -1) {
		documented[f[1]] = true
	}
	keys := map[string]bool{}
	keysOf(ds, keys)
	keysOf(rs, keys)
	for k := range keys {
		if !documented[k] {
			t.Errorf("field %q is not in docs/json.md's tables", k)
		}
	}
	// The example's step names are real step names.
	for _, s := range example.(map[string]any)["steps"].([]any) {
		name := s.(map[string]any)["name"].(string)
		if !strings.Contains(text, "`"+name+"`") || !regexp.MustCompile(`^(toolchain|shaders|kernel|runtime-loads|races|smoke|logs)$`).MatchString(name) {
			t.Errorf("the example's step %q is not a step orchard runs", name)
		}
	}
}

package logs

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseSeedLines(t *testing.T) {
	for _, in := range []string{"[flashattn.mm] FWD call=1", "[flashattn.mm] BWD call=1", "[flashattn.emu] FWD call=12\n"} {
		l, err := Parse(in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		if l.Word != strings.Fields(in)[1] || l.Call == 0 {
			t.Errorf("Parse(%q) = %+v", in, l)
		}
		if got := Format(l); got != strings.TrimSuffix(in, "\n") {
			t.Errorf("Format = %q, want %q", got, in)
		}
	}
}

func TestParseFullLine(t *testing.T) {
	in := `[flashattn.mm] FWD call=3 time=2026-11-28T10:15:30.123Z pid=4242 run=r-1 backend=metal ` +
		`kernel=attn_fwd shape=1x2x64x64x64 dtype=f32 causal=1 storage=private dur_us=812 queue=q0 note="a b"`
	l, err := Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	want := Line{Tag: TagMetal, Word: WordFWD, Call: 3,
		Time: time.Date(2026, 11, 28, 10, 15, 30, 123e6, time.UTC), PID: 4242, Run: "r-1",
		Backend: "metal", Kernel: "attn_fwd", Shape: Shape{1, 2, 64, 64, 64}, DType: "f32",
		Causal: Bool(true), Storage: "private", DurUS: 812,
		Extra: []Field{{"queue", "q0"}, {"note", "a b"}}}
	if !sameLine(l, want) {
		t.Fatalf("Parse:\n got %+v\nwant %+v", l, want)
	}
	if got := Format(l); got != in {
		t.Errorf("Format:\n got %s\nwant %s", got, in)
	}
}

func TestParseAnyOrderAndSpaces(t *testing.T) {
	l, err := Parse("[flashattn.emu]\tERROR  msg=\"x\"   run=abc backend=emu op=bwd  \r\n")
	if err != nil {
		t.Fatal(err)
	}
	if l.Word != WordError || l.Msg != "x" || l.Run != "abc" || l.Op != "bwd" {
		t.Errorf("got %+v", l)
	}
	if got, want := Format(l), `[flashattn.emu] ERROR run=abc backend=emu op=bwd msg=x`; got != want {
		t.Errorf("Format = %q, want %q", got, want)
	}
}

func TestQuoting(t *testing.T) {
	tests := map[string]struct{ value, written string }{
		"bare":         {"abc", "abc"},
		"equals":       {"a=b", "a=b"},
		"empty":        {"", `""`},
		"space":        {"a b", `"a b"`},
		"quote":        {`say "hi"`, `"say \"hi\""`},
		"backslash":    {`C:\x`, `"C:\\x"`},
		"newline tab":  {"a\nb\tc\r", `"a\nb\tc\r"`},
		"control":      {"a\x01\x7f", `"a\x01\x7f"`},
		"utf8":         {"héllo", "héllo"},
		"invalid utf8": {"a\xffb", `"a\xffb"`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			line := Format(Line{Tag: "t", Word: "W", Extra: []Field{{"k", tt.value}}})
			if want := "[t] W k=" + tt.written; line != want {
				t.Fatalf("Format = %q, want %q", line, want)
			}
			l, err := Parse(line)
			if err != nil {
				t.Fatal(err)
			}
			if len(l.Extra) != 1 || l.Extra[0].Value != tt.value {
				t.Fatalf("round trip: got %+v", l.Extra)
			}
		})
	}
	if l, err := Parse(`[t] W k="\x4A\x4a"`); err != nil || l.Extra[0].Value != "JJ" {
		t.Errorf(`\xHH in either case: %+v %v`, l, err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := map[string]string{
		"":                                 "does not start with [tag]",
		"FWD call=1":                       "does not start with [tag]",
		"[flashattn.mm FWD":                "unclosed",
		"[] FWD":                           "tag",
		"[a b] FWD":                        "tag",
		"[t]FWD":                           "want a space",
		"[t] fwd":                          "word",
		"[t] FWD call":                     "want key=value",
		"[t] FWD Call=1":                   "key",
		"[t] FWD call=1 call=2":            "repeated",
		"[t] FWD call=-1":                  "call=-1",
		"[t] FWD call=1x":                  "call=1x",
		"[t] FWD pid=99999999999999999999": "too large",
		"[t] FWD shape=1x2x":               "dim 3",
		"[t] FWD shape=":                   "empty value",
		"[t] FWD causal=yes":               "want 0 or 1",
		"[t] FWD storage=gpu":              "shared, private",
		"[t] FWD time=yesterday":           "RFC 3339",
		`[t] FWD msg="abc`:                 "unterminated",
		`[t] FWD msg="a\qb"`:               `unknown escape`,
		`[t] FWD msg="a\x4"`:               `two hex digits`,
		"[t] FWD msg=\"a\x01\"":            "raw control byte",
		`[t] FWD msg=a"b`:                  "quote the value",
		`[t] FWD msg="a"b=1`:               "want a space",
	}
	for in, want := range tests {
		_, err := Parse(in)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q): err = %v, want a *SyntaxError", in, err)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q): err = %q, want it to mention %q", in, err, want)
		}
	}
}

func TestFormatKeepsTimeOffsetAndPrecision(t *testing.T) {
	for _, in := range []string{
		"[t] FWD time=2026-11-28T10:15:30.123+01:00",
		"[t] FWD time=2026-11-28T10:15:30.123456789-07:30",
	} {
		l, err := Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := Format(l); got != in {
			t.Errorf("Format = %q, want %q", got, in)
		}
	}
	l, _ := Parse("[t] FWD time=2026-11-28T10:15:30Z")
	if got := Format(l); got != "[t] FWD time=2026-11-28T10:15:30.000Z" {
		t.Errorf("whole seconds get .000: %q", got)
	}
}

func TestValidate(t *testing.T) {
	good := Line{Tag: TagEmu, Word: WordAlloc, Name: "q", Bytes: 4, Storage: "shared", Shape: Shape{1, 4}}
	if err := good.Validate(); err != nil {
		t.Errorf("Validate(%+v) = %v", good, err)
	}
	for name, l := range map[string]Line{
		"tag":         {Tag: "a b", Word: "W"},
		"word":        {Tag: "t", Word: "w"},
		"negative":    {Tag: "t", Word: "W", Bytes: -1},
		"storage":     {Tag: "t", Word: "W", Storage: "gpu"},
		"typed extra": {Tag: "t", Word: "W", Extra: []Field{{"run", "x"}}},
		"bad key":     {Tag: "t", Word: "W", Extra: []Field{{"K", "x"}}},
		"repeated":    {Tag: "t", Word: "W", Extra: []Field{{"k", "x"}, {"k", "y"}}},
	} {
		if l.Validate() == nil {
			t.Errorf("%s: Validate(%+v) = nil, want an error", name, l)
		}
	}
}

func TestLineJSON(t *testing.T) {
	l, err := Parse(`[flashattn.emu] FWD call=1 time=2026-11-28T10:15:30.123Z run=r shape=1x2x3x4x5 causal=0 x=y`)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"tag":"flashattn.emu","word":"FWD","call":1,"time":"2026-11-28T10:15:30.123Z","run":"r","shape":[1,2,3,4,5],"causal":false,"extra":{"x":"y"}}`
	if string(b) != want {
		t.Errorf("json:\n got %s\nwant %s", b, want)
	}
}

// sameLine compares lines by value: times by instant and offset.
func sameLine(a, b Line) bool {
	if !a.Time.Equal(b.Time) {
		return false
	}
	_, oa := a.Time.Zone()
	_, ob := b.Time.Zone()
	if oa != ob {
		return false
	}
	a.Time, b.Time = time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

// TestDocExamplesRoundTrip: the example lines in docs/logs.md parse, and
// Format writes them back byte for byte (they are in Format's key order).
func TestDocExamplesRoundTrip(t *testing.T) {
	doc, err := os.ReadFile("../docs/logs.md")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(l, "[flashattn.") {
			continue
		}
		n++
		p, err := Parse(l)
		if err != nil {
			t.Errorf("docs/logs.md: %v\n%s", err, l)
			continue
		}
		if got := Format(p); got != l {
			t.Errorf("docs/logs.md line not in Format's order:\n got %s\nwant %s", got, l)
		}
	}
	if n < 6 {
		t.Errorf("found %d example lines in docs/logs.md, want at least 6", n)
	}
}

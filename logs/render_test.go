package logs

import (
	"bufio"
	"regexp"
	"strings"
	"testing"
)

func TestWriteEscaped(t *testing.T) {
	for in, want := range map[string]string{
		"plain [t] FWD call=1 é ✓":      "plain [t] FWD call=1 é ✓",
		"tab\tkept":                     "tab\tkept",
		"\x1b[2J\x1b]0;t\x07":           "^[[2J^[]0;t^G",
		"nul\x00 cr\r lf\n del\x7f":     "nul^@ cr^M lf^J del^?",
		"c1 \u009b1m \u0085 \u00a0nbsp": "c1 <U+009B>1m <U+0085> \u00a0nbsp",
		"\x01\x1f":                      "^A^_",
		"":                              "",
	} {
		var b strings.Builder
		w := bufio.NewWriter(&b)
		writeEscaped(w, in)
		w.Flush()
		if b.String() != want {
			t.Errorf("writeEscaped(%q) = %q, want %q", in, b.String(), want)
		}
	}
}

// The printer escapes text lines (and file prefixes) unless Raw; filters and
// highlights match the line before escaping; JSON is left to its encoder.
func TestPrinterEscapesUnlessRaw(t *testing.T) {
	src := &source{name: "a\x1b.log", label: "a\x1b.log"}
	line := []byte("[t] ERROR msg=\x1b[8mhidden\r")
	for _, c := range []struct {
		name string
		opts PrintOptions
		pfx  bool
		want string
	}{
		{"plain", PrintOptions{}, false, "[t] ERROR msg=^[[8mhidden\n"},
		{"prefix", PrintOptions{}, true, "a^[.log: [t] ERROR msg=^[[8mhidden\n"},
		{"color", PrintOptions{Color: true}, false, sgrError + "[t] ERROR msg=^[[8mhidden" + sgrReset + "\n"},
		{"raw", PrintOptions{Raw: true}, false, "[t] ERROR msg=\x1b[8mhidden\r\n"},
		{"include sees ESC", PrintOptions{Include: []*regexp.Regexp{regexp.MustCompile(`\x1b\[8m`)}}, false, "[t] ERROR msg=^[[8mhidden\n"},
		{"json", PrintOptions{JSON: true}, false, `{"file":"a\u001b.log","line":"[t] ERROR msg=\u001b[8mhidden\r","parse_error":`},
	} {
		var b strings.Builder
		w := bufio.NewWriter(&b)
		p := newPrinter(c.opts, w, c.pfx)
		if err := p.print(src, line, false); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		if got := b.String(); got != c.want && !(c.opts.JSON && strings.HasPrefix(got, c.want)) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

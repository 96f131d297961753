package logs

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// SyntaxError says why a line does not follow the grammar and where.
type SyntaxError struct {
	Col int // 1-based byte column of the problem (0 when not about a position)
	Msg string
}

func (e *SyntaxError) Error() string {
	if e.Col > 0 {
		return fmt.Sprintf("log line: col %d: %s", e.Col, e.Msg)
	}
	return "log line: " + e.Msg
}

// Parse reads one line of the grammar in docs/logs.md. A trailing "\n" or
// "\r\n" is ignored. Keys may come in any order; a key may appear once.
func Parse(line string) (Line, error) {
	line = strings.TrimSuffix(line, "\n")
	line = strings.TrimSuffix(line, "\r")
	var l Line
	fail := func(pos int, format string, args ...any) (Line, error) {
		return Line{}, &SyntaxError{Col: pos + 1, Msg: fmt.Sprintf(format, args...)}
	}
	if !strings.HasPrefix(line, "[") {
		return fail(0, "does not start with [tag]")
	}
	end := strings.IndexByte(line, ']')
	if end < 0 {
		return fail(0, "unclosed [tag")
	}
	l.Tag = line[1:end]
	if !validTag(l.Tag) {
		return fail(1, "tag %q is not [A-Za-z0-9._-]+", l.Tag)
	}
	pos := end + 1
	if pos >= len(line) || !isSpace(line[pos]) {
		return fail(pos, "want a space and a WORD after [%s]", l.Tag)
	}
	pos = skipSpace(line, pos)
	wend := pos
	for wend < len(line) && !isSpace(line[wend]) {
		wend++
	}
	l.Word = line[pos:wend]
	if !validWord(l.Word) {
		return fail(pos, "word %q is not [A-Z][A-Z0-9_]*", l.Word)
	}
	pos = wend
	seen := map[string]bool{}
	for {
		pos = skipSpace(line, pos)
		if pos >= len(line) {
			break
		}
		keyStart := pos
		eq := strings.IndexByte(line[pos:], '=')
		if eq < 0 {
			return fail(pos, "want key=value, got %q", cut(line[pos:]))
		}
		key := line[pos : pos+eq]
		if !validKey(key) {
			return fail(pos, "key %q is not [a-z][a-z0-9_]*", cut(key))
		}
		if seen[key] {
			return fail(pos, "key %q repeated", key)
		}
		seen[key] = true
		pos += eq + 1
		val, next, err := readValue(line, pos)
		if err != nil {
			return Line{}, err
		}
		if err := l.set(key, val); err != nil {
			return fail(keyStart, "%s=%s: %v", key, cut(val), err)
		}
		pos = next
		if pos < len(line) && !isSpace(line[pos]) {
			return fail(pos, "want a space after %s=…", key)
		}
	}
	return l, nil
}

// set stores one value in its typed field, or in Extra.
func (l *Line) set(key, val string) error {
	var err error
	switch key {
	case "call":
		l.Call, err = parseCount(val)
	case "pid":
		l.PID, err = parseCount(val)
	case "dur_us":
		l.DurUS, err = parseCount64(val)
	case "gpu_us":
		l.GPUUS, err = parseCount64(val)
	case "time_source":
		l.TimeSource = val
	case "part":
		l.Part = val
	case "bytes":
		l.Bytes, err = parseCount64(val)
	case "time":
		if val != "" {
			l.Time, err = time.Parse(time.RFC3339Nano, val)
			if err != nil {
				err = fmt.Errorf("not RFC 3339 (want e.g. 2026-11-28T10:15:30.123Z)")
			}
		}
	case "shape":
		l.Shape, err = ParseShape(val)
	case "causal":
		switch val {
		case "0":
			l.Causal = Bool(false)
		case "1":
			l.Causal = Bool(true)
		default:
			err = fmt.Errorf("want 0 or 1")
		}
	case "storage":
		if val != "" && !validStorage(val) {
			err = fmt.Errorf("want shared, private, managed or memoryless")
		}
		l.Storage = val
	case "run":
		l.Run = val
	case "backend":
		l.Backend = val
	case "kernel":
		l.Kernel = val
	case "op":
		l.Op = val
	case "dtype":
		l.DType = val
	case "name":
		l.Name = val
	case "msg":
		l.Msg = val
	default:
		l.Extra = append(l.Extra, Field{Key: key, Value: val})
	}
	return err
}

// ParseShape reads dims joined by "x", e.g. "1x2x64x64x64".
func ParseShape(s string) (Shape, error) {
	if s == "" {
		return nil, fmt.Errorf("empty shape")
	}
	parts := strings.Split(s, "x")
	sh := make(Shape, len(parts))
	for i, p := range parts {
		d, err := parseCount(p)
		if err != nil {
			return nil, fmt.Errorf("dim %d: %v", i+1, err)
		}
		sh[i] = d
	}
	return sh, nil
}

func parseCount(s string) (int, error) {
	v, err := parseCount64(s)
	if err != nil {
		return 0, err
	}
	if int64(int(v)) != v {
		return 0, fmt.Errorf("%s is too large", s)
	}
	return int(v), nil
}

// parseCount64 accepts decimal digits only (no sign, no spaces).
func parseCount64(s string) (int64, error) {
	if s == "" {
		return 0, fmt.Errorf("want a number")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%q is not a non-negative integer", s)
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s is too large", s)
	}
	return v, nil
}

// readValue reads a bare or quoted value starting at pos and returns it with
// the position just after it.
func readValue(line string, pos int) (string, int, error) {
	if pos < len(line) && line[pos] == '"' {
		return unquote(line, pos)
	}
	start := pos
	for pos < len(line) && !isSpace(line[pos]) {
		c := line[pos]
		if c == '"' || c == '\\' || c < 0x20 || c == 0x7f {
			return "", 0, &SyntaxError{Col: pos + 1, Msg: fmt.Sprintf("byte %q in a bare value: quote the value", c)}
		}
		pos++
	}
	if pos == start {
		return "", 0, &SyntaxError{Col: pos + 1, Msg: `empty value: write key=""`}
	}
	return line[start:pos], pos, nil
}

// unquote reads a quoted value: escapes \" \\ \n \r \t \xHH; raw control
// bytes are not allowed inside the quotes.
func unquote(line string, pos int) (string, int, error) {
	open := pos
	pos++
	var b strings.Builder
	for pos < len(line) {
		c := line[pos]
		switch {
		case c == '"':
			return b.String(), pos + 1, nil
		case c == '\\':
			if pos+1 >= len(line) {
				return "", 0, &SyntaxError{Col: pos + 1, Msg: "backslash at end of line"}
			}
			switch e := line[pos+1]; e {
			case '"', '\\':
				b.WriteByte(e)
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'x':
				if pos+3 >= len(line) || unhex(line[pos+2]) < 0 || unhex(line[pos+3]) < 0 {
					return "", 0, &SyntaxError{Col: pos + 1, Msg: `\x needs two hex digits`}
				}
				b.WriteByte(byte(unhex(line[pos+2])<<4 | unhex(line[pos+3])))
				pos += 2
			default:
				return "", 0, &SyntaxError{Col: pos + 1, Msg: fmt.Sprintf(`unknown escape \%c`, e)}
			}
			pos += 2
		case c < 0x20 || c == 0x7f:
			return "", 0, &SyntaxError{Col: pos + 1, Msg: fmt.Sprintf(`raw control byte %q in quotes: escape it`, c)}
		default:
			b.WriteByte(c)
			pos++
		}
	}
	return "", 0, &SyntaxError{Col: open + 1, Msg: "unterminated quoted value"}
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// needsQuote: empty values, and values with spaces, quotes, backslashes,
// control bytes or invalid UTF-8 are quoted.
func needsQuote(v string) bool {
	if v == "" {
		return true
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c <= ' ' || c == '"' || c == '\\' || c == 0x7f {
			return true
		}
	}
	return !utf8.ValidString(v)
}

const hexDigits = "0123456789abcdef"

func quoteTo(b *strings.Builder, v string) {
	b.WriteByte('"')
	for i := 0; i < len(v); {
		c := v[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20 || c == 0x7f:
			b.WriteString(`\x`)
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRuneInString(v[i:])
			if r == utf8.RuneError && n == 1 {
				b.WriteString(`\x`)
				b.WriteByte(hexDigits[c>>4])
				b.WriteByte(hexDigits[c&15])
			} else {
				b.WriteString(v[i : i+n])
			}
			i += n
			continue
		default:
			b.WriteByte(c)
		}
		i++
	}
	b.WriteByte('"')
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

func skipSpace(s string, pos int) int {
	for pos < len(s) && isSpace(s[pos]) {
		pos++
	}
	return pos
}

func validTag(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func validWord(s string) bool {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func validKey(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// cut shortens s for an error message.
func cut(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

package logs

import (
	"bufio"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"
)

// PrintOptions say which followed lines are printed and how.
type PrintOptions struct {
	// Include: print only lines matching at least one (none: all lines).
	Include []*regexp.Regexp
	// Exclude: never print lines matching any; exclude wins over include.
	Exclude []*regexp.Regexp
	// Highlight: matches are shown in reverse video (with Color).
	Highlight []*regexp.Regexp
	// JSON prints one object per line: file, line, parsed fields.
	JSON bool
	// Color is the run's one colour decision; off means plain text.
	Color bool
	// Raw prints text lines' control characters as they are. Off (the
	// default), they are shown escaped as less shows them (ESC as ^[), so a
	// log line cannot drive the terminal; JSON output is never changed.
	Raw bool
}

// CutMarker ends a line that was cut at the maximum line length.
const CutMarker = " [tail-logs: line cut at 1 MiB]"

// SGR sequences; used only when Color is on.
const (
	sgrReset   = "\x1b[0m"
	sgrFWD     = "\x1b[36m" // cyan
	sgrBWD     = "\x1b[35m" // magenta
	sgrError   = "\x1b[1;31m"
	sgrFall    = "\x1b[33m"
	sgrAlloc   = "\x1b[2m"
	sgrHigh    = "\x1b[7m"
	sgrDefault = ""
)

// prefixColors are cycled over the followed files.
var prefixColors = []string{"\x1b[92m", "\x1b[94m", "\x1b[95m", "\x1b[96m", "\x1b[93m", "\x1b[91m"}

// printer formats followed lines onto a buffered writer. It is used by one
// goroutine (the Follower's loop).
type printer struct {
	PrintOptions
	w      *bufio.Writer
	prefix bool // several files: prefix each line with its file
	enc    *json.Encoder
	ranges [][2]int // scratch for highlights
}

func newPrinter(opts PrintOptions, w *bufio.Writer, prefix bool) *printer {
	p := &printer{PrintOptions: opts, w: w, prefix: prefix}
	if opts.JSON {
		p.enc = json.NewEncoder(w)
		p.enc.SetEscapeHTML(false)
	}
	return p
}

// jsonRecord is one line of -o json output.
type jsonRecord struct {
	File       string `json:"file"`
	Line       string `json:"line"`
	Cut        bool   `json:"cut,omitempty"`
	Parsed     *Line  `json:"parsed,omitempty"`
	ParseError string `json:"parse_error,omitempty"`
}

// keep applies the filters to the line as it will be shown.
func (p *printer) keep(text string) bool {
	for _, re := range p.Exclude {
		if re.MatchString(text) {
			return false
		}
	}
	if len(p.Include) == 0 {
		return true
	}
	for _, re := range p.Include {
		if re.MatchString(text) {
			return true
		}
	}
	return false
}

// print writes one line of src (raw bytes without the newline).
func (p *printer) print(src *source, raw []byte, cut bool) error {
	var text string
	if utf8.Valid(raw) {
		text = string(raw)
	} else {
		text = strings.ToValidUTF8(string(raw), "\uFFFD")
	}
	if !p.Raw && !p.JSON {
		text = strings.TrimSuffix(text, "\r") // as less hides the CR of a CRLF
	}
	if !p.keep(text) {
		return nil
	}
	if p.JSON {
		rec := jsonRecord{File: src.name, Line: text, Cut: cut}
		if l, err := Parse(text); err == nil {
			rec.Parsed = &l
		} else {
			rec.ParseError = err.Error()
		}
		return p.enc.Encode(rec)
	}
	if p.prefix {
		if p.Color {
			p.w.WriteString(prefixColors[src.index%len(prefixColors)])
			p.text(src.label)
			p.w.WriteString(":" + sgrReset + " ")
		} else {
			p.text(src.label)
			p.w.WriteString(": ")
		}
	}
	if p.Color {
		p.colored(text)
	} else {
		p.text(text)
	}
	if cut {
		p.w.WriteString(CutMarker)
	}
	_, err := p.w.WriteString("\n")
	return err
}

// colored writes text with the word's colour (on `[tag] WORD` for FWD and
// BWD, on the whole line for ERROR, FALLBACK and ALLOC) and highlights.
func (p *printer) colored(text string) {
	word, headEnd := headWord(text)
	line, head := sgrDefault, sgrDefault
	switch word {
	case WordFWD:
		head = sgrFWD
	case WordBWD:
		head = sgrBWD
	case WordError:
		line = sgrError
	case WordFallback:
		line = sgrFall
	case WordAlloc:
		line = sgrAlloc
	}
	p.ranges = p.ranges[:0]
	for _, re := range p.Highlight {
		for _, m := range re.FindAllStringIndex(text, -1) {
			if m[1] > m[0] {
				p.ranges = append(p.ranges, [2]int{m[0], m[1]})
			}
		}
	}
	if line == "" && head == "" && len(p.ranges) == 0 {
		p.text(text)
		return
	}
	// Cut the line at every style boundary; style each piece.
	cuts := []int{0, len(text)}
	if head != "" {
		cuts = append(cuts, headEnd)
	}
	for _, r := range p.ranges {
		cuts = append(cuts, r[0], r[1])
	}
	sort.Ints(cuts)
	styled := false
	for i := 0; i+1 < len(cuts); i++ {
		a, b := cuts[i], cuts[i+1]
		if a == b {
			continue
		}
		style := line
		if a < headEnd {
			style += head
		}
		for _, r := range p.ranges {
			if a >= r[0] && a < r[1] {
				style += sgrHigh
				break
			}
		}
		if styled {
			p.w.WriteString(sgrReset)
			styled = false
		}
		if style != "" {
			p.w.WriteString(style)
			styled = true
		}
		p.text(text[a:b])
	}
	if styled {
		p.w.WriteString(sgrReset)
	}
}

// text writes s, escaping its control characters unless Raw.
func (p *printer) text(s string) {
	if p.Raw {
		p.w.WriteString(s)
		return
	}
	writeEscaped(p.w, s)
}

// writeEscaped writes s (valid UTF-8) with its control characters shown as
// less shows them: C0 controls and DEL in caret notation (ESC as ^[, CR as
// ^M, DEL as ^?), C1 controls (U+0080–U+009F, e.g. the 8-bit CSI) as
// <U+009B>. Tabs are kept.
func writeEscaped(w *bufio.Writer, s string) {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if (c < 0x20 && c != '\t') || c == 0x7f {
				w.WriteString(s[start:i])
				w.WriteByte('^')
				w.WriteByte(c ^ 0x40)
				start = i + 1
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r >= 0x80 && r <= 0x9f {
			w.WriteString(s[start:i])
			fmt.Fprintf(w, "<U+%04X>", r)
			start = i + n
		}
		i += n
	}
	w.WriteString(s[start:])
}

// headWord finds WORD in "[tag] WORD …" and the end of "[tag] WORD".
func headWord(text string) (word string, end int) {
	if !strings.HasPrefix(text, "[") {
		return "", 0
	}
	close := strings.IndexByte(text, ']')
	if close < 0 {
		return "", 0
	}
	i := skipSpace(text, close+1)
	j := i
	for j < len(text) && !isSpace(text[j]) {
		j++
	}
	return text[i:j], j
}

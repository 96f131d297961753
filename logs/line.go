// Package logs defines orchard's two log formats — the kernel-call log and
// the tensor profile log that the runner appends to — and parses, inspects
// and follows them. docs/logs.md is the grammar; Parse and Format implement
// it and round-trip. Inspect/CheckRun read one run's lines for the
// `logs` step, and Follower is `orchard tail-logs` (GNU tail -F).
package logs

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// The words of a line. Other upper-case words parse (Line.Word holds them)
// so newer writers do not break older readers.
const (
	WordFWD      = "FWD"      // one forward kernel call
	WordBWD      = "BWD"      // one backward kernel call
	WordError    = "ERROR"    // something failed; msg= says what
	WordFallback = "FALLBACK" // work ran on the CPU instead of the backend; msg= says why
	WordAlloc    = "ALLOC"    // tensor profile: one buffer allocation
)

// Tags written by the runners: the Metal host (.mm) and the CPU emulation.
const (
	TagMetal = "flashattn.mm"
	TagEmu   = "flashattn.emu"
)

// TimeLayout is how Format writes time=: RFC 3339 with milliseconds.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// Field is a key=value pair whose key is not one of Line's typed fields.
type Field struct {
	Key   string
	Value string
}

// Line is one parsed log line: `[Tag] Word key=value …`. A zero field is
// absent (Format omits it); Parse fills the typed fields from their keys and
// keeps any other key in Extra, in order.
type Line struct {
	Tag  string // [flashattn.mm] or [flashattn.emu]
	Word string // FWD, BWD, ERROR, FALLBACK, ALLOC, or a newer word

	Call    int       // call=N: the Nth call of this word in the process (1-based)
	Name    string    // name=: the tensor's name (ALLOC)
	Bytes   int64     // bytes=: the allocation's size (ALLOC)
	Time    time.Time // time=RFC 3339 with ms, e.g. 2026-11-28T10:15:30.123Z
	PID     int       // pid=
	Run     string    // run=: the run id (ORCHARD_RUN_ID)
	Backend string    // backend=metal|emu
	Kernel  string    // kernel=: the kernel's host name
	Op      string    // op=fwd|bwd: the pass an ERROR or FALLBACK belongs to
	Shape   Shape     // shape=BxHxNqxNkxD for FWD/BWD; the tensor's dims for ALLOC
	DType   string    // dtype=f32|f16|bf16
	Causal  *bool     // causal=0|1
	Storage string    // storage=shared|private|managed|memoryless
	DurUS   int64     // dur_us=: wall time of the call in microseconds
	// GPUUS is gpu_us=: the dispatch's device time in microseconds, from
	// TimeSource: "gpu" (GPUEndTime − GPUStartTime of its command buffer) or
	// "emu" (the CPU emulation's own time).
	GPUUS      int64
	TimeSource string  // time_source=gpu|emu
	Part       string  // part=i/n: the ith of the n dispatches the pass was split into
	Msg        string  // msg=: what happened, for people (ERROR, FALLBACK)
	Extra      []Field // other keys, in the order they appeared
}

// Shape is a tensor shape, written as dims joined by "x" (1x2x64x64x64).
type Shape []int

func (s Shape) String() string {
	var b strings.Builder
	for i, d := range s {
		if i > 0 {
			b.WriteByte('x')
		}
		b.WriteString(strconv.Itoa(d))
	}
	return b.String()
}

// Bool returns a pointer to v, for Line.Causal.
func Bool(v bool) *bool { return &v }

// knownKeys lists the typed keys in the order Format writes them: what names
// the record first (call for FWD/BWD, so the seed's `FWD call=1` stays
// greppable; name and bytes for ALLOC), msg last because it is long.
var knownKeys = []string{
	"call", "name", "bytes", "time", "pid", "run", "backend", "kernel", "op",
	"shape", "dtype", "causal", "storage", "dur_us", "gpu_us", "time_source", "part", "msg",
}

func isKnownKey(k string) bool {
	for _, kk := range knownKeys {
		if kk == k {
			return true
		}
	}
	return false
}

// Format writes l in the grammar of docs/logs.md, without a newline: typed
// fields in a fixed order, then Extra. Parse(Format(l)) equals l for any
// Line that Validate accepts.
func Format(l Line) string {
	var b strings.Builder
	b.Grow(160)
	b.WriteByte('[')
	b.WriteString(l.Tag)
	b.WriteString("] ")
	b.WriteString(l.Word)
	num := func(k string, v int64) {
		if v != 0 {
			writeField(&b, k, strconv.FormatInt(v, 10))
		}
	}
	str := func(k, v string) {
		if v != "" {
			writeField(&b, k, v)
		}
	}
	num("call", int64(l.Call))
	str("name", l.Name)
	num("bytes", l.Bytes)
	if !l.Time.IsZero() {
		writeField(&b, "time", formatTime(l.Time))
	}
	num("pid", int64(l.PID))
	str("run", l.Run)
	str("backend", l.Backend)
	str("kernel", l.Kernel)
	str("op", l.Op)
	if len(l.Shape) > 0 {
		writeField(&b, "shape", l.Shape.String())
	}
	str("dtype", l.DType)
	if l.Causal != nil {
		v := "0"
		if *l.Causal {
			v = "1"
		}
		writeField(&b, "causal", v)
	}
	str("storage", l.Storage)
	num("dur_us", l.DurUS)
	num("gpu_us", l.GPUUS)
	str("time_source", l.TimeSource)
	str("part", l.Part)
	str("msg", l.Msg)
	for _, f := range l.Extra {
		writeField(&b, f.Key, f.Value)
	}
	return b.String()
}

func writeField(b *strings.Builder, k, v string) {
	b.WriteByte(' ')
	b.WriteString(k)
	b.WriteByte('=')
	if needsQuote(v) {
		quoteTo(b, v)
	} else {
		b.WriteString(v)
	}
}

// formatTime keeps milliseconds (the grammar's precision) and, when the time
// has finer digits, all of them so that Format never loses information.
func formatTime(t time.Time) string {
	if t.Nanosecond()%int(time.Millisecond) == 0 {
		return t.Format(TimeLayout)
	}
	return t.Format(time.RFC3339Nano)
}

// Validate reports whether Format(l) would parse back to l: a well-formed tag
// and word, non-negative numbers, a known storage mode, and Extra keys that
// are well formed, distinct and not typed keys.
func (l Line) Validate() error {
	if !validTag(l.Tag) {
		return &SyntaxError{Msg: "tag " + strconv.Quote(l.Tag) + " is not [A-Za-z0-9._-]+"}
	}
	if !validWord(l.Word) {
		return &SyntaxError{Msg: "word " + strconv.Quote(l.Word) + " is not [A-Z][A-Z0-9_]*"}
	}
	if l.Call < 0 || l.PID < 0 || l.DurUS < 0 || l.GPUUS < 0 || l.Bytes < 0 {
		return &SyntaxError{Msg: "call, pid, dur_us, gpu_us and bytes must not be negative"}
	}
	for _, d := range l.Shape {
		if d < 0 {
			return &SyntaxError{Msg: "shape dims must not be negative"}
		}
	}
	if l.Storage != "" && !validStorage(l.Storage) {
		return &SyntaxError{Msg: "storage " + strconv.Quote(l.Storage) + " is not shared|private|managed|memoryless"}
	}
	if !l.Time.IsZero() {
		if _, err := time.Parse(time.RFC3339Nano, formatTime(l.Time)); err != nil {
			return &SyntaxError{Msg: "time cannot be written as RFC 3339: " + err.Error()}
		}
	}
	seen := map[string]bool{}
	for _, f := range l.Extra {
		if !validKey(f.Key) || isKnownKey(f.Key) || seen[f.Key] {
			return &SyntaxError{Msg: "extra key " + strconv.Quote(f.Key) + " is malformed, typed or repeated"}
		}
		seen[f.Key] = true
	}
	return nil
}

func validStorage(s string) bool {
	switch s {
	case "shared", "private", "managed", "memoryless":
		return true
	}
	return false
}

// MarshalJSON writes the present fields under their log keys (time as RFC
// 3339, shape as an array of dims, causal as a boolean, Extra as an object).
func (l Line) MarshalJSON() ([]byte, error) {
	type jsonLine struct {
		Tag        string            `json:"tag"`
		Word       string            `json:"word"`
		Call       int               `json:"call,omitempty"`
		Name       string            `json:"name,omitempty"`
		Bytes      int64             `json:"bytes,omitempty"`
		Time       string            `json:"time,omitempty"`
		PID        int               `json:"pid,omitempty"`
		Run        string            `json:"run,omitempty"`
		Backend    string            `json:"backend,omitempty"`
		Kernel     string            `json:"kernel,omitempty"`
		Op         string            `json:"op,omitempty"`
		Shape      []int             `json:"shape,omitempty"`
		DType      string            `json:"dtype,omitempty"`
		Causal     *bool             `json:"causal,omitempty"`
		Storage    string            `json:"storage,omitempty"`
		DurUS      int64             `json:"dur_us,omitempty"`
		GPUUS      int64             `json:"gpu_us,omitempty"`
		TimeSource string            `json:"time_source,omitempty"`
		Part       string            `json:"part,omitempty"`
		Msg        string            `json:"msg,omitempty"`
		Extra      map[string]string `json:"extra,omitempty"`
	}
	j := jsonLine{Tag: l.Tag, Word: l.Word, Call: l.Call, PID: l.PID, Run: l.Run,
		Backend: l.Backend, Kernel: l.Kernel, Op: l.Op, Shape: l.Shape, DType: l.DType,
		Causal: l.Causal, Storage: l.Storage, DurUS: l.DurUS, GPUUS: l.GPUUS, TimeSource: l.TimeSource,
		Part: l.Part, Name: l.Name, Bytes: l.Bytes, Msg: l.Msg}
	if !l.Time.IsZero() {
		j.Time = formatTime(l.Time)
	}
	if len(l.Extra) > 0 {
		j.Extra = make(map[string]string, len(l.Extra))
		for _, f := range l.Extra {
			j.Extra[f.Key] = f.Value
		}
	}
	return json.Marshal(j)
}

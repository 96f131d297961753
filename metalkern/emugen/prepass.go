package emugen

// The emu pre-pass: turns a .metal file (plus the local headers it
// includes) into C++ that compiles against the emu shim. It
//   - inlines "quoted" includes with #line markers (so every diagnostic and
//     every barrier site names the real .metal/.h file and line),
//   - erases `threadgroup` where it is an address space (a type followed by
//     `*` or `&`: parameters, locals, casts),
//   - turns each `threadgroup T name[N];` declaration in a function body into
//     a reference to the group's threadgroup-memory arena, so the launcher
//     can account its bytes per kernel (32 KiB limit) and poison it,
//   - blanks the attributes between `template` and an explicit
//     instantiation (clang rejects them there).
// Edits keep every line of a file where it was; inlined headers come with
// #line markers before and after them.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// SourceError is an error at a place in a .metal or header file.
type SourceError struct {
	File string
	Line int
	Msg  string
}

func (e *SourceError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// edit replaces src[off:end] with text (which has as many newlines as the range).
type edit struct {
	off, end int
	text     string
}

// srcFile is one .metal or header file, lexed and rewritten once.
type srcFile struct {
	path  string
	src   []byte
	toks  []token
	edits []edit
	once  bool // has #pragma once
}

func (f *srcFile) errorf(t token, format string, a ...any) error {
	return &SourceError{File: f.path, Line: t.line, Msg: fmt.Sprintf(format, a...)}
}

// blank replaces a range by spaces, keeping its newlines.
func (f *srcFile) blank(off, end int) {
	b := []byte(string(f.src[off:end]))
	for i := range b {
		if b[i] != '\n' {
			b[i] = ' '
		}
	}
	f.edits = append(f.edits, edit{off, end, string(b)})
}

// unit is one inclusion of a file in the translation unit: the include
// directives it expands (token index -> unit, nil = skipped by #pragma once).
type unit struct {
	file     *srcFile
	children map[int]*unit
}

var (
	reInclude = regexp.MustCompile(`^#\s*include\s*"([^"]+)"`)
	reOnce    = regexp.MustCompile(`^#\s*pragma\s+once\b`)
)

// tu is the translation unit being assembled.
type tu struct {
	includeDirs []string
	files       map[string]*srcFile
	order       []*srcFile // files in order of first appearance
	onceSeen    map[*srcFile]bool
	counting    bool // GenerateCounting: counting pointer types
}

func (t *tu) load(path string, src []byte) (*srcFile, error) {
	if f, ok := t.files[path]; ok {
		return f, nil
	}
	f := &srcFile{path: path, src: src, toks: lex(src)}
	for _, tk := range f.toks {
		if tk.kind == tkDirective && reOnce.MatchString(tk.text) {
			f.once = true
			f.blank(tk.off, tk.end) // "#pragma once in main file" otherwise
		}
	}
	if err := checkMetalSubset(f); err != nil {
		return nil, err
	}
	if err := rewriteThreadgroup(f, t.counting); err != nil {
		return nil, err
	}
	if t.counting {
		if err := rewriteDevice(f); err != nil {
			return nil, err
		}
	}
	rewriteConstant(f)
	t.files[path] = f
	t.order = append(t.order, f)
	return f, nil
}

// expand builds the inclusion tree of f, resolving "quoted" includes against
// the including file's directory, then the include directories.
func (t *tu) expand(f *srcFile, depth int) (*unit, error) {
	u := &unit{file: f, children: map[int]*unit{}}
	if f.once {
		t.onceSeen[f] = true
	}
	for i, tk := range f.toks {
		if tk.kind != tkDirective {
			continue
		}
		m := reInclude.FindStringSubmatch(tk.text)
		if m == nil {
			continue
		}
		if depth >= 64 {
			return nil, f.errorf(tk, "includes nested more than 64 deep (an include cycle without guards?)")
		}
		path, err := t.resolve(f, m[1])
		if err != nil {
			return nil, f.errorf(tk, "%v", err)
		}
		child, ok := t.files[path]
		if !ok {
			src, err := os.ReadFile(path)
			if err != nil {
				return nil, f.errorf(tk, "cannot read %q: %v", m[1], err)
			}
			if child, err = t.load(path, src); err != nil {
				return nil, err
			}
		}
		if child.once && t.onceSeen[child] {
			u.children[i] = nil
			continue
		}
		cu, err := t.expand(child, depth+1)
		if err != nil {
			return nil, err
		}
		u.children[i] = cu
	}
	return u, nil
}

func (t *tu) resolve(from *srcFile, name string) (string, error) {
	dirs := append([]string{filepath.Dir(from.path)}, t.includeDirs...)
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return filepath.Abs(p)
		}
	}
	return "", fmt.Errorf("cannot find include %q (searched %s)", name, strings.Join(dirs, ", "))
}

// render writes u's file with its edits applied and its includes expanded.
func (t *tu) render(u *unit, w *bytes.Buffer) {
	f := u.file
	eds := append([]edit(nil), f.edits...)
	for i, child := range u.children {
		tk := f.toks[i]
		var b bytes.Buffer
		if child != nil {
			fmt.Fprintf(&b, "#line 1 %s\n", cQuote(child.file.path))
			t.render(child, &b)
			if b.Len() > 0 && b.Bytes()[b.Len()-1] != '\n' {
				b.WriteByte('\n')
			}
			fmt.Fprintf(&b, "#line %d %s", tk.line+strings.Count(tk.text, "\n")+1, cQuote(f.path))
		}
		eds = append(eds, edit{tk.off, tk.end, b.String()})
	}
	sortEdits(eds)
	pos := 0
	for _, e := range eds {
		if e.off < pos { // overlapping edit: keep the first
			continue
		}
		w.Write(f.src[pos:e.off])
		w.WriteString(e.text)
		pos = e.end
	}
	w.Write(f.src[pos:])
}

func sortEdits(eds []edit) {
	for i := 1; i < len(eds); i++ {
		for j := i; j > 0 && eds[j].off < eds[j-1].off; j-- {
			eds[j], eds[j-1] = eds[j-1], eds[j]
		}
	}
}

// cQuote quotes s as a C string literal.
func cQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range []byte(s) {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteByte(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\%03o", r)
		default:
			b.WriteByte(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

var (
	cvWords   = map[string]bool{"const": true, "volatile": true}
	elabWords = map[string]bool{"struct": true, "class": true, "typename": true, "enum": true, "union": true}
	typeWords = map[string]bool{"unsigned": true, "signed": true, "long": true, "short": true, "int": true,
		"char": true, "float": true, "double": true, "bool": true, "void": true}
)

// typeEnd returns the index of the first token after the type that starts
// at toks[j] (cv-qualifiers, a possibly qualified name with template
// arguments, or builtin type words), and whether a type name was found.
func typeEnd(toks []token, j int) (int, bool) {
	saw := false
	for j < len(toks) {
		t := toks[j]
		switch {
		case t.text == "::":
			j++
			continue
		case t.kind != tkIdent:
			return j, saw
		case cvWords[t.text] || elabWords[t.text]:
			j++
			continue
		case typeWords[t.text]:
			saw = true
			j++
			continue
		case saw && toks[j-1].text != "::":
			return j, saw // the declarator
		}
		saw = true
		j++
		if j < len(toks) && toks[j].text == "<" {
			j = skipGroup(toks, j, "<", ">") + 1
		}
	}
	return j, saw
}

// skipGroup returns the index of the token closing the group opened at i.
func skipGroup(toks []token, i int, open, close string) int {
	depth := 0
	for j := i; j < len(toks); j++ {
		switch toks[j].text {
		case open:
			depth++
		case close:
			depth--
			if depth == 0 {
				return j
			}
		case ";", "{", "}":
			if open == "<" { // not a template argument list after all
				return j - 1
			}
		}
	}
	return len(toks) - 1
}

// rewriteThreadgroup records the edits for every use of `threadgroup`.
func rewriteThreadgroup(f *srcFile, counting bool) error {
	toks := f.toks
	kernels := kernelBodies(f)
	inKernel := func(i int) bool {
		for _, r := range kernels {
			if i >= r[0] && i < r[1] {
				return true
			}
		}
		return false
	}
	var braces []bool // per open brace: inside a function body?
	inFunc := func() bool { return len(braces) > 0 && braces[len(braces)-1] }
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch t.text {
		case "{":
			fn := inFunc()
			if i > 0 {
				switch toks[i-1].text {
				case ")", "const", "noexcept", "mutable", "override", "final", "else", "do", "try":
					fn = true
				}
			}
			braces = append(braces, fn)
			continue
		case "}":
			if len(braces) > 0 {
				braces = braces[:len(braces)-1]
			}
			continue
		}
		if t.kind != tkIdent || t.text != "threadgroup" {
			continue
		}
		if i > 0 && toks[i-1].text == "[" || i+1 < len(toks) && toks[i+1].text == "(" {
			continue // [[threadgroup(n)]]: reported by the signature parser
		}
		end, ok := typeEnd(toks, i+1)
		if !ok || end >= len(toks) {
			return f.errorf(t, "cannot parse this use of 'threadgroup': expected a type")
		}
		switch next := toks[end]; {
		case counting && (next.text == "*" || next.text == "&" || next.text == "&&"):
			if err := rewriteCountedPointer(f, i, end, "TgPtr"); err != nil {
				return err
			}
		case next.text == "*" || next.text == "&" || next.text == "&&" || next.text == ")" ||
			next.text == "," || next.text == ">":
			f.blank(t.off, t.end) // address space of a pointer, reference or type
		case next.kind == tkIdent:
			if !inFunc() {
				return f.errorf(t, "threadgroup variable '%s' outside a function body: MSL declares "+
					"threadgroup memory in the kernel (or a function it calls)", next.text)
			}
			if !inKernel(i) {
				return f.errorf(t, "threadgroup variable '%s' declared outside a kernel function: Metal allows "+
					"threadgroup variables only in kernel scope; declare it in the kernel and pass a "+
					"threadgroup pointer", next.text)
			}
			if err := rewriteTGDecl(f, i, end, counting); err != nil {
				return err
			}
		default:
			return f.errorf(t, "cannot parse this use of 'threadgroup' (before %q)", next.text)
		}
	}
	return nil
}

// rewriteTGDecl rewrites `threadgroup TYPE a[N][M], b[K];` (toks[i] is
// `threadgroup`, toks[tend] the first declarator) into arena references.
func rewriteTGDecl(f *srcFile, i, tend int, counting bool) error {
	toks := f.toks
	typ := collapse(string(f.src[toks[i+1].off:toks[tend-1].end]))
	var out strings.Builder
	j := tend
	for {
		if j >= len(toks) { // "threadgroup T a," at the end of the file
			return f.errorf(toks[len(toks)-1], "unterminated threadgroup declaration")
		}
		name := toks[j]
		if name.kind != tkIdent {
			return f.errorf(name, "cannot parse threadgroup declaration: expected a name, got %q", name.text)
		}
		j++
		extStart := j
		for j < len(toks) && toks[j].text == "[" {
			j = skipGroup(toks, j, "[", "]") + 1
		}
		ext := ""
		if j > extStart {
			ext = collapse(string(f.src[toks[extStart].off:toks[j-1].end]))
		}
		if j >= len(toks) {
			return f.errorf(name, "unterminated threadgroup declaration")
		}
		site := "__orchard_tg_" + name.text
		if counting {
			if strings.Count(ext, "[") != 1 {
				return f.errorf(name, "threadgroup variable '%s': the counting build (emugen.GenerateCounting) "+
					"counts one-dimensional threadgroup arrays only; declare it as T %s[N]", name.text, name.text)
			}
			fmt.Fprintf(&out, "static constexpr ::orchard_emu::TgSite %s{%s, __FILE__, __LINE__}; "+
				"::orchard_emu::TgPtr<%s> %s = ::orchard_emu::tg_counted<%s%s>(%s);",
				site, strconv.Quote(name.text), typ, name.text, typ, ext, site)
		} else {
			fmt.Fprintf(&out, "static constexpr ::orchard_emu::TgSite %s{%s, __FILE__, __LINE__}; "+
				"%s (&%s)%s = ::orchard_emu::tg_var<%s%s>(%s);",
				site, strconv.Quote(name.text), typ, name.text, ext, typ, ext, site)
		}
		switch toks[j].text {
		case ",":
			j++
			out.WriteByte(' ')
			continue
		case ";":
		case "=", "{":
			return f.errorf(toks[j], "threadgroup variable '%s' has an initialiser; MSL does not allow one "+
				"(assign it in the kernel, then threadgroup_barrier)", name.text)
		default:
			return f.errorf(toks[j], "cannot parse threadgroup declaration of '%s' (at %q)", name.text, toks[j].text)
		}
		break
	}
	orig := string(f.src[toks[i].off:toks[j].end])
	f.edits = append(f.edits, edit{toks[i].off, toks[j].end, out.String() + strings.Repeat("\n", strings.Count(orig, "\n"))})
	return nil
}

// collapse joins a multi-line snippet into one line.
func collapse(s string) string { return strings.Join(strings.Fields(s), " ") }

// rewriteCountedPointer turns `[cv] SPACE TYPE *` (toks[i] is the address
// space, toks[end] the `*`) into `::orchard_emu::CLASS<[cv] TYPE>` for the
// counting build; a reference there is an error (it could not count).
func rewriteCountedPointer(f *srcFile, i, end int, class string) error {
	toks := f.toks
	space := toks[i].text
	if toks[end].text != "*" {
		return f.errorf(toks[i], "a %s reference: the counting build (emugen.GenerateCounting) counts "+
			"accesses through %s pointers only; pass a pointer", space, space)
	}
	start, cv := i, ""
	if i > 0 && cvWords[toks[i-1].text] {
		start, cv = i-1, toks[i-1].text+" "
	}
	typ := collapse(string(f.src[toks[i+1].off:toks[end-1].end]))
	orig := string(f.src[toks[start].off:toks[end].end])
	f.edits = append(f.edits, edit{toks[start].off, toks[end].end,
		fmt.Sprintf("::orchard_emu::%s<%s%s>", class, cv, typ) + strings.Repeat("\n", strings.Count(orig, "\n"))})
	return nil
}

// rewriteDevice rewrites every `device` pointer type for the counting build
// (device is otherwise an empty macro).
func rewriteDevice(f *srcFile) error {
	toks := f.toks
	for i, t := range toks {
		if t.kind != tkIdent || t.text != "device" {
			continue
		}
		end, ok := typeEnd(toks, i+1)
		if !ok || end >= len(toks) {
			return f.errorf(t, "cannot parse this use of 'device' in the counting build: expected a type")
		}
		switch toks[end].text {
		case "*", "&", "&&":
			if err := rewriteCountedPointer(f, i, end, "DevPtr"); err != nil {
				return err
			}
		default:
			return f.errorf(t, "cannot parse this use of 'device' in the counting build (before %q): "+
				"write device T* name", toks[end].text)
		}
	}
	return nil
}

package emugen

// Kernel signature parsing for the emu binding generator: finds kernel
// definitions (`[[kernel]]` / `kernel` functions and function templates) and
// explicit instantiations (`template [[host_name("x")]] [[kernel]] void
// f<...>(...);`) among the namespace-scope declarations, and checks that
// every parameter can be bound: [[buffer(n)]] pointers/references or a
// builtin the launcher provides.

import (
	"fmt"
	"strconv"
	"strings"
)

// attribute is one item of an attribute-specifier: name(args).
type attribute struct {
	name, args string
	tok        token
}

// param is one function parameter: its attributes, type text and name.
type param struct {
	attrs []attribute
	typ   string
	name  string
	tok   token
}

// funcDecl is a function (template) declaration at namespace scope.
type funcDecl struct {
	file       *srcFile
	tok        token // the function name
	kernel     bool
	hostName   string
	name       string // as written, possibly qualified
	targs      string // explicit template arguments after the name ("" if none)
	tparams    []TemplateParam
	isTmpl     bool // `template <...>` definition/declaration
	isInst     bool // explicit instantiation
	hasBody    bool
	params     []param
	attrSpans  [][2]int // byte ranges of attribute-specifiers before the name
	maxThreads int      // [[max_total_threads_per_threadgroup(n)]], 0 without it
}

// TemplateParam is one parameter of a kernel template.
type TemplateParam struct {
	Kind string // "typename" for a type parameter, else its type ("int")
	Name string
}

// splitTop splits toks[lo:hi] at top-level commas (outside (), [], {}, <>).
func splitTop(toks []token, lo, hi int) [][2]int {
	var parts [][2]int
	depth, angle, start := 0, 0, lo
	for j := lo; j < hi; j++ {
		switch toks[j].text {
		case "(", "[", "{":
			depth++
		case ")", "]", "}":
			depth--
		case "<":
			if depth == 0 {
				angle++
			}
		case ">":
			if depth == 0 && angle > 0 {
				angle--
			}
		case ",":
			if depth == 0 && angle == 0 {
				parts = append(parts, [2]int{start, j})
				start = j + 1
			}
		}
	}
	if hi > start {
		parts = append(parts, [2]int{start, hi})
	}
	return parts
}

func (f *srcFile) text(toks []token, lo, hi int) string {
	if hi <= lo {
		return ""
	}
	return collapse(string(f.src[toks[lo].off:toks[hi-1].end]))
}

// parseAttrs parses the attribute-specifier starting at toks[i] == "[" with
// toks[i+1] == "["; it returns the items and the index after the closing "]]".
func (f *srcFile) parseAttrs(toks []token, i int) ([]attribute, int) {
	end := skipGroup(toks, i, "[", "]")
	var out []attribute
	for _, p := range splitTop(toks, i+2, end-1) {
		if p[1] <= p[0] || toks[p[0]].kind != tkIdent {
			continue
		}
		a := attribute{name: toks[p[0]].text, tok: toks[p[0]]}
		if p[0]+1 < p[1] && toks[p[0]+1].text == "(" {
			close := skipGroup(toks, p[0]+1, "(", ")")
			a.args = f.text(toks, p[0]+2, close)
		}
		out = append(out, a)
	}
	return out, end + 1
}

func isAttrStart(toks []token, i int) bool {
	return i+1 < len(toks) && toks[i].text == "[" && toks[i+1].text == "["
}

// declarations returns the namespace-scope declarations of f as token ranges.
func declarations(toks []token) [][2]int {
	var decls [][2]int
	i := 0
	for i < len(toks) {
		t := toks[i]
		switch {
		case t.kind == tkDirective || t.text == ";" || t.text == "}":
			i++ // "}" closes a namespace
			continue
		case t.text == "namespace":
			j := i + 1
			for j < len(toks) && toks[j].text != "{" && toks[j].text != ";" && toks[j].text != "=" {
				j++
			}
			if j < len(toks) && toks[j].text == "{" {
				i = j + 1 // enter the namespace: its declarations are namespace-scope too
				continue
			}
		case t.text == "extern" && i+2 < len(toks) && toks[i+1].kind == tkString && toks[i+2].text == "{":
			i += 3
			continue
		}
		// One declaration: up to ";" at depth 0, or the "}" of a function body.
		j, paren, sawParen := i, 0, false
		for ; j < len(toks); j++ {
			tx := toks[j].text
			if toks[j].kind == tkDirective {
				continue
			}
			if tx == "(" {
				paren++
				sawParen = true
			} else if tx == ")" {
				paren--
			} else if tx == ";" && paren == 0 {
				break
			} else if tx == "{" && paren == 0 {
				j = skipGroup(toks, j, "{", "}")
				if sawParen && (j+1 >= len(toks) || toks[j+1].text != ";") {
					break
				}
			}
		}
		if j >= len(toks) {
			j = len(toks) - 1
		}
		decls = append(decls, [2]int{i, j + 1})
		i = j + 1
	}
	return decls
}

// parseFunc parses the declaration toks[lo:hi] as a function (template); it
// returns nil for anything else or for a function that is not a kernel and
// not an explicit instantiation.
func (f *srcFile) parseFunc(toks []token, lo, hi int) (*funcDecl, error) {
	d := &funcDecl{file: f}
	i := lo
	if toks[i].text == "template" {
		if i+1 < hi && toks[i+1].text == "<" {
			close := skipGroup(toks, i+1, "<", ">")
			d.isTmpl = true
			d.tparams = f.parseTParams(toks, i+2, close)
			i = close + 1
		} else {
			d.isInst = true
			i++
		}
	}
	// Specifiers and attributes up to the parameter list.
	nameIdx, targsLo, targsHi := -1, 0, 0
	found := false
scan:
	for ; i < hi; i++ {
		t := toks[i]
		if isAttrStart(toks, i) {
			attrs, next := f.parseAttrs(toks, i)
			for _, a := range attrs {
				switch a.name {
				case "kernel":
					d.kernel = true
				case "host_name":
					s, err := strconv.Unquote(strings.TrimSpace(a.args))
					if err != nil {
						return nil, f.errorf(a.tok, "host_name wants a string literal, got %s", a.args)
					}
					d.hostName = s
				case "max_total_threads_per_threadgroup":
					n, err := strconv.Atoi(strings.TrimSpace(a.args))
					if err != nil || n < 1 || n > 1024 {
						return nil, f.errorf(a.tok, "max_total_threads_per_threadgroup wants an integer literal "+
							"1..1024 (emu evaluates no expression here), got (%s)", a.args)
					}
					d.maxThreads = n
				}
			}
			d.attrSpans = append(d.attrSpans, [2]int{t.off, toks[next-1].end})
			i = next - 1
			continue
		}
		switch {
		case t.text == "kernel":
			d.kernel = true
		case t.kind == tkIdent:
			nameIdx, targsLo, targsHi = i, 0, 0
			if i+1 < hi && toks[i+1].text == "<" {
				close := skipGroup(toks, i+1, "<", ">")
				targsLo, targsHi = i+2, close
				i = close
			}
		case t.text == "(":
			found = true
			break scan
		case t.text == ";" || t.text == "{" || t.text == "=":
			return nil, nil
		}
	}
	if !found || nameIdx < 0 || !d.kernel {
		return nil, nil
	}
	d.tok = toks[nameIdx]
	d.name = d.tok.text
	for k := nameIdx - 1; k-1 >= lo && toks[k].text == "::" && toks[k-1].kind == tkIdent; k -= 2 {
		d.name = toks[k-1].text + "::" + d.name
	}
	if targsHi > targsLo {
		d.targs = f.text(toks, targsLo, targsHi)
	}
	close := skipGroup(toks, i, "(", ")")
	for _, p := range splitTop(toks, i+1, close) {
		pr, err := f.parseParam(toks, p[0], p[1])
		if err != nil {
			return nil, err
		}
		if pr.typ == "void" && pr.name == "" {
			continue
		}
		d.params = append(d.params, pr)
	}
	for j := close + 1; j < hi; j++ {
		if toks[j].text == "{" {
			d.hasBody = true
			break
		}
	}
	return d, nil
}

func (f *srcFile) parseTParams(toks []token, lo, hi int) []TemplateParam {
	var out []TemplateParam
	for _, p := range splitTop(toks, lo, hi) {
		end := p[1]
		for j := p[0]; j < p[1]; j++ {
			if toks[j].text == "=" {
				end = j
				break
			}
		}
		if end <= p[0] {
			continue
		}
		tp := TemplateParam{Name: toks[end-1].text}
		if first := toks[p[0]].text; first == "typename" || first == "class" {
			tp.Kind = "typename"
		} else {
			tp.Kind = f.text(toks, p[0], end-1)
		}
		out = append(out, tp)
	}
	return out
}

func (f *srcFile) parseParam(toks []token, lo, hi int) (param, error) {
	pr := param{tok: toks[lo]}
	var rest []int
	for j := lo; j < hi; j++ {
		if isAttrStart(toks, j) {
			attrs, next := f.parseAttrs(toks, j)
			pr.attrs = append(pr.attrs, attrs...)
			j = next - 1
			continue
		}
		rest = append(rest, j)
	}
	if len(rest) >= 2 && toks[rest[len(rest)-1]].kind == tkIdent && !typeWords[toks[rest[len(rest)-1]].text] {
		pr.name = toks[rest[len(rest)-1]].text
		rest = rest[:len(rest)-1]
	}
	var parts []string
	for _, j := range rest {
		parts = append(parts, toks[j].text)
	}
	pr.typ = strings.Join(parts, " ")
	pr.typ = strings.NewReplacer(" *", "*", " &", "&", " :: ", "::", "< ", "<", " >", ">", " ,", ",").Replace(pr.typ)
	return pr, nil
}

// builtins maps each builtin attribute to the ThreadCtx expression that
// provides it and whether it is a vector (uint2/uint3 allowed).
var builtins = map[string]struct {
	expr string
	vec  bool
}{
	"thread_position_in_grid":             {"C.thread_position_in_grid", true},
	"threadgroup_position_in_grid":        {"C.threadgroup_position_in_grid", true},
	"thread_position_in_threadgroup":      {"C.thread_position_in_threadgroup", true},
	"threads_per_threadgroup":             {"C.threads_per_threadgroup", true},
	"dispatch_threads_per_threadgroup":    {"C.threads_per_threadgroup", true},
	"threadgroups_per_grid":               {"C.threadgroups_per_grid", true},
	"threads_per_grid":                    {"C.threads_per_grid", true},
	"thread_index_in_threadgroup":         {"C.thread_index_in_threadgroup", false},
	"simdgroup_index_in_threadgroup":      {"C.simdgroup_index_in_threadgroup", false},
	"thread_index_in_simdgroup":           {"C.thread_index_in_simdgroup", false},
	"simdgroups_per_threadgroup":          {"C.simdgroups_per_threadgroup", false},
	"dispatch_simdgroups_per_threadgroup": {"C.simdgroups_per_threadgroup", false},
	"threads_per_simdgroup":               {"C.threads_per_simdgroup", false},
	"thread_execution_width":              {"C.threads_per_simdgroup", false},
	"quadgroup_index_in_threadgroup":      {"C.thread_index_in_threadgroup / 4u", false},
	"thread_index_in_quadgroup":           {"C.thread_index_in_threadgroup % 4u", false},
}

// Attributes valid in MSL kernel signatures that emu cannot bind.
var unsupportedAttrs = map[string]string{
	"threadgroup":       "declare threadgroup memory in the kernel body instead (threadgroup T name[N];)",
	"texture":           "textures are not emulated",
	"sampler":           "samplers are not emulated",
	"stage_in":          "stage_in is not a compute kernel input",
	"function_constant": "function constants are not emulated; use a template parameter",
	"id":                "argument buffers are not emulated",
}

var builtinTypes = map[string]bool{"uint": true, "ushort": true, "metal::uint": true, "metal::ushort": true}
var builtinVecTypes = map[string]bool{"uint2": true, "uint3": true, "ushort2": true, "ushort3": true,
	"metal::uint2": true, "metal::uint3": true, "metal::ushort2": true, "metal::ushort3": true}

// bindParams checks every parameter of kernel d and returns its bindings.
func bindParams(d *funcDecl, kname string) ([]KernelParam, error) {
	f := d.file
	var out []KernelParam
	seen := map[int]string{}
	var width *attribute // the first [[thread_execution_width]] or [[threads_per_simdgroup]]
	for _, p := range d.params {
		where := fmt.Sprintf("parameter '%s' of kernel '%s'", p.name, kname)
		if len(p.attrs) == 0 {
			return nil, f.errorf(p.tok, "%s has no attribute: add [[buffer(n)]] or a builtin such as "+
				"[[thread_position_in_grid]]", where)
		}
		if len(p.attrs) > 1 {
			return nil, f.errorf(p.tok, "%s has %d attributes; emu binds exactly one", where, len(p.attrs))
		}
		a := p.attrs[0]
		if a.name == "thread_execution_width" || a.name == "threads_per_simdgroup" {
			if width != nil {
				return nil, f.errorf(a.tok, "%s: kernel '%s' declares both [[%s]] (line %d) and [[%s]]; Metal "+
					"rejects a kernel with both (they are the same value): keep one", where, kname, width.name,
					width.tok.line, a.name)
			}
			width = &a
		}
		kp := KernelParam{Name: p.name, Type: p.typ, Attr: a.name, Buffer: -1}
		if a.args != "" {
			kp.Attr += "(" + a.args + ")"
		}
		switch b, isBuiltin := builtins[a.name]; {
		case a.name == "buffer":
			n, err := strconv.Atoi(strings.TrimSpace(a.args))
			if err != nil || n < 0 || n > 30 {
				return nil, f.errorf(a.tok, "%s: [[buffer(%s)]] needs an integer literal from 0 to 30", where, a.args)
			}
			if other, dup := seen[n]; dup {
				return nil, f.errorf(a.tok, "%s: [[buffer(%d)]] is also used by '%s'", where, n, other)
			}
			seen[n] = p.name
			kp.Buffer = n
			switch {
			case strings.Contains(p.typ, "*"):
			case strings.Contains(p.typ, "&"):
				kp.Ref = true
			default:
				return nil, f.errorf(a.tok, "%s: a [[buffer(n)]] parameter must be a pointer (device T*) "+
					"or a reference (constant T&), not %q", where, p.typ)
			}
		case isBuiltin:
			typ := strings.TrimPrefix(strings.TrimPrefix(p.typ, "const "), "metal::")
			if !builtinTypes[typ] && !(b.vec && builtinVecTypes[typ]) {
				want := "uint or ushort"
				if b.vec {
					want = "uint, uint2, uint3, ushort, ushort2 or ushort3"
				}
				return nil, f.errorf(a.tok, "%s: [[%s]] must be declared as %s, not %q", where, a.name, want, p.typ)
			}
		default:
			if why, ok := unsupportedAttrs[a.name]; ok {
				return nil, f.errorf(a.tok, "%s: [[%s]] is not supported by emu: %s", where, kp.Attr, why)
			}
			return nil, f.errorf(a.tok, "%s: unknown attribute [[%s]]", where, kp.Attr)
		}
		out = append(out, kp)
	}
	return out, nil
}

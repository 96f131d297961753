package emugen

// The Metal-subset checks of the emu pre-pass. Emu compiles kernels as
// C++20, which accepts much that Apple's Metal compiler (MSL 3.0, based on
// C++14, with address spaces) rejects. C++17 features Apple's clang takes
// as extensions in Metal (if constexpr, namespace a::b: MLX's kernels use
// both) are not rejected; C++20-only syntax is. These checks reject, at the .metal
// file and line, what Metal would reject, so a kernel that passes on emu
// does not fail its first compile on a Mac. They read tokens, not types:
// each rule below names the pattern it matches (docs/emu.md, "What emu
// rejects, and why"). Code that only emu or only the host compiles
// (#ifdef ORCHARD_EMU, #ifndef __METAL_VERSION__) is not checked.

import (
	"fmt"
	"regexp"
	"strings"
)

// addrSpaces are MSL's address-space qualifiers.
var addrSpaces = map[string]bool{"device": true, "constant": true, "threadgroup": true, "thread": true,
	"threadgroup_imageblock": true, "ray_data": true, "object_data": true}

// bannedWords: identifiers that start a construct Metal does not have.
var bannedWords = map[string]string{
	"throw":        "exception handling is not available in Metal (MSL spec, C++14 restrictions)",
	"try":          "exception handling is not available in Metal (MSL spec, C++14 restrictions)",
	"catch":        "exception handling is not available in Metal (MSL spec, C++14 restrictions)",
	"virtual":      "virtual functions are not available in Metal (MSL spec, C++14 restrictions)",
	"dynamic_cast": "dynamic_cast is not available in Metal (MSL spec, C++14 restrictions)",
	"typeid":       "type identification (typeid) is not available in Metal (MSL spec, C++14 restrictions)",
	"goto":         "goto is not available in Metal (MSL spec, C++14 restrictions)",
	"thread_local": "thread_local storage is not available in Metal (MSL spec, C++14 restrictions)",
	"register":     "the register storage class is not available in Metal (MSL spec, C++14 restrictions)",
	"double":       "Metal has no double type: use float",
	"concept":      "concepts are C++20; Metal is C++14-based (-std=metal3.0): use a template with static_assert",
	"requires":     "requires-clauses are C++20; Metal is C++14-based (-std=metal3.0): use static_assert",
	"co_await":     "coroutines are C++20; Metal is C++14-based (-std=metal3.0)",
	"co_yield":     "coroutines are C++20; Metal is C++14-based (-std=metal3.0)",
	"co_return":    "coroutines are C++20; Metal is C++14-based (-std=metal3.0)",
	"consteval":    "consteval is C++20; Metal is C++14-based (-std=metal3.0): use constexpr",
	"constinit":    "constinit is C++20; Metal is C++14-based (-std=metal3.0): use constant constexpr",
	"char8_t":      "char8_t is C++20; Metal is C++14-based (-std=metal3.0)",
}

// mathCalls are metal:: functions overloaded for float and half (and, for
// some, integers) only: a double argument makes the call ambiguous in Metal.
var mathCalls = map[string]bool{"max": true, "min": true, "fmax": true, "fmin": true, "fma": true, "clamp": true,
	"mix": true, "pow": true, "powr": true, "atan2": true, "copysign": true, "fmod": true, "fdim": true,
	"step": true, "smoothstep": true, "select": true, "abs": true, "fabs": true, "sqrt": true, "rsqrt": true,
	"exp": true, "exp2": true, "exp10": true, "log": true, "log2": true, "log10": true, "sin": true, "cos": true,
	"tan": true, "tanh": true, "floor": true, "ceil": true, "round": true, "trunc": true, "saturate": true,
	"simd_sum": true, "simd_max": true, "simd_min": true, "simd_broadcast": true, "simd_shuffle_xor": true}

var reCond = regexp.MustCompile(`^#\s*(if|ifdef|ifndef|elif|else|endif)\b\s*(.*)$`)

// metalInactive marks the tokens in preprocessor branches the Metal
// compiler never sees (emu-only or host-only code).
func metalInactive(toks []token) []bool {
	type level struct{ known, inactive bool }
	var stack []level
	off := make([]bool, len(toks))
	for i, t := range toks {
		if t.kind == tkDirective {
			if m := reCond.FindStringSubmatch(t.text); m != nil {
				cond := strings.Join(strings.Fields(m[2]), "")
				switch m[1] {
				case "if", "ifdef", "ifndef":
					emuOnly := m[1] == "ifdef" && cond == "ORCHARD_EMU" || m[1] == "ifndef" && cond == "__METAL_VERSION__" ||
						m[1] == "if" && (cond == "defined(ORCHARD_EMU)" || cond == "!defined(__METAL_VERSION__)")
					metalOnly := m[1] == "ifndef" && cond == "ORCHARD_EMU" || m[1] == "ifdef" && cond == "__METAL_VERSION__" ||
						m[1] == "if" && (cond == "!defined(ORCHARD_EMU)" || cond == "defined(__METAL_VERSION__)")
					stack = append(stack, level{known: emuOnly || metalOnly, inactive: emuOnly})
				case "elif":
					if n := len(stack); n > 0 {
						stack[n-1] = level{}
					}
				case "else":
					if n := len(stack); n > 0 && stack[n-1].known {
						stack[n-1].inactive = !stack[n-1].inactive
					}
				case "endif":
					if n := len(stack); n > 0 {
						stack = stack[:n-1]
					}
				}
			}
		}
		for _, l := range stack {
			if l.inactive {
				off[i] = true
			}
		}
	}
	return off
}

// isFloatLiteral: a decimal or hex floating literal; suffix is its suffix letter(s).
func floatLiteral(s string) (isFloat bool, suffix string) {
	low := strings.ToLower(s)
	hex := strings.HasPrefix(low, "0x")
	if !(strings.Contains(low, ".") || !hex && strings.Contains(low, "e") || hex && strings.Contains(low, "p")) {
		return false, ""
	}
	end := len(low)
	for end > 0 && strings.ContainsRune("fhl", rune(low[end-1])) {
		end--
	}
	return true, low[end:]
}

// checkMetalSubset rejects the first construct of f that Metal rejects.
func checkMetalSubset(f *srcFile) error {
	toks := f.toks
	off := metalInactive(toks)
	at := func(i int) string {
		if i >= 0 && i < len(toks) {
			return toks[i].text
		}
		return ""
	}
	for i, t := range toks {
		if off[i] || t.kind == tkDirective {
			continue
		}
		switch {
		case t.kind == tkIdent && t.text == "std" && at(i+1) == "::" && at(i-1) != "::":
			return f.errorf(t, "std::%s: the C++ standard library is not available in Metal (MSL spec, C++14 "+
				"restrictions); use the metal:: equivalent from <metal_stdlib>", at(i+2))
		case t.kind == tkIdent && (t.text == "new" || t.text == "delete") && at(i-1) != "operator" &&
			!(t.text == "delete" && at(i-1) == "="):
			return f.errorf(t, "'%s': the new and delete operators are not available in Metal (MSL spec, C++14 "+
				"restrictions); use fixed-size arrays or threadgroup memory", t.text)
		case t.kind == tkIdent && bannedWords[t.text] != "" && at(i-1) != "." && at(i-1) != "->":
			return f.errorf(t, "'%s': %s", t.text, bannedWords[t.text])
		case t.text == "<=" && at(i+1) == ">" && toks[i+1].off == t.end:
			return f.errorf(t, "the <=> operator is C++20; Metal is C++14-based (-std=metal3.0)")
		case t.text == "(" && (at(i+1) == "*" || at(i+1) == "&") && i+4 < len(toks) &&
			toks[i+2].kind == tkIdent && at(i+3) == ")" && at(i+4) == "(" && at(i-1) != "sizeof" &&
			(i == 0 || toks[i-1].kind == tkIdent || at(i-1) == "," || at(i-1) == "(" || at(i-1) == ">"):
			return f.errorf(t, "'%s' is a function pointer: Metal does not support function pointers outside "+
				"[[visible]] functions (MSL spec); call the function directly or use a template parameter",
				toks[i+2].text)
		case t.kind == tkNumber:
			if isF, suf := floatLiteral(t.text); isF && (suf == "" || suf == "l") {
				if call := mathCallOf(toks, i); call != "" {
					return f.errorf(t, "%s(..., %s, ...): %s is a double literal and Metal has no double, so the "+
						"call matches no overload (float, half) unambiguously; write %sf", call, t.text, t.text,
						strings.TrimRight(t.text, "lL"))
				}
			}
		}
	}
	if err := checkAddressSpaces(f, off); err != nil {
		return err
	}
	return checkRecursion(f, off)
}

// mathCallOf returns the math function whose argument is exactly the
// literal toks[i] (optionally negated), or "".
func mathCallOf(toks []token, i int) string {
	j := i - 1
	if j >= 0 && (toks[j].text == "-" || toks[j].text == "+") {
		j--
	}
	if j < 0 || (toks[j].text != "(" && toks[j].text != ",") || i+1 >= len(toks) ||
		(toks[i+1].text != ")" && toks[i+1].text != ",") {
		return ""
	}
	// Walk back to the opening parenthesis of this argument list.
	depth := 0
	for ; j >= 0; j-- {
		switch toks[j].text {
		case ")", "]":
			depth++
		case "]]":
		case "(", "[":
			if depth == 0 {
				if toks[j].text == "(" && j > 0 && toks[j-1].kind == tkIdent && mathCalls[toks[j-1].text] {
					return toks[j-1].text
				}
				return ""
			}
			depth--
		case ";", "{", "}":
			return ""
		}
	}
	return ""
}

// stmtStart reports whether toks[i] begins a statement or declaration.
func stmtStart(toks []token, i int) bool {
	if i == 0 {
		return true
	}
	switch toks[i-1].text {
	case "{", ";", "}":
		return true
	case "(":
		return i >= 2 && toks[i-2].text == "for"
	}
	return toks[i-1].kind == tkDirective
}

var notTypeStart = map[string]bool{"return": true, "case": true, "else": true, "do": true, "goto": true,
	"typedef": true, "using": true, "delete": true, "throw": true, "default": true, "break": true,
	"continue": true, "if": true, "while": true, "for": true, "switch": true, "sizeof": true, "template": true,
	"namespace": true, "public": true, "private": true, "protected": true, "static_assert": true, "operator": true,
	"friend": true, "enum": true, "new": true}

// declSpecs scans a declaration's specifiers and type from toks[s] (idents,
// ::, template arguments) up to the first *, & or &&, and returns the index
// of that token, the address space named (or ""), and whether auto appears.
// ok is false when toks[s:] does not look like a pointer/reference declaration.
func declSpecs(toks []token, s, hi int) (star int, as string, auto, ok bool) {
	j, idents := s, 0
	for j < hi {
		t := toks[j]
		switch {
		case t.kind == tkIdent:
			if addrSpaces[t.text] {
				as = t.text
			} else if t.text == "auto" {
				auto = true
			} else if !cvWords[t.text] && !elabWords[t.text] && t.text != "static" && t.text != "constexpr" &&
				t.text != "inline" {
				idents++
			}
			j++
		case t.text == "::":
			j++
		case t.text == "<":
			j = skipGroup(toks, j, "<", ">") + 1
		case t.text == "*" || t.text == "&" || t.text == "&&":
			return j, as, auto, idents >= 1
		default:
			return j, as, auto, false
		}
	}
	return j, as, auto, false
}

// declName returns the declarator name after the *, & and cv tokens at
// toks[j], and the index after it, if a declarator follows.
func declName(toks []token, j, hi int) (string, int, bool) {
	for j < hi && (toks[j].text == "*" || toks[j].text == "&" || toks[j].text == "&&" || cvWords[toks[j].text] ||
		toks[j].text == "__restrict" || toks[j].text == "restrict") {
		j++
	}
	if j < hi && toks[j].kind == tkIdent && !addrSpaces[toks[j].text] {
		return toks[j].text, j + 1, true
	}
	return "", j, false
}

// funcInfo is a namespace-scope function: its name and parameter address
// spaces ("" for parameters that are not pointers or references).
type funcInfo struct {
	name           string
	nameTok        int
	open, close    int // the parameter list's parentheses
	bodyLo, bodyHi int // the body's braces, -1 without a body
	paramAS        []string
	paramPtr       []bool // a pointer or reference
	paramStar      []bool // a pointer
}

// functions lists the namespace-scope functions of f.
func functions(f *srcFile) []funcInfo {
	toks := f.toks
	var out []funcInfo
	for _, r := range declarations(toks) {
		lo, hi := r[0], r[1]
		i := lo
		if toks[i].text == "template" && i+1 < hi && toks[i+1].text == "<" {
			i = skipGroup(toks, i+1, "<", ">") + 1
		}
		name, first := -1, -1
		for ; i < hi; i++ {
			t := toks[i]
			if isAttrStart(toks, i) {
				i = skipGroup(toks, i, "[", "]")
				continue
			}
			if t.text == "=" || t.text == ";" || t.text == "{" || t.text == "operator" {
				name = -1
				break
			}
			if first < 0 {
				first = i
			}
			if t.kind == tkIdent {
				name = i
				if i+1 < hi && toks[i+1].text == "<" {
					i = skipGroup(toks, i+1, "<", ">")
				}
				continue
			}
			if t.text == "(" {
				break
			}
		}
		// A name with nothing before it is a macro invocation, not a function.
		if name < 0 || name == first || i >= hi || toks[i].text != "(" || elabWords[toks[name].text] {
			continue
		}
		fi := funcInfo{name: toks[name].text, nameTok: name, open: i, close: skipGroup(toks, i, "(", ")"),
			bodyLo: -1, bodyHi: -1}
		for _, p := range splitTop(toks, fi.open+1, fi.close) {
			hi := p[1]
			for j := p[0]; j < p[1]; j++ {
				if toks[j].text == "=" {
					hi = j
					break
				}
			}
			as, ptr, star := "", false, false
			for j := p[0]; j < hi; j++ {
				if isAttrStart(toks, j) {
					j = skipGroup(toks, j, "[", "]")
					continue
				}
				if addrSpaces[toks[j].text] {
					as = toks[j].text
				}
				if toks[j].text == "*" || toks[j].text == "&" || toks[j].text == "&&" {
					ptr = true
					star = star || toks[j].text == "*"
				}
			}
			fi.paramAS = append(fi.paramAS, as)
			fi.paramPtr = append(fi.paramPtr, ptr)
			fi.paramStar = append(fi.paramStar, star)
		}
		for j := fi.close + 1; j < hi; j++ {
			if toks[j].text == ";" {
				break
			}
			if toks[j].text == "{" {
				fi.bodyLo, fi.bodyHi = j, skipGroup(toks, j, "{", "}")
				break
			}
		}
		out = append(out, fi)
	}
	return out
}

// checkAddressSpaces: every pointer or reference names its address space
// (parameters of namespace-scope functions, declarations at the start of a
// statement), as Metal requires.
func checkAddressSpaces(f *srcFile, off []bool) error {
	toks := f.toks
	const why = "type must have explicit address space qualifier (Metal): write device, constant, threadgroup or thread before the type"
	kind := func(s string) string {
		if s == "*" {
			return "pointer"
		}
		return "reference"
	}
	for _, fn := range functions(f) {
		if off[fn.open] {
			continue
		}
		for pi, p := range splitTop(toks, fn.open+1, fn.close) {
			if !fn.paramPtr[pi] || fn.paramAS[pi] != "" {
				continue
			}
			star, _, auto, ok := declSpecs(toks, skipAttrs(toks, p[0]), p[1])
			if !ok || auto {
				continue
			}
			name, _, _ := declName(toks, star, p[1])
			return f.errorf(toks[star], "parameter '%s' of '%s': %s %s", name, fn.name, kind(toks[star].text), why)
		}
	}
	for i := range toks {
		if off[i] || toks[i].kind != tkIdent || notTypeStart[toks[i].text] || !stmtStart(toks, i) {
			continue
		}
		star, as, auto, ok := declSpecs(toks, i, len(toks))
		if !ok || auto || as != "" {
			continue
		}
		name, next, ok := declName(toks, star, len(toks))
		if !ok || next >= len(toks) {
			continue
		}
		switch toks[next].text {
		case "=", ";", ",", "[", ":":
			return f.errorf(toks[star], "'%s': %s %s", name, kind(toks[star].text), why)
		}
	}
	return nil
}

func skipAttrs(toks []token, j int) int {
	for isAttrStart(toks, j) {
		j = skipGroup(toks, j, "[", "]") + 1
	}
	return j
}

// checkRecursion rejects a function that calls itself by name (direct
// recursion; Metal has no recursion). Overloaded names, and overloads of
// metal:: functions (a max() calling metal::max), are not checked.
func checkRecursion(f *srcFile, off []bool) error {
	toks := f.toks
	fns := functions(f)
	defs := map[string]int{}
	for _, fn := range fns {
		if fn.bodyLo >= 0 {
			defs[fn.name]++
		}
	}
	for _, fn := range fns {
		if fn.bodyLo < 0 || defs[fn.name] != 1 || off[fn.bodyLo] || metalLibraryName(fn.name) {
			continue
		}
		for j := fn.bodyLo + 1; j < fn.bodyHi; j++ {
			if toks[j].text == fn.name && j+1 < len(toks) && toks[j+1].text == "(" {
				if p := toks[j-1].text; p == "." || p == "->" || p == "::" {
					continue
				}
				return f.errorf(toks[j], "'%s' calls itself: Metal does not support recursive function calls "+
					"(MSL spec, C++14 restrictions); rewrite it as a loop", fn.name)
			}
		}
	}
	return nil
}

// metalLibraryName: a function of Metal's standard library, which kernels
// overload for their own types (and call inside the overload).
func metalLibraryName(n string) bool {
	if mathCalls[n] || strings.HasPrefix(n, "simd_") || strings.HasPrefix(n, "quad_") {
		return true
	}
	switch n {
	case "dot", "length", "normalize", "distance", "cross", "as_type", "all", "any", "isnan", "isinf",
		"isfinite", "popcount", "clz", "ctz", "reverse_bits", "rotate", "abs_diff", "mad", "precise_divide":
		return true
	}
	return false
}

// kernelBodies returns the token ranges of f's kernel function bodies.
func kernelBodies(f *srcFile) [][2]int {
	var out [][2]int
	for _, r := range declarations(f.toks) {
		d, err := f.parseFunc(f.toks, r[0], r[1])
		if err != nil || d == nil || !d.kernel || !d.hasBody {
			continue
		}
		out = append(out, r)
	}
	return out
}

// asVar is a pointer, reference or threadgroup array with its address space.
type asVar struct {
	as   string
	line int
}

// checkAddressSpaceMixups rejects, in every function body of the
// translation unit, a pointer of one address space initialised or assigned
// from (or passed as an argument for a pointer parameter of) another
// (references are not followed: assigning through one copies a value): Metal has no
// conversion between address spaces. Only simple expressions are followed
// (p, p + n, &p[i]); the callee must be a function of the unit whose
// overloads agree on the parameter's address space.
func (t *tu) checkAddressSpaceMixups() error {
	type sig struct {
		as    []string
		clash map[int]bool
	}
	sigs := map[string]*sig{}
	all := map[*srcFile][]funcInfo{}
	for _, f := range t.order {
		all[f] = functions(f)
		for _, fn := range all[f] {
			s := sigs[fn.name]
			if s == nil {
				s = &sig{clash: map[int]bool{}}
				for i, a := range fn.paramAS {
					if !fn.paramStar[i] {
						a = ""
					}
					s.as = append(s.as, a)
				}
				sigs[fn.name] = s
			}
			for i, a := range fn.paramAS {
				if !fn.paramStar[i] {
					a = ""
				}
				if i >= len(s.as) || s.as[i] != a {
					s.clash[i] = true
				}
			}
		}
	}
	for _, f := range t.order {
		toks := f.toks
		off := metalInactive(toks)
		for _, fn := range all[f] {
			if fn.bodyLo < 0 || off[fn.bodyLo] {
				continue
			}
			vars := map[string]asVar{}
			for pi, p := range splitTop(toks, fn.open+1, fn.close) {
				if fn.paramStar[pi] && fn.paramAS[pi] != "" {
					if name, _, ok := declName(toks, paramStar(toks, p), p[1]); ok {
						vars[name] = asVar{fn.paramAS[pi], toks[p[0]].line}
					}
				}
			}
			// root returns the variable an expression starting at toks[j] points into.
			root := func(j int) (string, asVar, bool) {
				for j < fn.bodyHi && toks[j].text == "(" {
					j++
				}
				if j+1 >= fn.bodyHi {
					return "", asVar{}, false
				}
				if toks[j].text == "&" && toks[j+1].kind == tkIdent && j+2 < fn.bodyHi && toks[j+2].text == "[" {
					v, ok := vars[toks[j+1].text]
					return toks[j+1].text, v, ok
				}
				if toks[j].kind == tkIdent {
					switch toks[j+1].text {
					case "+", "-", ";", ",", ")":
						v, ok := vars[toks[j].text]
						return toks[j].text, v, ok
					}
				}
				return "", asVar{}, false
			}
			mismatch := func(at token, want, name string, v asVar, what string) error {
				return f.errorf(at, "%s: '%s' points to %s memory (line %d), not %s: Metal has no conversion "+
					"between address spaces (copy the data, or use one address space for both)", what, name, v.as,
					v.line, want)
			}
			for j := fn.bodyLo + 1; j < fn.bodyHi; j++ {
				tk := toks[j]
				if off[j] {
					continue
				}
				// threadgroup T name[N]: a threadgroup array.
				if tk.text == "threadgroup" && stmtStart(toks, j) {
					if end, ok := typeEnd(toks, j+1); ok && end+1 < fn.bodyHi && toks[end].kind == tkIdent &&
						toks[end+1].text == "[" {
						vars[toks[end].text] = asVar{"threadgroup", tk.line}
					}
				}
				// AS T* name = expr;
				if tk.kind == tkIdent && stmtStart(toks, j) && !notTypeStart[tk.text] {
					star, as, auto, ok := declSpecs(toks, j, fn.bodyHi)
					if ok && !auto && as != "" && toks[star].text == "*" {
						if name, next, ok := declName(toks, star, fn.bodyHi); ok {
							if next < fn.bodyHi && toks[next].text == "=" {
								if rn, v, ok := root(next + 1); ok && v.as != as {
									return mismatch(toks[next], as, rn, v, fmt.Sprintf("cannot initialise %s "+
										"pointer '%s'", as, name))
								}
							}
							vars[name] = asVar{as, tk.line}
						}
					}
					// name = expr;
					if v, ok := vars[tk.text]; ok && j+1 < fn.bodyHi && toks[j+1].text == "=" {
						if rn, rv, ok := root(j + 2); ok && rv.as != v.as {
							return mismatch(toks[j+1], v.as, rn, rv, fmt.Sprintf("cannot assign to %s pointer "+
								"'%s'", v.as, tk.text))
						}
					}
				}
				// f(args) / f<...>(args) for a function of this unit.
				s := sigs[tk.text]
				if s == nil || tk.kind != tkIdent || toks[j-1].text == "." || toks[j-1].text == "->" {
					continue
				}
				k := j + 1
				if k < fn.bodyHi && toks[k].text == "<" {
					k = skipGroup(toks, k, "<", ">") + 1
				}
				if k >= fn.bodyHi || toks[k].text != "(" {
					continue
				}
				close := skipGroup(toks, k, "(", ")")
				for ai, a := range splitTop(toks, k+1, close) {
					if ai >= len(s.as) || s.clash[ai] || s.as[ai] == "" {
						continue
					}
					if rn, v, ok := root(a[0]); ok && v.as != s.as[ai] && a[1] == rootEnd(toks, a[0]) {
						return mismatch(toks[a[0]], s.as[ai], rn, v, fmt.Sprintf("argument %d of '%s' wants a %s "+
							"pointer", ai+1, tk.text, s.as[ai]))
					}
				}
			}
		}
	}
	return nil
}

// paramStar returns the index of the first *, & or && of parameter p.
func paramStar(toks []token, p [2]int) int {
	for j := p[0]; j < p[1]; j++ {
		if isAttrStart(toks, j) {
			j = skipGroup(toks, j, "[", "]")
			continue
		}
		if toks[j].text == "*" || toks[j].text == "&" || toks[j].text == "&&" {
			return j
		}
	}
	return p[1]
}

// rootEnd returns where a simple pointer expression from toks[j] ends (the
// argument must be nothing more: p, p + n, &p[i]).
func rootEnd(toks []token, j int) int {
	depth := 0
	for k := j; k < len(toks); k++ {
		switch toks[k].text {
		case "(", "[", "{":
			depth++
		case ")", "]", "}":
			if depth == 0 {
				return k
			}
			depth--
		case ",", ";":
			if depth == 0 {
				return k
			}
		}
	}
	return len(toks)
}

// rewriteConstant turns the `constant` address space into `const`, so a
// write to constant data fails to compile at its .metal line as it does in
// Metal. Where the specifiers already say const, `constant` is blanked
// (C++ rejects a duplicate const).
func rewriteConstant(f *srcFile) {
	toks := f.toks
	for i, t := range toks {
		if t.kind != tkIdent || t.text != "constant" || i > 0 && toks[i-1].text == "[" {
			continue
		}
		dup := false
		for j := i - 1; j >= 0 && toks[j].kind == tkIdent; j-- {
			if toks[j].text == "const" {
				dup = true
			}
			if toks[j].text != "static" && toks[j].text != "constexpr" && toks[j].text != "inline" && !cvWords[toks[j].text] {
				break
			}
		}
		end, _ := typeEnd(toks, i+1)
		for j := i + 1; j < end; j++ {
			if toks[j].text == "const" {
				dup = true
			}
		}
		if dup {
			f.blank(t.off, t.end)
		} else {
			f.edits = append(f.edits, edit{t.off, t.end, "const   "})
		}
	}
}

package npy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// npyHeaderInfo is the validated content of a .npy header dict.
type npyHeaderInfo struct {
	dtype DType
	shape []int
}

// parseNPYHeader parses and validates the header dict, e.g.
// "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }".
func parseNPYHeader(header string) (npyHeaderInfo, error) {
	var info npyHeaderInfo
	p := &pyParser{s: header}
	p.skipSpace()
	v, err := p.value()
	if err == nil {
		p.skipSpace()
		if p.i < len(p.s) {
			err = fmt.Errorf("unexpected %q after the dict", p.s[p.i:min(p.i+10, len(p.s))])
		}
	}
	if err != nil {
		return info, fmt.Errorf("malformed header %s: %v", quoteHeader(header), err)
	}
	d, ok := v.(pyDict)
	if !ok {
		return info, fmt.Errorf("malformed header %s: not a dict", quoteHeader(header))
	}
	for _, k := range []string{"descr", "fortran_order", "shape"} {
		if _, ok := d[k]; !ok {
			return info, fmt.Errorf("malformed header %s: no '%s' key", quoteHeader(header), k)
		}
	}
	if len(d) != 3 {
		return info, fmt.Errorf("malformed header %s: keys must be exactly 'descr', 'fortran_order', 'shape'", quoteHeader(header))
	}

	tuple, ok := d["shape"].(pyTuple)
	if !ok {
		return info, fmt.Errorf("malformed header: shape %s is not a tuple", pyRepr(d["shape"]))
	}
	info.shape = make([]int, len(tuple))
	for i, e := range tuple {
		n, ok := e.(int)
		if !ok || n < 0 {
			return info, fmt.Errorf("malformed header: shape %s must hold non-negative integers", pyRepr(d["shape"]))
		}
		info.shape[i] = n
	}

	descr, ok := d["descr"].(string)
	if !ok {
		return info, fmt.Errorf("structured or sub-array dtype %s is not supported; save a plain float32 array", pyRepr(d["descr"]))
	}
	if info.dtype, err = parseDescr(descr); err != nil {
		return info, err
	}

	fortran, ok := d["fortran_order"].(bool)
	if !ok {
		return info, fmt.Errorf("malformed header: fortran_order %s is not True or False", pyRepr(d["fortran_order"]))
	}
	if fortran {
		// Identical to C order when at most one axis is longer than 1.
		long := 0
		for _, n := range info.shape {
			if n > 1 {
				long++
			}
		}
		if long > 1 {
			return info, errors.New("data is in Fortran order; save a C-contiguous array (np.ascontiguousarray(x))")
		}
	}
	return info, nil
}

// parseDescr maps a numpy type string to a DType, explaining rejections.
func parseDescr(descr string) (DType, error) {
	order, code := byte('='), descr
	if code != "" && strings.IndexByte("<>=|!", code[0]) >= 0 {
		order, code = code[0], code[1:]
	}
	bigEndian := order == '>' || order == '!' || (order == '=' && !nativeLittleEndian)
	switch code {
	case "f4", "f2":
		want := "<" + code
		switch {
		case bigEndian:
			return "", fmt.Errorf("big-endian data (descr '%s'); save with dtype '%s'", descr, want)
		case order == '|':
			return "", fmt.Errorf("descr '%s' is invalid for floats; save with dtype '%s'", descr, want)
		case code == "f4":
			return Float32, nil
		default:
			return Float16, nil
		}
	case "f8":
		return "", errors.New("float64 is not supported; convert with x.astype(np.float32)")
	case "O":
		return "", errors.New("object arrays are not supported; save a numeric float32 array")
	}
	if code != "" {
		kind := ""
		switch code[0] {
		case 'i', 'u':
			kind = "integer"
		case 'b':
			kind = "boolean"
		case 'f':
			kind = code[1:] + "-byte float"
		case 'c':
			kind = "complex"
		}
		if kind != "" {
			return "", fmt.Errorf("%s data (descr '%s') is not supported; convert with x.astype(np.float32)", kind, descr)
		}
	}
	return "", fmt.Errorf("dtype descr '%s' is not supported; orchard reads float32 ('<f4') and float16 ('<f2')", descr)
}

func quoteHeader(h string) string {
	h = strings.TrimRight(h, " \n")
	if len(h) > 120 {
		h = h[:120] + "..."
	}
	return strconv.Quote(h)
}

// A minimal parser for the Python literals numpy writes into headers:
// dicts, tuples, lists, strings, integers (with Python 2's optional L
// suffix), True, False and None.
type (
	pyDict  map[string]any
	pyTuple []any
	pyList  []any
)

type pyParser struct {
	s string
	i int
}

func (p *pyParser) skipSpace() {
	for p.i < len(p.s) && strings.IndexByte(" \t\r\n", p.s[p.i]) >= 0 {
		p.i++
	}
}

func (p *pyParser) value() (any, error) {
	if p.i >= len(p.s) {
		return nil, errors.New("unexpected end")
	}
	switch c := p.s[p.i]; {
	case c == '{':
		p.i++
		d := pyDict{}
		err := p.sequence('}', func() error {
			k, err := p.value()
			if err != nil {
				return err
			}
			key, ok := k.(string)
			if !ok {
				return fmt.Errorf("dict key %s is not a string", pyRepr(k))
			}
			p.skipSpace()
			if p.i >= len(p.s) || p.s[p.i] != ':' {
				return fmt.Errorf("expected ':' after key '%s'", key)
			}
			p.i++
			p.skipSpace()
			v, err := p.value()
			if err != nil {
				return err
			}
			if _, dup := d[key]; dup {
				return fmt.Errorf("duplicate key '%s'", key)
			}
			d[key] = v
			return nil
		})
		return d, err
	case c == '(' || c == '[':
		p.i++
		var items []any
		closer := byte(')')
		if c == '[' {
			closer = ']'
		}
		err := p.sequence(closer, func() error {
			v, err := p.value()
			items = append(items, v)
			return err
		})
		if c == '[' {
			return pyList(items), err
		}
		return pyTuple(items), err
	case c == '\'' || c == '"':
		return p.str()
	case c == '-' || c == '+' || (c >= '0' && c <= '9'):
		start := p.i
		p.i++
		for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
			p.i++
		}
		n, err := strconv.Atoi(p.s[start:p.i])
		if err != nil {
			return nil, fmt.Errorf("bad integer %q", p.s[start:p.i])
		}
		if p.i < len(p.s) && (p.s[p.i] == 'L' || p.s[p.i] == 'l') {
			p.i++
		}
		return n, nil
	}
	for _, w := range []struct {
		word string
		v    any
	}{{"True", true}, {"False", false}, {"None", nil}} {
		end := p.i + len(w.word)
		if strings.HasPrefix(p.s[p.i:], w.word) && (end == len(p.s) || !isIdentByte(p.s[end])) {
			p.i = end
			return w.v, nil
		}
	}
	return nil, fmt.Errorf("unexpected %q", p.s[p.i:min(p.i+10, len(p.s))])
}

func isIdentByte(c byte) bool {
	return c == '_' || (c >= '0' && c <= '9') || (c|0x20 >= 'a' && c|0x20 <= 'z')
}

// sequence parses comma-separated items up to closer; a trailing comma is
// allowed.
func (p *pyParser) sequence(closer byte, item func() error) error {
	for {
		p.skipSpace()
		if p.i < len(p.s) && p.s[p.i] == closer {
			p.i++
			return nil
		}
		if err := item(); err != nil {
			return err
		}
		p.skipSpace()
		if p.i >= len(p.s) {
			return fmt.Errorf("missing '%c'", closer)
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case closer:
		default:
			return fmt.Errorf("expected ',' or '%c', found %q", closer, p.s[p.i])
		}
	}
}

func (p *pyParser) str() (string, error) {
	q := p.s[p.i]
	p.i++
	var sb strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch c {
		case q:
			return sb.String(), nil
		case '\\':
			if p.i >= len(p.s) {
				return "", errors.New("unterminated string")
			}
			sb.WriteByte(p.s[p.i])
			p.i++
		default:
			sb.WriteByte(c)
		}
	}
	return "", errors.New("unterminated string")
}

// pyRepr renders a parsed value back in Python syntax for error messages.
func pyRepr(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case bool:
		if v {
			return "True"
		}
		return "False"
	case int:
		return strconv.Itoa(v)
	case string:
		return "'" + v + "'"
	case pyTuple:
		s := make([]string, len(v))
		for i, e := range v {
			s[i] = pyRepr(e)
		}
		if len(s) == 1 {
			return "(" + s[0] + ",)"
		}
		return "(" + strings.Join(s, ", ") + ")"
	case pyList:
		s := make([]string, len(v))
		for i, e := range v {
			s[i] = pyRepr(e)
		}
		return "[" + strings.Join(s, ", ") + "]"
	case pyDict:
		return "{...}"
	}
	return fmt.Sprint(v)
}

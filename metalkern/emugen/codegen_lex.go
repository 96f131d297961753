package emugen

// The C++ tokenizer the emu pre-pass and the signature parser share. It
// keeps byte offsets and lines (edits are made on the original text) and
// turns a whole preprocessor line into one token.

import (
	"bytes"
	"strings"
)

type tokKind uint8

const (
	tkIdent tokKind = iota
	tkNumber
	tkString
	tkChar
	tkPunct
	tkDirective // a whole preprocessor line (continuations included)
)

type token struct {
	kind     tokKind
	text     string
	off, end int // byte range in the file
	line     int // 1-based line of the first byte
}

// lex splits C++ source into tokens; comments and whitespace are dropped.
func lex(src []byte) []token {
	var toks []token
	line, i, n := 1, 0, len(src)
	lineStart := true // only whitespace since the last newline
	for i < n {
		c := src[i]
		switch {
		case c == '\n':
			line++
			i++
			lineStart = true
			continue
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			i++
			continue
		case c == '/' && i+1 < n && src[i+1] == '/':
			for i < n && src[i] != '\n' {
				i++
			}
			continue
		case c == '/' && i+1 < n && src[i+1] == '*':
			j := bytes.Index(src[i+2:], []byte("*/"))
			end := n
			if j >= 0 {
				end = i + 2 + j + 2
			}
			line += bytes.Count(src[i:end], []byte("\n"))
			i = end
			continue
		}
		start, startLine := i, line
		kind := tkPunct
		switch {
		case c == '#' && lineStart:
			kind = tkDirective
			for i < n && src[i] != '\n' {
				if src[i] == '\\' && i+1 < n && src[i+1] == '\n' {
					i += 2
					line++
					continue
				}
				i++
			}
		case isIdentStart(c):
			kind = tkIdent
			for i < n && isIdentChar(src[i]) {
				i++
			}
		case c >= '0' && c <= '9' || c == '.' && i+1 < n && src[i+1] >= '0' && src[i+1] <= '9':
			kind = tkNumber
			for i < n && (isIdentChar(src[i]) || src[i] == '.' || src[i] == '\'' ||
				(src[i] == '+' || src[i] == '-') && strings.ContainsRune("eEpP", rune(src[i-1]))) {
				i++
			}
		case c == '"' || c == '\'':
			kind = tkString
			if c == '\'' {
				kind = tkChar
			}
			i++
			for i < n && src[i] != c && src[i] != '\n' {
				if src[i] == '\\' && i+1 < n { // an escape; a backslash at the very end is just itself
					i++
				}
				i++
			}
			if i < n && src[i] == c {
				i++
			}
		default:
			i++
			if i < n {
				two := string(src[i-1 : i+1])
				switch two {
				case "::", "->", "&&", "||", "==", "!=", "<=", ">=", "+=", "-=", "*=", "/=", "++", "--":
					i++
				}
			}
		}
		toks = append(toks, token{kind: kind, text: string(src[start:i]), off: start, end: i, line: startLine})
		lineStart = false
	}
	return toks
}

func isIdentStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isIdentChar(c byte) bool  { return isIdentStart(c) || c >= '0' && c <= '9' }

package authfile

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// A small strict JSON parser instead of encoding/json, because:
//   - string values stay in the input until decoded straight into a []byte
//     that the caller owns and can wipe (encoding/json makes Go strings,
//     which cannot be wiped);
//   - its error messages never quote input bytes (encoding/json's say
//     "invalid character 'x'", which can be a byte of a secret);
//   - it rejects duplicate keys, lone UTF-16 surrogates and invalid UTF-8,
//     which encoding/json silently accepts or rewrites;
//   - it keeps object members in file order with their raw spans, so unknown
//     fields can be carried over verbatim in Entry.Extra.

// maxDepth bounds nesting; real credential files are 3 or 4 levels deep.
const maxDepth = 64

type jsonKind uint8

const (
	jNull jsonKind = iota
	jBool
	jNumber
	jString
	jObject
	jArray
)

func (k jsonKind) String() string {
	switch k {
	case jNull:
		return "null"
	case jBool:
		return "boolean"
	case jNumber:
		return "number"
	case jString:
		return "string"
	case jObject:
		return "object"
	case jArray:
		return "array"
	}
	return "unknown"
}

// jsonValue is a parsed value as a span of the input. Only objects keep
// their children; array elements are validated and dropped.
type jsonValue struct {
	kind       jsonKind
	start, end int  // raw span in the input
	escaped    bool // string: contains backslash escapes
	members    []jsonMember
}

type jsonMember struct {
	key              string // decoded; keys are names, not secrets
	keyStart, keyEnd int    // raw span of the quoted key
	val              jsonValue
}

// get returns the member named key of an object.
func (v jsonValue) get(key string) (jsonValue, bool) {
	for _, m := range v.members {
		if m.key == key {
			return m.val, true
		}
	}
	return jsonValue{}, false
}

// errClass tells the fuzz test which rejections are stricter than
// encoding/json by design.
type errClass uint8

const (
	classSyntax    errClass = iota
	classDepth              // nested deeper than maxDepth
	classDuplicate          // duplicate object key
	classSurrogate          // \u escape with a lone UTF-16 surrogate
	classUTF8               // invalid UTF-8 in the input
)

// syntaxError is a JSON-level error at a byte offset. msg never contains
// input bytes other than (sanitised) object keys.
type syntaxError struct {
	off   int
	class errClass
	msg   string
}

func (e *syntaxError) Error() string { return e.msg }

type parser struct {
	data []byte
	pos  int
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// parseJSON parses exactly one JSON value (optionally preceded by a UTF-8
// byte order mark, which some Windows editors add) followed by whitespace.
func parseJSON(data []byte) (jsonValue, error) {
	if off := invalidUTF8(data); off >= 0 {
		return jsonValue{}, &syntaxError{off, classUTF8, "invalid UTF-8"}
	}
	p := parser{data: data}
	if len(data) >= 3 && data[0] == utf8BOM[0] && data[1] == utf8BOM[1] && data[2] == utf8BOM[2] {
		p.pos = 3
	}
	p.skipWS()
	if p.pos == len(data) {
		return jsonValue{}, &syntaxError{p.pos, classSyntax, "no JSON value (empty input)"}
	}
	v, err := p.value(0)
	if err != nil {
		return jsonValue{}, err
	}
	p.skipWS()
	if p.pos != len(data) {
		return jsonValue{}, &syntaxError{p.pos, classSyntax, "unexpected data after the JSON value"}
	}
	return v, nil
}

// invalidUTF8 returns the offset of the first invalid UTF-8 byte, or -1.
func invalidUTF8(b []byte) int {
	if utf8.Valid(b) {
		return -1
	}
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return -1
}

// fail reports msg at the current position, or "unexpected end of input"
// when the input ran out, which is the more useful message for truncation.
func (p *parser) fail(msg string) error {
	if p.pos >= len(p.data) {
		msg = "unexpected end of input"
	}
	return &syntaxError{p.pos, classSyntax, msg}
}

func (p *parser) skipWS() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) peek() byte {
	if p.pos < len(p.data) {
		return p.data[p.pos]
	}
	return 0
}

func (p *parser) value(depth int) (jsonValue, error) {
	p.skipWS()
	switch c := p.peek(); {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		start := p.pos
		esc, err := p.str()
		return jsonValue{kind: jString, start: start, end: p.pos, escaped: esc}, err
	case c == '-' || isDigit(c):
		return p.number()
	case c == 't':
		return p.literal("true", jBool)
	case c == 'f':
		return p.literal("false", jBool)
	case c == 'n':
		return p.literal("null", jNull)
	}
	return jsonValue{}, p.fail("unexpected character, want a JSON value")
}

func (p *parser) object(depth int) (jsonValue, error) {
	if depth > maxDepth {
		return jsonValue{}, &syntaxError{p.pos, classDepth, "nested too deeply (more than " + strconv.Itoa(maxDepth) + " levels)"}
	}
	v := jsonValue{kind: jObject, start: p.pos}
	p.pos++ // '{'
	p.skipWS()
	if p.peek() == '}' {
		p.pos++
		v.end = p.pos
		return v, nil
	}
	var seen map[string]struct{} // only for large objects; a scan is cheaper below that
	for {
		p.skipWS()
		if p.peek() != '"' {
			return jsonValue{}, p.fail("want a string object key")
		}
		ks := p.pos
		esc, err := p.str()
		if err != nil {
			return jsonValue{}, err
		}
		ke := p.pos
		key := string(decodeString(p.data[ks:ke], esc))
		dup := false
		if seen != nil {
			_, dup = seen[key]
			seen[key] = struct{}{}
		} else {
			for _, m := range v.members {
				if m.key == key {
					dup = true
					break
				}
			}
			if len(v.members) >= 16 {
				seen = make(map[string]struct{}, 2*len(v.members))
				for _, m := range v.members {
					seen[m.key] = struct{}{}
				}
				seen[key] = struct{}{}
			}
		}
		if dup {
			return jsonValue{}, &syntaxError{ks, classDuplicate, "duplicate object key " + quotePath(key)}
		}
		p.skipWS()
		if p.peek() != ':' {
			return jsonValue{}, p.fail("want ':' after object key")
		}
		p.pos++
		val, err := p.value(depth)
		if err != nil {
			return jsonValue{}, err
		}
		v.members = append(v.members, jsonMember{key: key, keyStart: ks, keyEnd: ke, val: val})
		p.skipWS()
		switch p.peek() {
		case ',':
			p.pos++
		case '}':
			p.pos++
			v.end = p.pos
			return v, nil
		default:
			return jsonValue{}, p.fail("want ',' or '}' after object member")
		}
	}
}

func (p *parser) array(depth int) (jsonValue, error) {
	if depth > maxDepth {
		return jsonValue{}, &syntaxError{p.pos, classDepth, "nested too deeply (more than " + strconv.Itoa(maxDepth) + " levels)"}
	}
	v := jsonValue{kind: jArray, start: p.pos}
	p.pos++ // '['
	p.skipWS()
	if p.peek() == ']' {
		p.pos++
		v.end = p.pos
		return v, nil
	}
	for {
		if _, err := p.value(depth); err != nil {
			return jsonValue{}, err
		}
		p.skipWS()
		switch p.peek() {
		case ',':
			p.pos++
		case ']':
			p.pos++
			v.end = p.pos
			return v, nil
		default:
			return jsonValue{}, p.fail("want ',' or ']' after array element")
		}
	}
}

// str scans a string starting at the opening quote and reports whether it
// contains escapes. Positions in errors point at the string or escape, never
// at a character inside it.
func (p *parser) str() (escaped bool, err error) {
	start := p.pos
	d := p.data
	for i := p.pos + 1; ; {
		if i >= len(d) {
			return false, &syntaxError{start, classSyntax, "unterminated string"}
		}
		switch c := d[i]; {
		case c == '"':
			p.pos = i + 1
			return escaped, nil
		case c == '\\':
			escaped = true
			if i+1 >= len(d) {
				return false, &syntaxError{start, classSyntax, "unterminated string"}
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				r, ok := hex4(d, i+2)
				if !ok {
					return false, &syntaxError{i, classSyntax, "invalid \\u escape in string"}
				}
				switch {
				case utf16.IsSurrogate(r) && r < 0xDC00:
					if i+7 < len(d) && d[i+6] == '\\' && d[i+7] == 'u' {
						if r2, ok := hex4(d, i+8); ok && r2 >= 0xDC00 && r2 < 0xE000 {
							i += 12
							continue
						}
					}
					return false, &syntaxError{i, classSurrogate, "unpaired UTF-16 surrogate in \\u escape"}
				case utf16.IsSurrogate(r):
					return false, &syntaxError{i, classSurrogate, "unpaired UTF-16 surrogate in \\u escape"}
				}
				i += 6
			default:
				return false, &syntaxError{i, classSyntax, "invalid escape in string"}
			}
		case c < 0x20:
			return false, &syntaxError{i, classSyntax, "control character in string (must be escaped)"}
		default:
			i++
		}
	}
}

func hex4(d []byte, i int) (rune, bool) {
	if i+4 > len(d) {
		return 0, false
	}
	var r rune
	for _, c := range d[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func (p *parser) number() (jsonValue, error) {
	d := p.data
	start := p.pos
	i := p.pos
	digits := func() bool {
		if i >= len(d) || !isDigit(d[i]) {
			return false
		}
		for i < len(d) && isDigit(d[i]) {
			i++
		}
		return true
	}
	if d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case !digits():
		return jsonValue{}, &syntaxError{start, classSyntax, "invalid number"}
	}
	if i < len(d) && d[i] == '.' {
		i++
		if !digits() {
			return jsonValue{}, &syntaxError{start, classSyntax, "invalid number"}
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if !digits() {
			return jsonValue{}, &syntaxError{start, classSyntax, "invalid number"}
		}
	}
	p.pos = i
	return jsonValue{kind: jNumber, start: start, end: i}, nil
}

func (p *parser) literal(lit string, k jsonKind) (jsonValue, error) {
	start := p.pos
	if len(p.data)-p.pos < len(lit) || string(p.data[p.pos:p.pos+len(lit)]) != lit {
		return jsonValue{}, p.fail("unexpected character, want a JSON value")
	}
	p.pos += len(lit)
	return jsonValue{kind: k, start: start, end: p.pos}, nil
}

// decodeString decodes a validated raw string (with its quotes) into a new
// slice. The slice is allocated at its final capacity (decoded text is never
// longer than its raw form) so no partial copies of secrets are left behind
// by reallocation.
func decodeString(raw []byte, escaped bool) []byte {
	s := raw[1 : len(raw)-1]
	out := make([]byte, 0, len(s))
	if !escaped {
		return append(out, s...)
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		switch s[i+1] {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, _ := hex4(s, i+2)
			i += 6
			if utf16.IsSurrogate(r) {
				r2, _ := hex4(s, i+2)
				r = utf16.DecodeRune(r, r2)
				i += 6
			}
			out = utf8.AppendRune(out, r)
			continue
		default: // '"', '\\', '/'
			out = append(out, s[i+1])
		}
		i += 2
	}
	return out
}

// lineCol converts a byte offset to a 1-based line and column (in runes).
func lineCol(data []byte, off int) (line, col int) {
	if off > len(data) {
		off = len(data)
	}
	line, lineStart := 1, 0
	for i, c := range data[:off] {
		if c == '\n' {
			line++
			lineStart = i + 1
		}
	}
	return line, utf8.RuneCount(data[lineStart:off]) + 1
}

// jsonWriter builds JSON in two passes: one counting bytes, one writing into
// a buffer of exactly that size, so secrets are never left behind in a
// buffer discarded by append's growth.
type jsonWriter struct {
	counting bool
	n        int
	buf      []byte
}

func buildJSON(f func(w *jsonWriter)) []byte {
	c := jsonWriter{counting: true}
	f(&c)
	w := jsonWriter{buf: make([]byte, 0, c.n)}
	f(&w)
	return w.buf
}

func (w *jsonWriter) raw(s string) {
	if w.counting {
		w.n += len(s)
		return
	}
	w.buf = append(w.buf, s...)
}

// str writes b as a JSON string. b must be valid UTF-8.
func (w *jsonWriter) str(b []byte) {
	const hex = "0123456789abcdef"
	if w.counting {
		w.n += 2
		for _, c := range b {
			switch {
			case c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t':
				w.n += 2
			case c < 0x20:
				w.n += 6
			default:
				w.n++
			}
		}
		return
	}
	w.buf = append(w.buf, '"')
	for _, c := range b {
		switch c {
		case '"', '\\':
			w.buf = append(w.buf, '\\', c)
		case '\b':
			w.buf = append(w.buf, '\\', 'b')
		case '\f':
			w.buf = append(w.buf, '\\', 'f')
		case '\n':
			w.buf = append(w.buf, '\\', 'n')
		case '\r':
			w.buf = append(w.buf, '\\', 'r')
		case '\t':
			w.buf = append(w.buf, '\\', 't')
		default:
			if c < 0x20 {
				w.buf = append(w.buf, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			} else {
				w.buf = append(w.buf, c)
			}
		}
	}
	w.buf = append(w.buf, '"')
}

// compact writes validated raw JSON without insignificant whitespace.
func (w *jsonWriter) compact(b []byte) {
	inStr, esc := false, false
	for _, c := range b {
		switch {
		case inStr:
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			continue
		case c == '"':
			inStr = true
		}
		if w.counting {
			w.n++
		} else {
			w.buf = append(w.buf, c)
		}
	}
}

// rawMember is one member of an Extra object: either a raw value copied
// from the input or a nested object made of further raw members.
type rawMember struct {
	key []byte // raw quoted key
	val []byte // raw JSON value; nil when sub is used
	sub []rawMember
}

func (w *jsonWriter) object(ms []rawMember) {
	w.raw("{")
	for i, m := range ms {
		if i > 0 {
			w.raw(",")
		}
		w.compact(m.key)
		w.raw(":")
		if m.val == nil {
			w.object(m.sub)
		} else {
			w.compact(m.val)
		}
	}
	w.raw("}")
}

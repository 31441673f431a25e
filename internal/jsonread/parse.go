package jsonread

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth bounds nesting; real credential files are 3 or 4 levels deep.
const MaxDepth = 64

// Kind is a JSON value's type.
type Kind uint8

const (
	Null Kind = iota
	Bool
	Number
	String
	Object
	Array
)

func (k Kind) String() string {
	switch k {
	case Null:
		return "null"
	case Bool:
		return "boolean"
	case Number:
		return "number"
	case String:
		return "string"
	case Object:
		return "object"
	case Array:
		return "array"
	}
	return "unknown"
}

// Value is a parsed value as a span of the input. Only objects keep
// their children; array elements are validated and dropped.
type Value struct {
	Kind       Kind
	Start, End int  // raw span in the input
	Escaped    bool // string: contains backslash escapes
	Members    []Member
}

// Member is one member of an object, in input order.
type Member struct {
	Key              string // decoded; keys are names, not secrets
	KeyStart, KeyEnd int    // raw span of the quoted key
	Val              Value
}

// Get returns the member named key of an object.
func (v Value) Get(key string) (Value, bool) {
	for _, m := range v.Members {
		if m.Key == key {
			return m.Val, true
		}
	}
	return Value{}, false
}

// errClass tells the fuzz test which rejections are stricter than
// encoding/json by design.
type errClass uint8

const (
	classSyntax    errClass = iota
	classDepth              // nested deeper than MaxDepth
	classDuplicate          // duplicate object key
	classSurrogate          // \u escape with a lone UTF-16 surrogate
	classUTF8               // invalid UTF-8 in the input
)

// SyntaxError is a JSON-level error at a byte offset. Msg never contains
// input bytes other than (sanitised) object keys.
type SyntaxError struct {
	Off   int // byte offset of the problem
	class errClass
	Msg   string
}

func (e *SyntaxError) Error() string { return e.Msg }

type parser struct {
	data []byte
	pos  int
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// Parse parses exactly one JSON value (optionally preceded by a UTF-8
// byte order mark, which some Windows editors add) followed by whitespace.
func Parse(data []byte) (Value, error) {
	if off := invalidUTF8(data); off >= 0 {
		return Value{}, &SyntaxError{off, classUTF8, "invalid UTF-8"}
	}
	p := parser{data: data}
	if len(data) >= 3 && data[0] == utf8BOM[0] && data[1] == utf8BOM[1] && data[2] == utf8BOM[2] {
		p.pos = 3
	}
	p.skipWS()
	if p.pos == len(data) {
		return Value{}, &SyntaxError{p.pos, classSyntax, "no JSON value (empty input)"}
	}
	v, err := p.value(0)
	if err != nil {
		return Value{}, err
	}
	p.skipWS()
	if p.pos != len(data) {
		return Value{}, &SyntaxError{p.pos, classSyntax, "unexpected data after the JSON value"}
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
	return &SyntaxError{p.pos, classSyntax, msg}
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

func (p *parser) value(depth int) (Value, error) {
	p.skipWS()
	switch c := p.peek(); {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		start := p.pos
		esc, err := p.str()
		return Value{Kind: String, Start: start, End: p.pos, Escaped: esc}, err
	case c == '-' || isDigit(c):
		return p.number()
	case c == 't':
		return p.literal("true", Bool)
	case c == 'f':
		return p.literal("false", Bool)
	case c == 'n':
		return p.literal("null", Null)
	}
	return Value{}, p.fail("unexpected character, want a JSON value")
}

func (p *parser) object(depth int) (Value, error) {
	if depth > MaxDepth {
		return Value{}, &SyntaxError{p.pos, classDepth, "nested too deeply (more than " + strconv.Itoa(MaxDepth) + " levels)"}
	}
	v := Value{Kind: Object, Start: p.pos}
	p.pos++ // '{'
	p.skipWS()
	if p.peek() == '}' {
		p.pos++
		v.End = p.pos
		return v, nil
	}
	var seen map[string]struct{} // only for large objects; a scan is cheaper below that
	for {
		p.skipWS()
		if p.peek() != '"' {
			return Value{}, p.fail("want a string object key")
		}
		ks := p.pos
		esc, err := p.str()
		if err != nil {
			return Value{}, err
		}
		ke := p.pos
		key := string(Unquote(p.data[ks:ke], esc))
		dup := false
		if seen != nil {
			_, dup = seen[key]
			seen[key] = struct{}{}
		} else {
			for _, m := range v.Members {
				if m.Key == key {
					dup = true
					break
				}
			}
			if len(v.Members) >= 16 {
				seen = make(map[string]struct{}, 2*len(v.Members))
				for _, m := range v.Members {
					seen[m.Key] = struct{}{}
				}
				seen[key] = struct{}{}
			}
		}
		if dup {
			return Value{}, &SyntaxError{ks, classDuplicate, "duplicate object key " + QuoteKey(key)}
		}
		p.skipWS()
		if p.peek() != ':' {
			return Value{}, p.fail("want ':' after object key")
		}
		p.pos++
		val, err := p.value(depth)
		if err != nil {
			return Value{}, err
		}
		v.Members = append(v.Members, Member{Key: key, KeyStart: ks, KeyEnd: ke, Val: val})
		p.skipWS()
		switch p.peek() {
		case ',':
			p.pos++
		case '}':
			p.pos++
			v.End = p.pos
			return v, nil
		default:
			return Value{}, p.fail("want ',' or '}' after object member")
		}
	}
}

func (p *parser) array(depth int) (Value, error) {
	if depth > MaxDepth {
		return Value{}, &SyntaxError{p.pos, classDepth, "nested too deeply (more than " + strconv.Itoa(MaxDepth) + " levels)"}
	}
	v := Value{Kind: Array, Start: p.pos}
	p.pos++ // '['
	p.skipWS()
	if p.peek() == ']' {
		p.pos++
		v.End = p.pos
		return v, nil
	}
	for {
		if _, err := p.value(depth); err != nil {
			return Value{}, err
		}
		p.skipWS()
		switch p.peek() {
		case ',':
			p.pos++
		case ']':
			p.pos++
			v.End = p.pos
			return v, nil
		default:
			return Value{}, p.fail("want ',' or ']' after array element")
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
			return false, &SyntaxError{start, classSyntax, "unterminated string"}
		}
		switch c := d[i]; {
		case c == '"':
			p.pos = i + 1
			return escaped, nil
		case c == '\\':
			escaped = true
			if i+1 >= len(d) {
				return false, &SyntaxError{start, classSyntax, "unterminated string"}
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				r, ok := hex4(d, i+2)
				if !ok {
					return false, &SyntaxError{i, classSyntax, "invalid \\u escape in string"}
				}
				switch {
				case utf16.IsSurrogate(r) && r < 0xDC00:
					if i+7 < len(d) && d[i+6] == '\\' && d[i+7] == 'u' {
						if r2, ok := hex4(d, i+8); ok && r2 >= 0xDC00 && r2 < 0xE000 {
							i += 12
							continue
						}
					}
					return false, &SyntaxError{i, classSurrogate, "unpaired UTF-16 surrogate in \\u escape"}
				case utf16.IsSurrogate(r):
					return false, &SyntaxError{i, classSurrogate, "unpaired UTF-16 surrogate in \\u escape"}
				}
				i += 6
			default:
				return false, &SyntaxError{i, classSyntax, "invalid escape in string"}
			}
		case c < 0x20:
			return false, &SyntaxError{i, classSyntax, "control character in string (must be escaped)"}
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

func (p *parser) number() (Value, error) {
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
		return Value{}, &SyntaxError{start, classSyntax, "invalid number"}
	}
	if i < len(d) && d[i] == '.' {
		i++
		if !digits() {
			return Value{}, &SyntaxError{start, classSyntax, "invalid number"}
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if !digits() {
			return Value{}, &SyntaxError{start, classSyntax, "invalid number"}
		}
	}
	p.pos = i
	return Value{Kind: Number, Start: start, End: i}, nil
}

func (p *parser) literal(lit string, k Kind) (Value, error) {
	start := p.pos
	if len(p.data)-p.pos < len(lit) || string(p.data[p.pos:p.pos+len(lit)]) != lit {
		return Value{}, p.fail("unexpected character, want a JSON value")
	}
	p.pos += len(lit)
	return Value{Kind: k, Start: start, End: p.pos}, nil
}

// Unquote decodes a validated raw string (with its quotes) into a new
// slice. The slice is allocated at its final capacity (decoded text is never
// longer than its raw form) so no partial copies of secrets are left behind
// by reallocation.
func Unquote(raw []byte, escaped bool) []byte {
	s := raw[1 : len(raw)-1]
	return unquote(make([]byte, 0, len(s)), s, escaped)
}

// UnquoteInPlace decodes a validated raw string (with its quotes) over
// its own bytes and returns the decoded text, a subslice of raw: a value
// read into locked memory stays there. The bytes of raw past the result
// are left as they were.
func UnquoteInPlace(raw []byte, escaped bool) []byte {
	// Each escape decodes to fewer bytes than it takes, so the write
	// position never passes the read position.
	return unquote(raw[1:1], raw[1:len(raw)-1], escaped)
}

// unquote appends the decoded string body s to out.
func unquote(out, s []byte, escaped bool) []byte {
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

// LineCol converts a byte offset to a 1-based line and column (in runes).
func LineCol(data []byte, off int) (line, col int) {
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

// SafeKey renders an object key for a JSON path in an error. Keys are
// names (provider ids, field names), but stay cautious: anything long or
// odd is replaced rather than echoed.
func SafeKey(key string) string {
	if key == "" {
		return "<empty key>"
	}
	if len(key) > 64 {
		return "<long key>"
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < 0x20 || c > 0x7E || c == '"' || c == '\\' {
			return "<key with special characters>"
		}
	}
	return key
}

// QuoteKey is SafeKey in double quotes.
func QuoteKey(key string) string { return `"` + SafeKey(key) + `"` }

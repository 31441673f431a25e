package authfile

import "github.com/llm-agent/llm-agent/internal/jsonread"

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
	if w.counting {
		w.n += jsonread.StringLen(b)
		return
	}
	w.buf = jsonread.AppendString(w.buf, b)
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

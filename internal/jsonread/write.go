package jsonread

// StringLen is the length of v written by AppendString, so that a caller
// can size a buffer exactly once: growth by append would leave partial
// copies of a secret behind.
func StringLen(v []byte) int {
	n := 2
	for _, c := range v {
		switch {
		case c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t':
			n += 2
		case c < 0x20:
			n += 6
		default:
			n++
		}
	}
	return n
}

// AppendString appends v as a JSON string, quotes included. v should be
// valid UTF-8; bytes are copied as they are.
func AppendString(b, v []byte) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for _, c := range v {
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			if c < 0x20 {
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			} else {
				b = append(b, c)
			}
		}
	}
	return append(b, '"')
}

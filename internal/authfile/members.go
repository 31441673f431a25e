package authfile

import (
	"errors"
	"strconv"
)

// Member is one top-level member of a JSON object read by Members.
type Member struct {
	Kind string // "string", "number", "boolean", "null", "object" or "array"
	// Value is a string's decoded value or a number's text, in a fresh
	// slice that the caller owns and should wipe; nil for other kinds.
	Value []byte
}

// Members parses data as one JSON object, with the strict rules of Parse
// (valid UTF-8, no duplicate keys, nesting at most 64 deep, nothing after
// the object), and returns those of its top-level members named in keys.
// Members not named are checked but not copied, so that a token response's
// id_token, say, is never decoded. Strings are decoded straight into the
// returned slices, never into Go strings. Errors are one line and never
// contain bytes of data other than (sanitised) object keys.
//
// It reads OAuth token endpoint responses (package oauth).
func Members(data []byte, keys ...string) (map[string]Member, error) {
	root, err := parseJSON(data)
	if err != nil {
		var se *syntaxError
		if errors.As(err, &se) {
			return nil, errors.New("invalid JSON at byte " + strconv.Itoa(se.off) + ": " + se.msg)
		}
		return nil, err
	}
	if root.kind != jObject {
		return nil, errors.New("want a JSON object, got " + root.kind.String())
	}
	out := make(map[string]Member, len(keys))
	for _, k := range keys {
		v, ok := root.get(k)
		if !ok {
			continue
		}
		m := Member{Kind: v.kind.String()}
		switch v.kind {
		case jString:
			m.Value = decodeString(data[v.start:v.end], v.escaped)
		case jNumber:
			m.Value = append([]byte(nil), data[v.start:v.end]...)
		}
		out[k] = m
	}
	return out, nil
}

// JWTExpiryMillis returns the exp claim of tok, a JWT, in milliseconds
// since the epoch, or 0 when tok is not a JWT or has no usable exp. Nothing
// is verified: the value only schedules a refresh.
func JWTExpiryMillis(tok []byte) int64 {
	ms, err := strconv.ParseInt(string(jwtExpiry(tok)), 10, 64)
	if err != nil {
		return 0
	}
	return ms
}

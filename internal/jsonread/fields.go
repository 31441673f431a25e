package jsonread

import (
	"bytes"
	"encoding/base64"
	"errors"
	"math"
	"strconv"
)

// Field is one top-level member of a JSON object read by Fields.
type Field struct {
	Kind Kind
	// Value is a string's decoded value or a number's text, in a fresh
	// slice that the caller owns and should wipe; nil for other kinds.
	Value []byte
}

// Fields parses data as one JSON object, with the strict rules of Parse,
// and returns those of its top-level members named in keys. Members not
// named are checked but not copied, so that a token response's id_token,
// say, is never decoded. Strings are decoded straight into the returned
// slices, never into Go strings. Errors are one line and never contain
// bytes of data other than (sanitised) object keys.
func Fields(data []byte, keys ...string) (map[string]Field, error) {
	root, err := Parse(data)
	if err != nil {
		var se *SyntaxError
		if errors.As(err, &se) {
			return nil, errors.New("invalid JSON at byte " + strconv.Itoa(se.Off) + ": " + se.Msg)
		}
		return nil, err
	}
	if root.Kind != Object {
		return nil, errors.New("want a JSON object, got " + root.Kind.String())
	}
	out := make(map[string]Field, len(keys))
	for _, k := range keys {
		v, ok := root.Get(k)
		if !ok {
			continue
		}
		f := Field{Kind: v.Kind}
		switch v.Kind {
		case String:
			f.Value = Unquote(data[v.Start:v.End], v.Escaped)
		case Number:
			f.Value = append([]byte(nil), data[v.Start:v.End]...)
		}
		out[k] = f
	}
	return out, nil
}

// JWTExpiry returns the exp claim of tok, a JWT, in milliseconds since the
// epoch, or 0 when tok is not a JWT or has no usable exp. Nothing is
// verified: the value only schedules a refresh.
func JWTExpiry(tok []byte) int64 {
	first := bytes.IndexByte(tok, '.')
	if first < 0 {
		return 0
	}
	rest := tok[first+1:]
	second := bytes.IndexByte(rest, '.')
	if second < 0 || bytes.IndexByte(rest[second+1:], '.') >= 0 {
		return 0
	}
	payload := bytes.TrimRight(rest[:second], "=")
	buf := make([]byte, base64.RawURLEncoding.DecodedLen(len(payload)))
	defer clear(buf) // claims are personal data
	n, err := base64.RawURLEncoding.Decode(buf, payload)
	if err != nil {
		// Not base64url; some issuers use the standard alphabet.
		if n, err = base64.RawStdEncoding.Decode(buf, payload); err != nil {
			return 0
		}
	}
	claims, err := Parse(buf[:n])
	if err != nil || claims.Kind != Object {
		return 0
	}
	exp, ok := claims.Get("exp")
	if !ok || exp.Kind != Number {
		return 0
	}
	raw := buf[exp.Start:exp.End]
	if !bytes.ContainsAny(raw, ".eE") {
		sec, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil || sec <= 0 || sec > math.MaxInt64/1000 {
			return 0
		}
		return sec * 1000
	}
	sec, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || !(sec > 0 && sec < math.MaxInt64/1000) { // also rejects NaN
		return 0
	}
	return int64(sec * 1000)
}

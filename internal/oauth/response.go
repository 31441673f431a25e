package oauth

import (
	"strconv"
	"time"

	"github.com/llm-agent/llm-agent/internal/jsonread"
	"github.com/llm-agent/llm-agent/internal/providers"
)

// requestBody builds a refresh request's body in one buffer of exactly its
// size, so that no partial copy of the token is left behind by growth.
func requestBody(p providers.Provider, refresh []byte) []byte {
	type field struct {
		name  string
		value []byte
	}
	fields := []field{
		{"grant_type", []byte("refresh_token")},
		{"refresh_token", refresh},
		{"client_id", []byte(p.OAuth.ClientID)},
	}
	if p.OAuth.Scope != "" {
		fields = append(fields, field{"scope", []byte(p.OAuth.Scope)})
	}
	if p.OAuth.Grant == providers.GrantJSON {
		n := 1
		for i, f := range fields {
			if i > 0 {
				n++
			}
			n += len(f.name) + 3 + jsonread.StringLen(f.value)
		}
		n++
		b := make([]byte, 0, n)
		b = append(b, '{')
		for i, f := range fields {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = append(b, f.name...)
			b = append(b, '"', ':')
			b = jsonread.AppendString(b, f.value)
		}
		return append(b, '}')
	}
	n := 0
	for i, f := range fields {
		if i > 0 {
			n++
		}
		n += len(f.name) + 1 + formLen(f.value)
	}
	b := make([]byte, 0, n)
	for i, f := range fields {
		if i > 0 {
			b = append(b, '&')
		}
		b = append(b, f.name...)
		b = append(b, '=')
		b = appendForm(b, f.value)
	}
	return b
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

func formLen(v []byte) int {
	n := 0
	for _, c := range v {
		if unreserved(c) {
			n++
		} else {
			n += 3
		}
	}
	return n
}

// appendForm appends v percent-encoded (RFC 3986 unreserved kept).
func appendForm(b, v []byte) []byte {
	const hex = "0123456789ABCDEF"
	for _, c := range v {
		if unreserved(c) {
			b = append(b, c)
		} else {
			b = append(b, '%', hex[c>>4], hex[c&0xF])
		}
	}
	return b
}

// ParseToken reads a successful token endpoint answer for p: the access
// token (required), a rotated refresh token (when p has a RefreshField
// and the answer a non-empty string there), and the expiry, from the
// answer's ExpiresInField or ExpiresAtField, else from the access token
// as a JWT, else p's Lifetime from now. Tokens must be 1 to MaxToken
// visible ASCII characters, since they end up in HTTP headers. The
// returned slices are fresh; on error nothing is kept. Errors never hold
// a byte of data.
func ParseToken(p providers.Provider, data []byte, now time.Time) (*Token, error) {
	return parseToken(p, data, now)
}

func parseToken(p providers.Provider, data []byte, now time.Time) (*Token, error) {
	var keys []string
	for _, k := range []string{p.OAuth.AccessField, p.OAuth.RefreshField, p.OAuth.ExpiresInField, p.OAuth.ExpiresAtField} {
		if k != "" {
			keys = append(keys, k)
		}
	}
	m, err := jsonread.Fields(data, keys...)
	if err != nil {
		return nil, &StatusError{Provider: p.Name, Reason: "a body that is not a JSON object: " + err.Error()}
	}
	defer func() {
		for _, v := range m {
			clear(v.Value)
		}
	}()
	bad := func(reason string) (*Token, error) {
		return nil, &StatusError{Provider: p.Name, Reason: reason}
	}
	access, ok := m[p.OAuth.AccessField]
	if !ok || access.Kind != jsonread.String || len(access.Value) == 0 {
		return bad("without an access token")
	}
	if !tokenBytes(access.Value) {
		return bad("a malformed access token")
	}
	var refresh []byte
	if p.OAuth.RefreshField != "" {
		if v, ok := m[p.OAuth.RefreshField]; ok && v.Kind != jsonread.Null {
			if v.Kind != jsonread.String || !tokenBytes(v.Value) {
				return bad("a malformed refresh token")
			}
			refresh = v.Value
		}
	}
	var expires time.Time
	if v, ok := m[p.OAuth.ExpiresInField]; ok && p.OAuth.ExpiresInField != "" && v.Kind != jsonread.Null {
		s, ok := seconds(v, 10*365*24*3600)
		if !ok {
			return bad("a malformed " + p.OAuth.ExpiresInField)
		}
		expires = now.Add(time.Duration(s * float64(time.Second)))
	} else if v, ok := m[p.OAuth.ExpiresAtField]; ok && p.OAuth.ExpiresAtField != "" && v.Kind != jsonread.Null {
		s, ok := seconds(v, 1e10)
		if !ok {
			return bad("a malformed " + p.OAuth.ExpiresAtField)
		}
		expires = time.UnixMilli(int64(s * 1000))
	} else if ms := jsonread.JWTExpiry(access.Value); ms > 0 {
		expires = time.UnixMilli(ms)
	} else {
		lifetime := p.OAuth.Lifetime
		if lifetime <= 0 {
			lifetime = time.Hour
		}
		expires = now.Add(lifetime)
	}
	tok := &Token{Access: access.Value, Refresh: refresh, Expires: expires}
	// The token owns these slices now; the deferred wipe must spare them.
	delete(m, p.OAuth.AccessField)
	if refresh != nil {
		delete(m, p.OAuth.RefreshField)
	}
	return tok, nil
}

// seconds reads a JSON number of seconds: positive, finite, at most max.
func seconds(v jsonread.Field, max float64) (float64, bool) {
	if v.Kind != jsonread.Number {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(v.Value), 64)
	if err != nil || !(f > 0 && f <= max) { // also refuses NaN
		return 0, false
	}
	return f, true
}

// tokenBytes reports whether t is 1 to MaxToken visible ASCII characters.
func tokenBytes(t []byte) bool {
	if len(t) == 0 || len(t) > MaxToken {
		return false
	}
	for _, c := range t {
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// errorCode returns the OAuth "error" member of a failure answer when it
// is a plain code (letters, digits, _ . -; at most 64), else "". The
// error_description is never read: it is free text from the server.
func errorCode(data []byte) string {
	m, err := jsonread.Fields(data, "error")
	if err != nil {
		return ""
	}
	v := m["error"]
	defer clear(v.Value)
	if v.Kind != jsonread.String || len(v.Value) == 0 || len(v.Value) > 64 {
		return ""
	}
	for _, c := range v.Value {
		if !(unreserved(c) && c != '~') {
			return ""
		}
	}
	return string(v.Value)
}

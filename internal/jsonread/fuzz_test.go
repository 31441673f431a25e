package jsonread

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParse: Parse never panics, agrees with encoding/json except where it
// is stricter by design, keeps spans inside the input, and its errors are
// one line; Fields decodes every top-level string as encoding/json does;
// UnquoteInPlace agrees with it; AppendString writes back what was read,
// in a buffer sized by StringLen.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"access_token":"sk-ant-oat01-FAKE","refresh_token":"rt","expires_in":28800,"scope":"user:inference"}`,
		`{"token":"tid=1;exp=2","expires_at":1800000000,"refresh_in":1500}`,
		`{"error":"invalid_grant","error_description":"Refresh token expired"}`,
		`{"openrouter":{"type":"api","key":"sk-or-v1-FAKE"},"anthropic":{"type":"oauth","refresh":"r","access":"a","expires":1}}`,
		`{"claudeAiOauth":{"accessToken":"a","refreshToken":"r","expiresAt":1.8e12,"scopes":["user:inference"]}}`,
		`{"OPENAI_API_KEY":null,"tokens":{"id_token":"h.p.s","access_token":"eyJhbGciOiJub25lIn0.eyJleHAiOjE4MDAwMDAwMDB9.sig"}}`,
		"\xef\xbb\xbf{\"a\":\"\\ud83d\\ude00 \\u00e9\\n\"}",
		`{"a":1,"a":2}`, `{"a":"\ud800"}`, `[[[[[[[[]]]]]]]]`, `{"a":tru}`, `{"a":"unterminated`, `{"a":01}`, `"x" "y"`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in := bytes.Clone(data)
		v, err := Parse(data)
		if !bytes.Equal(in, data) {
			t.Fatalf("Parse modified its input")
		}
		checkParserAgainstStd(t, data)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("error of several lines: %q", err)
			}
			if _, ferr := Fields(data); ferr == nil || strings.ContainsAny(ferr.Error(), "\r\n") {
				t.Fatalf("Fields: %v where Parse failed with %v", ferr, err)
			}
			return
		}
		if v.Start < 0 || v.End > len(data) || v.Start > v.End {
			t.Fatalf("span %d-%d outside %d bytes", v.Start, v.End, len(data))
		}
		if v.Kind != Object {
			return
		}
		var std map[string]json.RawMessage
		if err := json.Unmarshal(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), &std); err != nil {
			t.Fatalf("encoding/json refuses an object Parse took: %v", err)
		}
		keys := make([]string, 0, len(v.Members))
		for _, m := range v.Members {
			keys = append(keys, m.Key)
		}
		fields, err := Fields(data, keys...)
		if err != nil || len(fields) != len(keys) {
			t.Fatalf("Fields: %d of %d members, %v", len(fields), len(keys), err)
		}
		for k, fv := range fields {
			if fv.Kind != String {
				continue
			}
			m, _ := v.Get(k)
			raw := bytes.Clone(data[m.Start:m.End])
			if inPlace := UnquoteInPlace(raw, m.Escaped); !bytes.Equal(inPlace, fv.Value) || len(inPlace) > 0 && &inPlace[0] != &raw[1] {
				t.Fatalf("%q: UnquoteInPlace decoded %q, Unquote %q, or not in place", k, inPlace, fv.Value)
			}
			var s string
			if err := json.Unmarshal(std[k], &s); err != nil || s != string(fv.Value) {
				t.Fatalf("%q: Fields decoded %q, encoding/json %q (%v)", k, fv.Value, s, err)
			}
			if !utf8.Valid(fv.Value) {
				continue
			}
			out := AppendString(make([]byte, 0, StringLen(fv.Value)), fv.Value)
			if len(out) != cap(out) {
				t.Fatalf("StringLen %d, AppendString wrote %d", cap(out), len(out))
			}
			back, err := Fields(append(append([]byte(`{"k":`), out...), '}'), "k")
			if err != nil || !reflect.DeepEqual(back["k"].Value, fv.Value) {
				t.Fatalf("%q does not round-trip through AppendString: %v", fv.Value, err)
			}
		}
	})
}

// FuzzJWTExpiry: no panic, never negative, and the token is left as it
// was.
func FuzzJWTExpiry(f *testing.F) {
	f.Add(jwt(`{"exp":1800000000}`))
	f.Add(jwt(`{"exp":1.8e9}`))
	f.Add(jwt(`{"exp":"x"}`))
	f.Add([]byte("a.b.c"))
	f.Add([]byte("opaque"))
	f.Fuzz(func(t *testing.T, tok []byte) {
		in := bytes.Clone(tok)
		if ms := JWTExpiry(tok); ms < 0 {
			t.Fatalf("negative expiry %d", ms)
		}
		if !bytes.Equal(in, tok) {
			t.Fatalf("JWTExpiry modified its input")
		}
	})
}

package jsonread

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

func TestFields(t *testing.T) {
	const answer = `{"access_token":"a\u0062c","expires_in":3600,"scope":null,"ok":true,"id_token":"x","nested":{"a":1}}`
	for _, tc := range []struct {
		name, in string
		keys     []string
		want     map[string]string // key -> kind:value
		err      string
	}{
		{"chosen members", answer, []string{"access_token", "expires_in", "scope", "ok", "nested", "absent"},
			map[string]string{"access_token": "string:abc", "expires_in": "number:3600", "scope": "null:", "ok": "boolean:", "nested": "object:"}, ""},
		{"no keys", answer, nil, map[string]string{}, ""},
		{"not an object", `["access_token"]`, []string{"access_token"}, nil, "want a JSON object, got array"},
		{"bad JSON", `{"access_token":"sk-SECRET`, []string{"access_token"}, nil, "invalid JSON at byte 16: unterminated string"},
		{"duplicate", `{"error":"a","error":"b"}`, []string{"error"}, nil, `invalid JSON at byte 13: duplicate object key "error"`},
	} {
		got, err := Fields([]byte(tc.in), tc.keys...)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err || got != nil {
				t.Errorf("%s: got %v, %v; want error %q", tc.name, got, err, tc.err)
			}
			continue
		}
		if err != nil || len(got) != len(tc.want) {
			t.Errorf("%s: got %v, %v", tc.name, got, err)
			continue
		}
		for k, w := range tc.want {
			if f := got[k]; f.Kind.String()+":"+string(f.Value) != w {
				t.Errorf("%s: %s = %s:%s, want %s", tc.name, k, f.Kind, f.Value, w)
			}
		}
	}
}

func jwt(claims string) []byte {
	return []byte("eyJhbGciOiJub25lIn0." + base64.RawURLEncoding.EncodeToString([]byte(claims)) + ".sig")
}

func TestJWTExpiry(t *testing.T) {
	for _, tc := range []struct {
		name string
		tok  []byte
		want int64
	}{
		{"whole seconds", jwt(`{"exp":1800000000}`), 1_800_000_000_000},
		{"fraction", jwt(`{"exp":1800000000.5}`), 1_800_000_000_500},
		{"exponent", jwt(`{"exp":1e9}`), 1_000_000_000_000},
		{"standard alphabet, padded", []byte("h." + base64.StdEncoding.EncodeToString([]byte(`{"exp":1800000000,"n":"~~~?"}`)) + ".s"), 1_800_000_000_000},
		{"string exp", jwt(`{"exp":"1800000000"}`), 0},
		{"negative", jwt(`{"exp":-5}`), 0},
		{"overflow", jwt(`{"exp":9223372036854775807}`), 0},
		{"no exp", jwt(`{"sub":"x"}`), 0},
		{"not JSON", jwt(`exp`), 0},
		{"two parts", []byte("a.b"), 0},
		{"four parts", []byte("a.b.c.d"), 0},
		{"opaque", []byte("sk-ant-oat01-opaque"), 0},
		{"empty", nil, 0},
	} {
		if got := JWTExpiry(tc.tok); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestAppendString(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `""`},
		{"sk-plain", `"sk-plain"`},
		{"q\"b\\s/", `"q\"b\\s/"`},
		{"\b\f\n\r\t\x00\x1f", `"\b\f\n\r\t\u0000\u001f"`},
		{"é€", `"é€"`},
	} {
		got := AppendString(make([]byte, 0, StringLen([]byte(tc.in))), []byte(tc.in))
		if string(got) != tc.want || len(got) != cap(got) {
			t.Errorf("%q: %s (len %d cap %d), want %s", tc.in, got, len(got), cap(got), tc.want)
		}
		var back string
		if err := json.Unmarshal(got, &back); err != nil || back != tc.in {
			t.Errorf("%q: does not round-trip: %q %v", tc.in, back, err)
		}
		if strings.Contains(string(got), "\n") {
			t.Errorf("%q: raw newline in output", tc.in)
		}
	}
}

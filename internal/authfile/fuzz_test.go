package authfile

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParse checks that Parse never panics, is deterministic, keeps its
// error contract, returns only well-formed entries, and that every opencode
// entry survives MarshalOpencodeEntry and a second Parse unchanged.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"opencode.json", "claude.json", "codex.json"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		// opencode
		`{"openrouter":{"type":"api","key":"sk-or-v1-FAKE"}}`,
		`{"anthropic":{"type":"oauth","refresh":"FAKE-r","access":"FAKE-a","expires":1766390400000,"accountId":"acct","enterpriseUrl":null}}`,
		`{"example":{"type":"wellknown","key":"EXAMPLE_TOKEN","token":"FAKE-t"}}`,
		"{\n  \"x\": {\"type\": \"api\", \"key\": \"k\\u00e9\\n\", \"note\": [1, {\"a\": null}], \"expires\": 1.5e3}\n}\n",
		`{}`,
		// Claude Code
		`{"claudeAiOauth":{"accessToken":"FAKE-at","refreshToken":"FAKE-rt","expiresAt":1766390400000,"scopes":["user:inference"],"subscriptionType":"max"},"mcpOAuth":{}}`,
		`{"claudeAiOauth":null}`,
		// Codex
		`{"OPENAI_API_KEY":"sk-proj-FAKE","tokens":null}`,
		`{"OPENAI_API_KEY":null,"tokens":{"id_token":"FAKE.id.tok","access_token":"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjE3NjcyMjU2MDAsInN1YiI6IkZBS0UifQ.FAKESIG","refresh_token":"FAKE-rt","account_id":"acct"},"last_refresh":"2025-12-22T00:00:00Z"}`,
		`{"OPENAI_API_KEY":"sk-proj-FAKE","tokens":{"access_token":"a.b.c","refresh_token":"r"},"auth_mode":"chatgpt"}`,
		// broken: wrong type, nesting too deep, duplicate key, not UTF-8, lone surrogate, truncated, unknown kind
		`{"tokens":{"access_token":1,"refresh_token":"r"}}`,
		`{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`,
		`{"a":{"type":"api","key":"1"},"a":{"type":"api","key":"2"}}`,
		"{\"a\":{\"type\":\"api\",\"key\":\"caf\xe9\"}}",
		`{"a":{"type":"api","key":"\ud83d\ude00\ud800"}}`,
		`{"anthropic":{"type":"oauth","refresh":"FAK`,
		`{"a":{"type":"bearer","key":"k"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const name = "fuzz.json"
		format, entries, err := Parse(name, data)
		format2, entries2, err2 := Parse(name, data)
		if format != format2 || !reflect.DeepEqual(entries, entries2) || (err == nil) != (err2 == nil) ||
			(err != nil && err.Error() != err2.Error()) {
			t.Fatalf("not deterministic: %q %v / %q %v", format, err, format2, err2)
		}
		if err != nil {
			msg := err.Error()
			if format != "" || entries != nil {
				t.Fatalf("error with results: %v", err)
			}
			if strings.ContainsAny(msg, "\r\n") || !strings.HasPrefix(msg, name+": ") {
				t.Fatalf("bad error message %q", msg)
			}
			return
		}
		if format != FormatOpencode && format != FormatClaude && format != FormatCodex {
			t.Fatalf("unknown format %q", format)
		}
		for i, e := range entries {
			checkEntry(t, e)
			if i > 0 && entries[i-1].Provider >= e.Provider {
				t.Fatalf("providers not sorted and unique: %q, %q", entries[i-1].Provider, e.Provider)
			}
			out, err := MarshalOpencodeEntry(e)
			if err != nil {
				if format == FormatOpencode {
					t.Fatalf("opencode entry %q does not marshal: %v", e.Provider, err)
				}
				continue // e.g. a Claude field named "type" clashes
			}
			if len(out) != cap(out) {
				t.Fatalf("writer size mismatch: len %d cap %d", len(out), cap(out))
			}
			prov, _ := json.Marshal(e.Provider)
			wrapped := append(append(append(append([]byte("{"), prov...), ':'), out...), '}')
			f2, back, err := Parse(name, wrapped)
			if err != nil {
				t.Fatalf("marshalled entry does not parse: %v\n%s", err, wrapped)
			}
			if f2 != FormatOpencode || len(back) != 1 || back[0].Provider != e.Provider || back[0].Kind != e.Kind ||
				!reflect.DeepEqual(back[0].Fields, e.Fields) || !bytes.Equal(back[0].Extra, e.Extra) {
				t.Fatalf("round trip changed the entry:\n%+v\n%+v", e, back)
			}
		}
		wipeAll(entries)
	})
}

func checkEntry(t *testing.T, e Entry) {
	t.Helper()
	specs, ok := kindFields(e.Kind)
	if !ok || e.Provider == "" {
		t.Fatalf("bad entry %q kind %q", e.Provider, e.Kind)
	}
	for _, f := range specs {
		v, ok := e.Fields[f.name]
		switch {
		case !ok && !f.optional:
			t.Fatalf("%s: %s missing", e.Provider, f.name)
		case ok && f.number:
			if _, err := strconv.ParseInt(string(v), 10, 64); err != nil {
				t.Fatalf("%s: expires %q", e.Provider, v)
			}
		case ok && !utf8.Valid(v):
			t.Fatalf("%s: %s not UTF-8", e.Provider, f.name)
		}
	}
	for name := range e.Fields {
		if !hasField(specs, name) {
			t.Fatalf("%s: stray field %q", e.Provider, name)
		}
	}
	if e.Extra != nil && (!json.Valid(e.Extra) || e.Extra[0] != '{' || len(e.Extra) != cap(e.Extra)) {
		t.Fatalf("%s: bad Extra %q", e.Provider, e.Extra)
	}
}

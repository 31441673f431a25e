package authfile

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/protocol"
)

// spliceSeeds are files ReplaceOAuth may meet: the three formats, pretty
// and compact, with members missing, escaped, or in odd places.
func spliceSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	for _, name := range []string{"opencode.json", "claude.json", "codex.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	for _, s := range []string{
		`{"openai":{"type":"oauth","refresh":"r","access":"a","expires":0},"x":{"type":"api","key":"k"}}`,
		`{"anthropic":{"type":"oauth","refresh":"r\u0031","access":"a\/b","expires":1e3,"extra":[1,{"a":null}]}}`,
		"{\n  \"claudeAiOauth\": {\n    \"accessToken\": \"a\",\n    \"refreshToken\": \"r\"\n  }\n}\n",
		`{"claudeAiOauth":{"accessToken":"a","refreshToken":"r","expiresAt":null},"mcpOAuth":{}}`,
		`{"tokens":{"access_token":"a","refresh_token":"r"}}`,
		`{"tokens":{"access_token":"a","refresh_token":"r","last_refresh":"x"},"OPENAI_API_KEY":"k"}`,
		// refused: no OAuth entry, a null one, not JSON, a duplicate member,
		// a byte order mark and garbage after the object
		`{"openai":{"type":"api","key":"k"}}`,
		`{"claudeAiOauth":null}`,
		`{"openai":`,
		`{"openai":{"type":"oauth","refresh":"r","refresh":"s","access":"a","expires":0}}`,
		"\xef\xbb\xbf{}x",
	} {
		seeds = append(seeds, []byte(s))
	}
	return seeds
}

// FuzzReplaceOAuth: for any file, ReplaceOAuth either refuses, or returns
// a file of the same format in which the entry holds the new tokens and
// every other entry parses exactly as before; the input is never changed.
func FuzzReplaceOAuth(f *testing.F) {
	for _, b := range spliceSeeds(f) {
		f.Add(b)
	}
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		format, before, perr := Parse("", data)
		if perr != nil {
			format = FormatOpencode // must be refused
		}
		providers := []string{"anthropic", "openai", "github-copilot"}
		for _, e := range before {
			providers = append(providers, e.Provider)
		}
		for _, provider := range providers {
			in := bytes.Clone(data)
			up := Update{Access: []byte("NEW-A\"\\"), Refresh: []byte("NEW-R"), Expires: 1800000000000, Now: now}
			out, err := ReplaceOAuth(format, in, provider, up)
			if !bytes.Equal(in, data) {
				t.Fatalf("input modified")
			}
			if perr != nil && err == nil {
				t.Fatalf("%s: rewrote a file that does not parse", provider)
			}
			if err != nil {
				if out != nil || strings.ContainsAny(err.Error(), "\r\n") {
					t.Fatalf("bad error: %v", err)
				}
				continue
			}
			f2, after, err := Parse("", out)
			if err != nil || f2 != format || len(after) != len(before) {
				t.Fatalf("%s: rewritten file: format %q, %d entries (had %d), %v", provider, f2, len(after), len(before), err)
			}
			for i := range before {
				b, a := before[i], after[i]
				if b.Provider != provider || b.Kind != protocol.KindOAuth {
					if !reflect.DeepEqual(a, b) {
						t.Fatalf("entry %s changed", b.Provider)
					}
					continue
				}
				if string(a.Fields[protocol.FieldAccess]) != string(up.Access) || string(a.Fields[protocol.FieldRefresh]) != string(up.Refresh) {
					t.Fatalf("entry %s does not hold the new tokens", provider)
				}
			}
			wipeAll(after)
		}
		wipeAll(before)
	})
}

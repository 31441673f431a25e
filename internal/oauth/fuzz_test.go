package oauth

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/llm-agent/llm-agent/internal/providers"
)

// FuzzParseToken: no panic; a token it accepts is visible ASCII of bounded
// size with an expiry; an error never quotes the answer beyond its keys.
func FuzzParseToken(f *testing.F) {
	// Token endpoint answers: the real shapes and broken ones.
	for _, s := range []string{
		`{"id_token":"eyJ.eyJ.sig","access_token":"eyJhbGciOiJub25lIn0.eyJleHAiOjE4MDAwMDcyMDB9.sig","refresh_token":"rt_FAKE","expires_in":3600}`,
		`{"token_type":"Bearer","access_token":"sk-ant-oat01-FAKE","refresh_token":"sk-ant-ort01-FAKE","expires_in":28800,"scope":"user:inference user:profile"}`,
		`{"token":"tid=FAKE;exp=1800001500;sku=free","expires_at":1800001500,"refresh_in":1500,"endpoints":{"api":"https://api.githubcopilot.com"}}`,
		`{"access_token":"a\u0062\/c","refresh_token":"\"q\"","expires_in":1e3}`,
		`{"error":"invalid_grant","error_description":"Refresh token revoked"}`,
		`["access_token"]`,
		`{"access_token":"a","access_token":"b"}`,
		`{"access_token":"a\r\nX: y"}`,
		`{"access_token":"abc`,
		"{\"access_token\":\"\xff\"}",
		`{"access_token":"a","expires_in":1e300,"expires_at":-1}`,
	} {
		f.Add([]byte(s))
	}
	now := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, p := range oauthRows() {
			in := bytes.Clone(data)
			tok, err := parseToken(p, in, now)
			if !bytes.Equal(in, data) {
				t.Fatalf("%s: the input was modified", p.Name)
			}
			if err != nil {
				if tok != nil {
					t.Fatalf("%s: token and error", p.Name)
				}
				msg := err.Error()
				if strings.ContainsAny(msg, "\r\n") {
					t.Fatalf("%s: error of several lines: %q", p.Name, msg)
				}
				continue
			}
			if !tokenBytes(tok.Access) || (tok.Refresh != nil && !tokenBytes(tok.Refresh)) {
				t.Fatalf("%s: accepted a malformed token", p.Name)
			}
			if tok.Expires.IsZero() {
				t.Fatalf("%s: no expiry", p.Name)
			}
			if p.OAuth.RefreshField == "" && tok.Refresh != nil {
				t.Fatalf("%s: a rotated token from a provider that does not rotate", p.Name)
			}
			tok.Wipe()
		}
	})
}

// FuzzRequestBody: the form and JSON bodies carry the refresh token back
// exactly, in a buffer sized right the first time.
func FuzzRequestBody(f *testing.F) {
	for _, s := range []string{"rt_FAKE-0123456789", `a+b/c=d&e%f"g\h`, "a\x00b\nc\x7f", "jeton-é-✓", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, refresh []byte) {
		for _, p := range oauthRows() {
			if p.OAuth.Grant == providers.GrantCopilot {
				continue
			}
			body := requestBody(p, refresh)
			if len(body) != cap(body) {
				t.Fatalf("%s: body of %d bytes in a buffer of %d", p.Name, len(body), cap(body))
			}
			var got string
			switch p.OAuth.Grant {
			case providers.GrantForm:
				q, err := url.ParseQuery(string(body))
				if err != nil {
					t.Fatalf("%s: form does not parse: %v", p.Name, err)
				}
				if q.Get("client_id") != p.OAuth.ClientID || q.Get("grant_type") != "refresh_token" {
					t.Fatalf("%s: form fields wrong", p.Name)
				}
				got = q.Get("refresh_token")
			case providers.GrantJSON:
				var m map[string]string
				if err := json.Unmarshal(body, &m); err != nil {
					t.Fatalf("%s: JSON does not parse: %v", p.Name, err)
				}
				if m["client_id"] != p.OAuth.ClientID || m["grant_type"] != "refresh_token" {
					t.Fatalf("%s: JSON fields wrong", p.Name)
				}
				got = m["refresh_token"]
				if !utf8.Valid(refresh) {
					continue // encoding/json replaces invalid UTF-8
				}
			}
			if got != string(refresh) {
				t.Fatalf("%s: refresh token does not round-trip", p.Name)
			}
		}
	})
}

// oauthRows are the table's rows that llm-agent refreshes.
func oauthRows() []providers.Provider {
	var rows []providers.Provider
	for _, p := range providers.All() {
		if p.OAuth != nil {
			rows = append(rows, p)
		}
	}
	return rows
}

package authfile_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/internal/authfile"
)

// Fake tokens for the rewritten entries; distinctive so the tests can
// look for them.
const (
	newAccess  = "NEW-ACCESS-TOKEN-7f3a"
	newRefresh = "NEW-REFRESH-TOKEN-c91e"
)

var stamp = time.Date(2026, 11, 29, 12, 0, 0, 123456000, time.UTC)

func testdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// entryOf parses data and returns provider's entry.
func entryOf(t *testing.T, data []byte, provider string) authfile.Entry {
	t.Helper()
	_, entries, err := authfile.Parse("rewritten", data)
	if err != nil {
		t.Fatalf("rewritten file does not parse: %v", err)
	}
	for _, e := range entries {
		if e.Provider == provider {
			return e
		}
	}
	t.Fatalf("no %s entry after the rewrite", provider)
	return authfile.Entry{}
}

// splice returns data with each span replaced by its text: what the
// rewritten file must be, byte for byte.
func splice(data []byte, spans [][2]int, texts []string) []byte {
	var out []byte
	pos := 0
	for i, sp := range spans {
		out = append(out, data[pos:sp[0]]...)
		out = append(out, texts[i]...)
		pos = sp[1]
	}
	return append(out, data[pos:]...)
}

// valueSpan finds the span of the JSON value of the first "key": after
// from in data (a string or a number).
func valueSpan(t *testing.T, data []byte, from int, key string) [2]int {
	t.Helper()
	k := bytes.Index(data[from:], []byte(`"`+key+`"`))
	if k < 0 {
		t.Fatalf("no %q in the file", key)
	}
	i := from + k + len(key) + 2
	for data[i] == ' ' || data[i] == ':' {
		i++
	}
	j := i + 1
	if data[i] == '"' {
		for data[j] != '"' {
			j++
		}
		j++
	} else {
		for j < len(data) && data[j] >= '0' && data[j] <= '9' {
			j++
		}
	}
	return [2]int{i, j}
}

func TestReplaceOAuth(t *testing.T) {
	for _, tc := range []struct {
		file, provider, prevRefresh string
		keys                        []string // values that change, in file order, after the entry's start
		start                       string
	}{
		{"opencode.json", "openai", "rt_FAKE-opencode-openai-refresh", []string{"refresh", "access", "expires"}, `"openai"`},
		{"opencode.json", "anthropic", "sk-ant-ort01-FAKE-opencode-refresh", []string{"refresh", "access", "expires"}, `"anthropic"`},
		{"claude.json", "anthropic", "sk-ant-ort01-FAKE-claude-refresh-token-0123456789", []string{"accessToken", "refreshToken", "expiresAt"}, `"claudeAiOauth"`},
		{"codex.json", "openai", "rt_FAKE-codex-refresh-token-0123456789", []string{"access_token", "refresh_token", "last_refresh"}, `"tokens"`},
	} {
		t.Run(tc.file+"/"+tc.provider, func(t *testing.T) {
			data := testdata(t, tc.file)
			orig := bytes.Clone(data)
			format, _, err := authfile.Parse(tc.file, data)
			if err != nil {
				t.Fatal(err)
			}
			out, err := authfile.ReplaceOAuth(format, data, tc.provider, authfile.Update{
				Access: []byte(newAccess), Refresh: []byte(newRefresh), Expires: 1800000000000,
				Previous: []byte(tc.prevRefresh), Now: stamp,
			})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(data, orig) {
				t.Fatal("the input was modified")
			}
			if len(out) != cap(out) {
				t.Errorf("result of %d bytes in a buffer of %d", len(out), cap(out))
			}
			e := entryOf(t, out, tc.provider)
			if string(e.Fields["access"]) != newAccess || string(e.Fields["refresh"]) != newRefresh {
				t.Errorf("the entry does not hold the new tokens")
			}
			if format != authfile.FormatCodex && string(e.Fields["expires"]) != "1800000000000" {
				t.Errorf("expires = %s", e.Fields["expires"])
			}
			// Everything but the changed values is kept byte for byte.
			start := bytes.Index(data, []byte(tc.start))
			repl := map[string]string{
				"refresh": `"` + newRefresh + `"`, "refreshToken": `"` + newRefresh + `"`, "refresh_token": `"` + newRefresh + `"`,
				"access": `"` + newAccess + `"`, "accessToken": `"` + newAccess + `"`, "access_token": `"` + newAccess + `"`,
				"expires": "1800000000000", "expiresAt": "1800000000000", "last_refresh": `"2026-11-29T12:00:00.123456Z"`,
			}
			var spans [][2]int
			var texts []string
			for _, k := range tc.keys {
				from := start
				if k == "last_refresh" {
					from = 0
				}
				spans = append(spans, valueSpan(t, data, from, k))
				texts = append(texts, repl[k])
			}
			sortSpans(spans, texts)
			if want := splice(data, spans, texts); !bytes.Equal(out, want) {
				t.Errorf("rewritten file differs from the original outside the entry's token values:\n%s", out)
			}
		})
	}
}

func sortSpans(s [][2]int, texts []string) {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j][0] < s[i][0] {
				s[i], s[j] = s[j], s[i]
				texts[i], texts[j] = texts[j], texts[i]
			}
		}
	}
}

// TestReplaceOAuthOtherEntries: every other entry of an opencode file
// parses to what it was.
func TestReplaceOAuthOtherEntries(t *testing.T) {
	data := testdata(t, "opencode.json")
	_, before, _ := authfile.Parse("", data)
	out, err := authfile.ReplaceOAuth(authfile.FormatOpencode, data, "github-copilot", authfile.Update{Access: []byte(newAccess), Expires: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, after, err := authfile.Parse("", out)
	if err != nil || len(after) != len(before) {
		t.Fatalf("%d entries, %v", len(after), err)
	}
	for i := range before {
		b, a := before[i], after[i]
		if b.Provider == "github-copilot" {
			if string(a.Fields["refresh"]) != string(b.Fields["refresh"]) {
				t.Errorf("a nil Update.Refresh changed the refresh token")
			}
			if string(a.Fields["enterpriseUrl"]) != "github.example.com" {
				t.Errorf("enterpriseUrl lost")
			}
			continue
		}
		if b.Kind != a.Kind || len(a.Fields) != len(b.Fields) || !bytes.Equal(a.Extra, b.Extra) {
			t.Errorf("entry %s changed", b.Provider)
		}
		for k, v := range b.Fields {
			if !bytes.Equal(a.Fields[k], v) {
				t.Errorf("entry %s field %s changed", b.Provider, k)
			}
		}
	}
}

// TestReplaceOAuthAddsMissing: a missing expiresAt or last_refresh is
// added after the object's last member, spaced like it.
func TestReplaceOAuthAddsMissing(t *testing.T) {
	claude := "{\n  \"claudeAiOauth\": {\n    \"accessToken\": \"a\",\n    \"refreshToken\": \"r\"\n  }\n}\n"
	out, err := authfile.ReplaceOAuth(authfile.FormatClaude, []byte(claude), "anthropic", authfile.Update{Access: []byte("A"), Refresh: []byte("R"), Expires: 42})
	if err != nil {
		t.Fatal(err)
	}
	want := "{\n  \"claudeAiOauth\": {\n    \"accessToken\": \"A\",\n    \"refreshToken\": \"R\",\n    \"expiresAt\": 42\n  }\n}\n"
	if string(out) != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	codex := `{"tokens":{"access_token":"a","refresh_token":"r"}}`
	out, err = authfile.ReplaceOAuth(authfile.FormatCodex, []byte(codex), "openai", authfile.Update{Access: []byte("A"), Refresh: []byte("R"), Now: stamp})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"tokens":{"access_token":"A","refresh_token":"R"},"last_refresh":"2026-11-29T12:00:00.123456Z"}`; string(out) != want {
		t.Errorf("got %s\nwant %s", out, want)
	}
	// Codex accepts last_refresh inside tokens too; it is updated there.
	codex = `{"tokens":{"access_token":"a","refresh_token":"r","last_refresh":"x"}}`
	out, err = authfile.ReplaceOAuth(authfile.FormatCodex, []byte(codex), "openai", authfile.Update{Access: []byte("A"), Now: stamp})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"tokens":{"access_token":"A","refresh_token":"r","last_refresh":"2026-11-29T12:00:00.123456Z"}}`; string(out) != want {
		t.Errorf("got %s\nwant %s", out, want)
	}
}

// TestReplaceOAuthEscapes: tokens are written as JSON strings, and a
// value the file wrote with escapes compares equal to its decoded form.
func TestReplaceOAuthEscapes(t *testing.T) {
	in := `{"p":{"type":"oauth","refresh":"r\u0031","access":"a","expires":0}}`
	out, err := authfile.ReplaceOAuth(authfile.FormatOpencode, []byte(in), "p", authfile.Update{
		Access: []byte(`x"y\z`), Refresh: []byte("n"), Expires: 5, Previous: []byte("r1")})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"p":{"type":"oauth","refresh":"n","access":"x\"y\\z","expires":5}}`; string(out) != want {
		t.Errorf("got %s\nwant %s", out, want)
	}
}

func TestReplaceOAuthRefuses(t *testing.T) {
	up := authfile.Update{Access: []byte("A"), Refresh: []byte("R"), Previous: []byte("r")}
	for _, tc := range []struct {
		name     string
		format   authfile.Format
		data     string
		provider string
		want     error
	}{
		{"changed", authfile.FormatOpencode, `{"p":{"type":"oauth","refresh":"other","access":"a","expires":0}}`, "p", authfile.ErrEntryChanged},
		{"missing", authfile.FormatOpencode, `{"q":{"type":"oauth","refresh":"r","access":"a","expires":0}}`, "p", authfile.ErrNoEntry},
		{"api entry", authfile.FormatOpencode, `{"p":{"type":"api","key":"r"}}`, "p", authfile.ErrNoEntry},
		{"logged out", authfile.FormatClaude, `{"claudeAiOauth":null}`, "anthropic", authfile.ErrNoEntry},
		{"claude other provider", authfile.FormatClaude, `{"claudeAiOauth":{"accessToken":"a","refreshToken":"r"}}`, "openai", authfile.ErrNoEntry},
		{"codex logged out", authfile.FormatCodex, `{"OPENAI_API_KEY":"sk","tokens":null}`, "openai", authfile.ErrNoEntry},
		{"format changed", authfile.FormatClaude, `{"p":{"type":"oauth","refresh":"r","access":"a","expires":0}}`, "anthropic", nil},
		{"not JSON", authfile.FormatOpencode, `{"p":`, "p", nil},
	} {
		out, err := authfile.ReplaceOAuth(tc.format, []byte(tc.data), tc.provider, up)
		if err == nil || out != nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		if tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if strings.Contains(err.Error(), `"r"`) || strings.Contains(err.Error(), "other") {
			t.Errorf("%s: error quotes the file: %v", tc.name, err)
		}
	}
}

package authfile_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/internal/authfile"
)

// marker is put into every secret position of error inputs; no error
// message may contain it.
const marker = "SECRETMARKER"

type wantEntry struct {
	provider, kind string
	fields         map[string]string
	extra          string // exact compact JSON; "" for nil
}

func jwt(payload string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + enc([]byte(payload)) + ".c2lnbmF0dXJl"
}

func checkEntries(t *testing.T, got []authfile.Entry, want []wantEntry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Provider != w.provider || g.Kind != w.kind {
			t.Errorf("entry %d: got %s/%s, want %s/%s", i, g.Provider, g.Kind, w.provider, w.kind)
		}
		fields := map[string]string{}
		for k, v := range g.Fields {
			fields[k] = string(v)
		}
		if !reflect.DeepEqual(fields, w.fields) {
			t.Errorf("entry %d (%s) fields:\n got %q\nwant %q", i, g.Provider, fields, w.fields)
		}
		if w.extra == "" {
			if g.Extra != nil {
				t.Errorf("entry %d (%s) extra: got %s, want nil", i, g.Provider, g.Extra)
			}
		} else if string(g.Extra) != w.extra {
			t.Errorf("entry %d (%s) extra:\n got %s\nwant %s", i, g.Provider, g.Extra, w.extra)
		}
	}
}

func TestParse(t *testing.T) {
	accessJWT := jwt(`{"exp":1767225600,"sub":"x"}`)
	floatExpJWT := jwt(`{"exp":1767225600.5}`)
	tests := []struct {
		name   string
		in     string
		format authfile.Format
		want   []wantEntry
	}{
		{"opencode empty", `{}`, authfile.FormatOpencode, nil},
		{"opencode empty with BOM and whitespace", "\uFEFF \n{ }\n", authfile.FormatOpencode, nil},
		{"opencode api", `{"openrouter":{"type":"api","key":"sk-or-1"}}`, authfile.FormatOpencode,
			[]wantEntry{{"openrouter", "api", map[string]string{"key": "sk-or-1"}, ""}}},
		{"opencode oauth all fields", `{"github-copilot":{"type":"oauth","refresh":"r","access":"a","expires":1766390400000,"accountId":"acct","enterpriseUrl":"ghe.example.com"}}`, authfile.FormatOpencode,
			[]wantEntry{{"github-copilot", "oauth", map[string]string{"refresh": "r", "access": "a", "expires": "1766390400000", "accountId": "acct", "enterpriseUrl": "ghe.example.com"}, ""}}},
		{"opencode oauth null optionals", `{"anthropic":{"type":"oauth","refresh":"r","access":"a","expires":0,"accountId":null,"enterpriseUrl":null}}`, authfile.FormatOpencode,
			[]wantEntry{{"anthropic", "oauth", map[string]string{"refresh": "r", "access": "a", "expires": "0"}, ""}}},
		{"opencode expires in exponent notation", `{"anthropic":{"type":"oauth","refresh":"r","access":"a","expires":1.7663904e12}}`, authfile.FormatOpencode,
			[]wantEntry{{"anthropic", "oauth", map[string]string{"refresh": "r", "access": "a", "expires": "1766390400000"}, ""}}},
		{"opencode wellknown", `{"example":{"type":"wellknown","key":"EXAMPLE_TOKEN","token":"t0k"}}`, authfile.FormatOpencode,
			[]wantEntry{{"example", "wellknown", map[string]string{"key": "EXAMPLE_TOKEN", "token": "t0k"}, ""}}},
		{"opencode extra fields kept compact in order", `{"x":{"z":[1, 2],"type":"api","key":"k","a":{"b" : null},"refresh":"not-for-api"}}`, authfile.FormatOpencode,
			[]wantEntry{{"x", "api", map[string]string{"key": "k"}, `{"z":[1,2],"a":{"b":null},"refresh":"not-for-api"}`}}},
		{"opencode escapes decoded", `{"p":{"type":"api","key":"a\"b\\c\/d\n\u00e9\ud83d\ude00"}}`, authfile.FormatOpencode,
			[]wantEntry{{"p", "api", map[string]string{"key": "a\"b\\c/d\né😀"}, ""}}},
		{"opencode all escapes", `{"p":{"type":"api","key":"\b\f\n\r\t\u00E9\u00e9\/"}}`, authfile.FormatOpencode,
			[]wantEntry{{"p", "api", map[string]string{"key": "\b\f\n\r\téé/"}, ""}}},
		{"opencode extra strings keep spaces and escapes", "{\"p\":{\"type\":\"api\",\"key\":\"k\",\"n\" : \"a \\\" } \\\\\" ,\n \"m\":[ \"\\u0020 x\" ]}}", authfile.FormatOpencode,
			[]wantEntry{{"p", "api", map[string]string{"key": "k"}, `{"n":"a \" } \\","m":["\u0020 x"]}`}}},
		{"opencode sorted by provider", `{"zeta":{"type":"api","key":"z"},"alpha":{"type":"api","key":"a"}}`, authfile.FormatOpencode,
			[]wantEntry{{"alpha", "api", map[string]string{"key": "a"}, ""}, {"zeta", "api", map[string]string{"key": "z"}, ""}}},
		{"opencode provider named tokens", `{"tokens":{"type":"api","key":"k"}}`, authfile.FormatOpencode,
			[]wantEntry{{"tokens", "api", map[string]string{"key": "k"}, ""}}},

		{"claude full", `{"claudeAiOauth":{"accessToken":"at","refreshToken":"rt","expiresAt":1766390400000,"scopes":["user:inference","user:profile"],"subscriptionType":"max"},"mcpOAuth":{"srv":{"accessToken":"m"}}}`, authfile.FormatClaude,
			[]wantEntry{{"anthropic", "oauth", map[string]string{"access": "at", "refresh": "rt", "expires": "1766390400000"},
				`{"scopes":["user:inference","user:profile"],"subscriptionType":"max","x-llm-agent-top-level":{"mcpOAuth":{"srv":{"accessToken":"m"}}}}`}}},
		{"claude minimal, expiry unknown", `{"claudeAiOauth":{"accessToken":"at","refreshToken":"rt"}}`, authfile.FormatClaude,
			[]wantEntry{{"anthropic", "oauth", map[string]string{"access": "at", "refresh": "rt", "expires": "0"}, ""}}},
		{"claude null expiry", `{"claudeAiOauth":{"accessToken":"at","refreshToken":"rt","expiresAt":null}}`, authfile.FormatClaude,
			[]wantEntry{{"anthropic", "oauth", map[string]string{"access": "at", "refresh": "rt", "expires": "0"}, ""}}},
		{"claude logged out", `{"claudeAiOauth":null}`, authfile.FormatClaude, nil},

		{"codex oauth with JWT", `{"OPENAI_API_KEY":null,"tokens":{"id_token":"idt","access_token":"` + accessJWT + `","refresh_token":"rt","account_id":"acct"},"last_refresh":"2025-12-22T00:00:00Z"}`, authfile.FormatCodex,
			[]wantEntry{{"openai", "oauth", map[string]string{"access": accessJWT, "refresh": "rt", "accountId": "acct", "expires": "1767225600000"},
				`{"id_token":"idt","last_refresh":"2025-12-22T00:00:00Z"}`}}},
		{"codex JWT with fractional exp", `{"tokens":{"access_token":"` + floatExpJWT + `","refresh_token":"rt"}}`, authfile.FormatCodex,
			[]wantEntry{{"openai", "oauth", map[string]string{"access": floatExpJWT, "refresh": "rt", "expires": "1767225600500"}, ""}}},
		{"codex opaque access token", `{"tokens":{"access_token":"opaque","refresh_token":"rt","account_id":null}}`, authfile.FormatCodex,
			[]wantEntry{{"openai", "oauth", map[string]string{"access": "opaque", "refresh": "rt", "expires": "0"}, ""}}},
		{"codex JWT without exp", `{"tokens":{"access_token":"` + jwt(`{"sub":"x"}`) + `","refresh_token":"rt"}}`, authfile.FormatCodex,
			[]wantEntry{{"openai", "oauth", map[string]string{"access": jwt(`{"sub":"x"}`), "refresh": "rt", "expires": "0"}, ""}}},
		{"codex JWT with bad payload", `{"tokens":{"access_token":"a.!!!.c","refresh_token":"rt"}}`, authfile.FormatCodex,
			[]wantEntry{{"openai", "oauth", map[string]string{"access": "a.!!!.c", "refresh": "rt", "expires": "0"}, ""}}},
		{"codex api key only", `{"OPENAI_API_KEY":"sk-proj-1","tokens":null,"last_refresh":null,"auth_mode":"apikey"}`, authfile.FormatCodex,
			[]wantEntry{{"openai", "api", map[string]string{"key": "sk-proj-1"}, `{"last_refresh":null,"x-llm-agent-top-level":{"auth_mode":"apikey"}}`}}},
		{"codex both", `{"OPENAI_API_KEY":"sk-proj-1","tokens":{"access_token":"a","refresh_token":"r","id_token":"i","new_field":1}}`, authfile.FormatCodex,
			[]wantEntry{
				{"openai", "oauth", map[string]string{"access": "a", "refresh": "r", "expires": "0"}, `{"id_token":"i","new_field":1}`},
				{"openai-api-key", "api", map[string]string{"key": "sk-proj-1"}, ""},
			}},
		{"codex empty key and tokens", `{"OPENAI_API_KEY":"","tokens":{"access_token":"a","refresh_token":"r"}}`, authfile.FormatCodex,
			[]wantEntry{{"openai", "oauth", map[string]string{"access": "a", "refresh": "r", "expires": "0"}, ""}}},
		{"codex logged out", `{"OPENAI_API_KEY":null,"tokens":null}`, authfile.FormatCodex, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			format, entries, err := authfile.Parse("test.json", []byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if format != tt.format {
				t.Errorf("format %q, want %q", format, tt.format)
			}
			checkEntries(t, entries, tt.want)
		})
	}
}

func TestParseErrors(t *testing.T) {
	const m = marker
	deep := strings.Repeat(`{"a":`, 100000) + "1" + strings.Repeat("}", 100000)
	tests := []struct {
		name, in, want string
	}{
		// JSON level.
		{"empty", ``, "invalid JSON at line 1, column 1: no JSON value (empty input)"},
		{"whitespace only", " \n\t", "no JSON value"},
		{"truncated in string", `{"a":{"type":"api","key":"` + m, `invalid JSON at line 1, column 26: unterminated string`},
		{"truncated after value", "{\n\"a\":{\"type\":\"api\",\"key\":\"" + m + "\"", "invalid JSON at line 2, column 39: unexpected end of input"},
		{"truncated after colon", `{"a":`, "unexpected end of input"},
		{"trailing garbage", `{}` + m, "line 1, column 3: unexpected data after the JSON value"},
		{"two objects", `{} {}`, "unexpected data after the JSON value"},
		{"top-level array", `["` + m + `"]`, "want a JSON object at the top level, got array"},
		{"top-level string", `"` + m + `"`, "want a JSON object at the top level, got string"},
		{"top-level null", `null`, "got null"},
		{"bare word", m, "unexpected character, want a JSON value"},
		{"single quotes", `{'a':1}`, "want a string object key"},
		{"trailing comma", `{"a":{"type":"api","key":"` + m + `"},}`, "want a string object key"},
		{"missing colon", `{"a" 1}`, "want ':' after object key"},
		{"missing comma", `{"a":1 "b":2}`, "want ',' or '}'"},
		{"bad array", `{"a":[1 2]}`, "want ',' or ']'"},
		{"bad number", `{"a":-` + m + `}`, "invalid number"},
		{"leading zero", `{"a":01}`, "want ',' or '}'"},
		{"bad literal", `{"a":tru}`, "unexpected character"},
		{"invalid escape", `{"a":{"type":"api","key":"` + m + `\q"}}`, "invalid escape in string"},
		{"bad unicode escape", `{"a":{"type":"api","key":"` + m + `\u12x4"}}`, `invalid \u escape`},
		{"lone high surrogate", `{"a":{"type":"api","key":"` + m + `\ud800"}}`, "unpaired UTF-16 surrogate"},
		{"lone low surrogate", `{"a":{"type":"api","key":"` + m + `\udc00x"}}`, "unpaired UTF-16 surrogate"},
		{"control character", "{\"a\":{\"type\":\"api\",\"key\":\"" + m + "\x01\"}}", "control character in string"},
		{"non-UTF-8 in value", "{\"a\":{\"type\":\"api\",\"key\":\"" + m + "\xff\"}}", "invalid JSON at line 1, column 39: invalid UTF-8"},
		{"non-UTF-8 overlong", "{\"a\":{\"type\":\"api\",\"key\":\"" + m + "\xc0\xaf\"}}", "invalid UTF-8"},
		{"UTF-8 encoded surrogate", "{\"a\":{\"type\":\"api\",\"key\":\"" + m + "\xed\xa0\x80\"}}", "invalid UTF-8"},
		{"UTF-16 file", "\xff\xfe{\x00}\x00", "invalid UTF-8"},
		{"duplicate provider", `{"a":{"type":"api","key":"` + m + `1"},"a":{"type":"api","key":"` + m + `2"}}`, `duplicate object key "a"`},
		{"duplicate field", `{"a":{"type":"api","key":"` + m + `1","key":"` + m + `2"}}`, `duplicate object key "key"`},
		{"duplicate in big object", `{"a":{"type":"api","key":"` + m + `",` + manyMembers(40) + `,"k7":0}}`, `duplicate object key "k7"`},
		{"depth bomb", deep, "nested too deeply"},
		{"array depth bomb", `{"a":` + strings.Repeat("[", 1<<20), "nested too deeply"},

		// opencode.
		{"opencode entry not object", `{"anthropic":"` + m + `"}`, `"anthropic": want an object, got string`},
		{"opencode entry null", `{"anthropic":null}`, `"anthropic": want an object, got null`},
		{"opencode missing type", `{"anthropic":{"key":"` + m + `"}}`, `"anthropic.type": required field is missing`},
		{"opencode type not string", `{"anthropic":{"type":1,"key":"` + m + `"}}`, `"anthropic.type": want a string, got number`},
		{"opencode unknown type", `{"anthropic":{"type":"` + m + `","key":"` + m + `"}}`, `"anthropic.type": unknown credential type`},
		{"opencode api missing key", `{"openrouter":{"type":"api","token":"` + m + `"}}`, `"openrouter.key": required field is missing`},
		{"opencode api key number", `{"openrouter":{"type":"api","key":12345}}`, `"openrouter.key": want a string, got number`},
		{"opencode api key null", `{"openrouter":{"type":"api","key":null}}`, `"openrouter.key": want a string, got null`},
		{"opencode oauth missing refresh", `{"anthropic":{"type":"oauth","access":"` + m + `","expires":1}}`, `"anthropic.refresh": required field is missing`},
		{"opencode oauth missing access", `{"anthropic":{"type":"oauth","refresh":"` + m + `","expires":1}}`, `"anthropic.access": required field is missing`},
		{"opencode oauth missing expires", `{"anthropic":{"type":"oauth","refresh":"` + m + `","access":"` + m + `"}}`, `"anthropic.expires": required field is missing`},
		{"opencode oauth expires string", `{"anthropic":{"type":"oauth","refresh":"` + m + `","access":"` + m + `","expires":"` + m + `"}}`, `"anthropic.expires": want a number (epoch milliseconds), got string`},
		{"opencode oauth expires fraction", `{"anthropic":{"type":"oauth","refresh":"` + m + `","access":"` + m + `","expires":1.5}}`, `"anthropic.expires": want a whole number`},
		{"opencode oauth expires huge", `{"anthropic":{"type":"oauth","refresh":"` + m + `","access":"` + m + `","expires":99999999999999999999}}`, `"anthropic.expires": number out of range`},
		{"opencode oauth expires 1e400", `{"anthropic":{"type":"oauth","refresh":"` + m + `","access":"` + m + `","expires":1e400}}`, `"anthropic.expires": number out of range`},
		{"opencode oauth accountId object", `{"openai":{"type":"oauth","refresh":"` + m + `","access":"` + m + `","expires":1,"accountId":{}}}`, `"openai.accountId": want a string, got object`},
		{"opencode wellknown missing token", `{"w":{"type":"wellknown","key":"` + m + `"}}`, `"w.token": required field is missing`},
		{"opencode wellknown token array", `{"w":{"type":"wellknown","key":"K","token":["` + m + `"]}}`, `"w.token": want a string, got array`},
		{"opencode empty provider", `{"":{"type":"api","key":"` + m + `"}}`, `"<empty key>": empty provider id`},
		{"opencode odd provider key", `{"a\nb":{"type":"api","key":1}}`, `"<key with special characters>.key": want a string, got number`},
		{"opencode long provider key", `{"` + strings.Repeat("p", 65) + `":{"type":"api"}}`, `"<long key>.key": required field is missing`},
		{"opencode second entry bad", `{"a":{"type":"api","key":"` + m + `"},"b":{"type":"api"}}`, `"b.key": required field is missing`},

		// Claude.
		{"claude not object", `{"claudeAiOauth":"` + m + `"}`, `"claudeAiOauth": want an object, got string`},
		{"claude missing access", `{"claudeAiOauth":{"refreshToken":"` + m + `"}}`, `"claudeAiOauth.accessToken": required field is missing`},
		{"claude missing refresh", `{"claudeAiOauth":{"accessToken":"` + m + `"}}`, `"claudeAiOauth.refreshToken": required field is missing`},
		{"claude access number", `{"claudeAiOauth":{"accessToken":7,"refreshToken":"` + m + `"}}`, `"claudeAiOauth.accessToken": want a string, got number`},
		{"claude expiresAt string", `{"claudeAiOauth":{"accessToken":"` + m + `","refreshToken":"` + m + `","expiresAt":"` + m + `"}}`, `"claudeAiOauth.expiresAt": want a number (epoch milliseconds), got string`},
		{"claude reserved key", `{"claudeAiOauth":{"accessToken":"` + m + `","refreshToken":"` + m + `","x-llm-agent-top-level":1}}`, `"claudeAiOauth.x-llm-agent-top-level": field name is reserved`},

		// Codex.
		{"codex key number", `{"OPENAI_API_KEY":123,"tokens":null}`, `"OPENAI_API_KEY": want a string or null, got number`},
		{"codex tokens string", `{"OPENAI_API_KEY":null,"tokens":"` + m + `"}`, `"tokens": want an object or null, got string`},
		{"codex access number", `{"tokens":{"access_token":1,"refresh_token":"` + m + `"}}`, `"tokens.access_token": want a string, got number`},
		{"codex missing refresh", `{"tokens":{"access_token":"` + m + `"}}`, `"tokens.refresh_token": required field is missing`},
		{"codex missing access", `{"tokens":{"refresh_token":"` + m + `"}}`, `"tokens.access_token": required field is missing`},
		{"codex account_id bool", `{"tokens":{"access_token":"` + m + `","refresh_token":"` + m + `","account_id":true}}`, `"tokens.account_id": want a string, got boolean`},
		{"codex last_refresh clash", `{"tokens":{"access_token":"` + m + `","refresh_token":"` + m + `","last_refresh":1},"last_refresh":2}`, `"tokens.last_refresh": clashes`},
		{"codex reserved key", `{"tokens":{"access_token":"` + m + `","refresh_token":"` + m + `","x-llm-agent-top-level":1}}`, `field name is reserved`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const name = "/home/u/.config/auth.json"
			format, entries, err := authfile.Parse(name, []byte(tt.in))
			if err == nil {
				t.Fatalf("no error; format %q, %d entries", format, len(entries))
			}
			checkErr(t, err, name, tt.want)
			if entries != nil || format != "" {
				t.Errorf("on error got format %q and %d entries", format, len(entries))
			}
		})
	}
}

func manyMembers(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"k` + strconv.Itoa(i) + `":0`)
	}
	return b.String()
}

// checkErr asserts the error contract: one line, starts with name, says
// want, and holds no secret from the input.
func checkErr(t *testing.T, err error, name, want string) {
	t.Helper()
	msg := err.Error()
	if strings.ContainsAny(msg, "\n\r") {
		t.Errorf("error is not one line: %q", msg)
	}
	if !strings.HasPrefix(msg, name+": ") {
		t.Errorf("error %q does not start with %q", msg, name+": ")
	}
	if !strings.Contains(msg, want) {
		t.Errorf("error %q does not contain %q", msg, want)
	}
	if strings.Contains(msg, marker) || strings.Contains(msg, "MARKER") {
		t.Errorf("error leaks a secret: %q", msg)
	}
}

func TestParseErrorNameSanitized(t *testing.T) {
	_, _, err := authfile.Parse("evil\nname", []byte(`[]`))
	if err == nil || strings.Contains(err.Error(), "\n") || !strings.HasPrefix(err.Error(), `"evil\nname": `) {
		t.Errorf("got %v", err)
	}
	_, _, err = authfile.Parse("", []byte(`[]`))
	if err == nil || !strings.HasPrefix(err.Error(), "<input>: ") {
		t.Errorf("got %v", err)
	}
}

func TestReadFileSamples(t *testing.T) {
	tests := []struct {
		file   string
		format authfile.Format
		want   []wantEntry
	}{
		{"opencode.json", authfile.FormatOpencode, []wantEntry{
			{"anthropic", "oauth", map[string]string{"refresh": "sk-ant-ort01-FAKE-opencode-refresh", "access": "sk-ant-oat01-FAKE-opencode-access", "expires": "1766390400000"}, ""},
			{"example-wellknown", "wellknown", map[string]string{"key": "EXAMPLE_API_TOKEN", "token": "FAKE-wellknown-token-0123456789"}, ""},
			{"github-copilot", "oauth", map[string]string{"refresh": "ghu_FAKEcopilotRefreshToken0123", "access": "tid=FAKE;exp=1766390400;sku=free", "expires": "1766390400000", "enterpriseUrl": "github.example.com"}, ""},
			{"openai", "oauth", map[string]string{"refresh": "rt_FAKE-opencode-openai-refresh", "access": "FAKE.openai.access", "expires": "1767225600000", "accountId": "00000000-fake-acct-0000-000000000000"}, ""},
			{"openrouter", "api", map[string]string{"key": "sk-or-v1-FAKE-openrouter-key-0123456789"}, ""},
		}},
		{"claude.json", authfile.FormatClaude, []wantEntry{
			{"anthropic", "oauth", map[string]string{"access": "sk-ant-oat01-FAKE-claude-access-token-0123456789", "refresh": "sk-ant-ort01-FAKE-claude-refresh-token-0123456789", "expires": "1766390400000"},
				`{"scopes":["user:inference","user:profile"],"subscriptionType":"max"}`},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			format, entries, err := authfile.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if format != tt.format {
				t.Errorf("format %q, want %q", format, tt.format)
			}
			checkEntries(t, entries, tt.want)
		})
	}

	// Codex: the tokens are long, so check the interesting parts.
	format, entries, err := authfile.ReadFile("testdata/codex.json")
	if err != nil {
		t.Fatal(err)
	}
	if format != authfile.FormatCodex || len(entries) != 1 {
		t.Fatalf("codex: format %q, %d entries", format, len(entries))
	}
	e := entries[0]
	if e.Provider != "openai" || e.Kind != "oauth" ||
		string(e.Fields["expires"]) != "1767225600000" ||
		string(e.Fields["refresh"]) != "rt_FAKE-codex-refresh-token-0123456789" ||
		string(e.Fields["accountId"]) != "00000000-fake-acct-0000-000000000000" ||
		!bytes.HasPrefix(e.Fields["access"], []byte("eyJ")) {
		t.Errorf("codex entry: %s/%s fields %q", e.Provider, e.Kind, e.Fields)
	}
	var extra map[string]any
	if err := json.Unmarshal(e.Extra, &extra); err != nil {
		t.Fatal(err)
	}
	if len(extra) != 2 || extra["last_refresh"] != "2025-12-22T00:00:00.000000Z" || !strings.HasPrefix(extra["id_token"].(string), "eyJ") {
		t.Errorf("codex extra: %v", extra)
	}
}

func TestReadFileErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Exactly at the limit is fine: a valid object padded with spaces.
	atLimit := append([]byte("{}"), bytes.Repeat([]byte(" "), authfile.MaxFileSize-2)...)
	if _, _, err := authfile.ReadFile(write("at-limit.json", atLimit)); err != nil {
		t.Errorf("file of exactly MaxFileSize: %v", err)
	}

	sparse := filepath.Join(dir, "sparse.json")
	f, err := os.Create(sparse)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 40); err != nil { // 1 TiB, no blocks
		t.Logf("1 TiB sparse file not supported (%v); using 64 MiB", err)
		if err := f.Truncate(64 << 20); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()

	link := filepath.Join(dir, "zero.json")
	haveDevZero := true
	if _, err := os.Stat("/dev/zero"); err != nil {
		haveDevZero = false
	} else if err := os.Symlink("/dev/zero", link); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, path, want string
		is               error
		skip             bool
	}{
		{"over limit by one", write("big.json", append(atLimit, ' ')), "file too large (1048577 bytes, the limit is 1048576)", authfile.ErrTooLarge, false},
		{"huge sparse file", sparse, "file too large", authfile.ErrTooLarge, false},
		{"symlink to /dev/zero", link, "not a regular file (character device)", authfile.ErrNotRegular, !haveDevZero},
		{"directory", dir, "not a regular file (directory)", authfile.ErrNotRegular, false},
		{"missing", filepath.Join(dir, "nope.json"), "no such file or directory", fs.ErrNotExist, false},
		{"dangling symlink", mkSymlink(t, filepath.Join(dir, "nope2"), filepath.Join(dir, "dangling.json")), "no such file or directory", fs.ErrNotExist, false},
		{"syntax error via ReadFile", write("bad.json", []byte("{\"a\":{\"type\":\"api\",\"key\":\""+marker+"\n")), "control character in string", nil, false},
		{"non-UTF-8 via ReadFile", write("latin1.json", []byte("{\"a\":{\"type\":\"api\",\"key\":\"caf\xe9"+marker+"\"}}")), "invalid UTF-8", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.skip {
				t.Skip("not available here")
			}
			start := time.Now()
			format, entries, err := authfile.ReadFile(tt.path)
			if err == nil {
				t.Fatalf("no error; format %q, %d entries", format, len(entries))
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %v", d)
			}
			checkErr(t, err, tt.path, tt.want)
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
			if entries != nil || format != "" {
				t.Errorf("on error got format %q and %d entries", format, len(entries))
			}
		})
	}
}

func mkSymlink(t *testing.T, target, link string) string {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	return link
}

func TestReadFileUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root can read anything")
	}
	p := filepath.Join(t.TempDir(), "auth.json")
	if err := os.WriteFile(p, []byte(`{}`), 0); err != nil {
		t.Fatal(err)
	}
	_, _, err := authfile.ReadFile(p)
	if err == nil {
		t.Fatal("no error")
	}
	checkErr(t, err, p, "open: permission denied")
	if !errors.Is(err, fs.ErrPermission) {
		t.Errorf("error %v is not fs.ErrPermission", err)
	}
}

func TestFilter(t *testing.T) {
	_, entries, err := authfile.ReadFile("testdata/opencode.json")
	if err != nil {
		t.Fatal(err)
	}
	providers := func(es []authfile.Entry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.Provider)
		}
		return out
	}
	tests := []struct {
		name    string
		entries []authfile.Entry
		keep    []string
		want    []string
		wantErr string
	}{
		{"all when empty", entries, nil, []string{"anthropic", "example-wellknown", "github-copilot", "openai", "openrouter"}, ""},
		{"subset keeps file order", entries, []string{"openrouter", "anthropic"}, []string{"anthropic", "openrouter"}, ""},
		{"repeated request", entries, []string{"openai", "openai"}, []string{"openai"}, ""},
		{"absent provider", entries, []string{"anthropic", "mistral"}, nil,
			`authfile: no credential for provider "mistral" (the file has "anthropic", "example-wellknown", "github-copilot", "openai", "openrouter")`},
		{"empty file", nil, []string{"anthropic"}, nil, `authfile: no credential for provider "anthropic": the file has no credentials`},
		{"empty file, no request", nil, nil, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := authfile.Filter(tt.entries, tt.keep)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error %v, want %s", err, tt.wantErr)
				}
				if got != nil {
					t.Errorf("entries returned with error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p := providers(got); !reflect.DeepEqual(p, tt.want) {
				t.Errorf("got %q, want %q", p, tt.want)
			}
		})
	}
}

// jsonEqual compares two JSON texts as values.
func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("%v in %s", err, a)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
	return reflect.DeepEqual(va, vb)
}

func TestRoundTrip(t *testing.T) {
	inputs := map[string][]byte{}
	data, err := os.ReadFile("testdata/opencode.json")
	if err != nil {
		t.Fatal(err)
	}
	inputs["testdata/opencode.json"] = data
	inputs["with extras"] = []byte(`{
		"x": {"note": "kept", "type": "oauth", "refresh": "r\u00e9", "nested": {"a": [1, 2.5e3, true, null]},
		      "access": "a\"\\\n", "expires": 1766390400000, "accountId": "acc", "token": "belongs-to-wellknown"},
		"y": {"type": "wellknown", "key": "K", "token": "T", "empty": {}}
	}`)
	for name, data := range inputs {
		t.Run(name, func(t *testing.T) {
			_, entries, err := authfile.Parse(name, data)
			if err != nil {
				t.Fatal(err)
			}
			var orig map[string]json.RawMessage
			if err := json.Unmarshal(data, &orig); err != nil {
				t.Fatal(err)
			}
			if len(orig) != len(entries) {
				t.Fatalf("%d entries for %d providers", len(entries), len(orig))
			}
			for _, e := range entries {
				out, err := authfile.MarshalOpencodeEntry(e)
				if err != nil {
					t.Fatalf("%s: %v", e.Provider, err)
				}
				if !jsonEqual(t, out, orig[e.Provider]) {
					t.Errorf("%s:\n got %s\nwant %s", e.Provider, out, orig[e.Provider])
				}
				if !bytes.HasPrefix(out, []byte(`{"type":"`+e.Kind+`"`)) {
					t.Errorf("%s: type is not first: %s", e.Provider, out)
				}
			}
		})
	}
}

func TestMarshalOtherFormats(t *testing.T) {
	for file, want := range map[string]string{
		"testdata/claude.json": `{"type":"oauth","refresh":"sk-ant-ort01-FAKE-claude-refresh-token-0123456789","access":"sk-ant-oat01-FAKE-claude-access-token-0123456789","expires":1766390400000,"scopes":["user:inference","user:profile"],"subscriptionType":"max"}`,
	} {
		_, entries, err := authfile.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		out, err := authfile.MarshalOpencodeEntry(entries[0])
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != want {
			t.Errorf("%s:\n got %s\nwant %s", file, out, want)
		}
	}
	_, entries, err := authfile.Parse("codex", []byte(`{"OPENAI_API_KEY":"sk-1","tokens":{"access_token":"a","refresh_token":"r","account_id":"acc"},"last_refresh":"t","other":[1]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{"type":"oauth","refresh":"r","access":"a","expires":0,"accountId":"acc","last_refresh":"t","x-llm-agent-top-level":{"other":[1]}}`,
		`{"type":"api","key":"sk-1"}`,
	}
	for i, e := range entries {
		out, err := authfile.MarshalOpencodeEntry(e)
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != want[i] {
			t.Errorf("codex %s:\n got %s\nwant %s", e.Provider, out, want[i])
		}
	}
}

func TestMarshalEscapes(t *testing.T) {
	e := authfile.Entry{Provider: "p", Kind: "api", Fields: map[string][]byte{"key": []byte("q\"b\\s\x00\x1f\b\f\n\r\t<&>é\u2028")}}
	out, err := authfile.MarshalOpencodeEntry(e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"api","key":"q\"b\\s\u0000\u001f\b\f\n\r\t<&>é` + "\u2028" + `"}`
	if string(out) != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
	var back struct{ Key string }
	if err := json.Unmarshal(out, &back); err != nil || back.Key != string(e.Fields["key"]) {
		t.Errorf("encoding/json reads back %q, %v", back.Key, err)
	}
}

func TestMarshalErrors(t *testing.T) {
	s := []byte(marker)
	oauth := func(extra string, mod func(map[string][]byte)) authfile.Entry {
		f := map[string][]byte{"refresh": s, "access": s, "expires": []byte("1")}
		if mod != nil {
			mod(f)
		}
		var x []byte
		if extra != "" {
			x = []byte(extra)
		}
		return authfile.Entry{Provider: "anthropic", Kind: "oauth", Fields: f, Extra: x}
	}
	tests := []struct {
		name string
		e    authfile.Entry
		want string
	}{
		{"unknown kind", authfile.Entry{Provider: "p", Kind: "bearer", Fields: map[string][]byte{"key": s}}, `authfile: entry "p": unknown kind "bearer"`},
		{"missing field", oauth("", func(f map[string][]byte) { delete(f, "access") }), `authfile: entry "anthropic": required field "access" is missing`},
		{"foreign field", oauth("", func(f map[string][]byte) { f["key"] = s }), `field "key" does not belong to kind "oauth"`},
		{"bad expires", oauth("", func(f map[string][]byte) { f["expires"] = []byte("12" + marker) }), `field "expires": want decimal epoch milliseconds`},
		{"non-UTF-8", oauth("", func(f map[string][]byte) { f["access"] = []byte(marker + "\xff") }), `field "access": not valid UTF-8`},
		{"extra not JSON", oauth(`{"a":"`+marker, nil), `Extra: invalid JSON at byte 5: unterminated string`},
		{"extra not object", oauth(`["`+marker+`"]`, nil), `Extra: want a JSON object, got array`},
		{"extra clashes with type", oauth(`{"type":"`+marker+`"}`, nil), `Extra member "type" clashes with a known field`},
		{"extra clashes with field", oauth(`{"access":"`+marker+`"}`, nil), `Extra member "access" clashes`},
		{"nil fields", authfile.Entry{Provider: "p", Kind: "api"}, `required field "key" is missing`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := authfile.MarshalOpencodeEntry(tt.e)
			if err == nil {
				t.Fatalf("no error: %s", out)
			}
			checkErr(t, err, "authfile", tt.want)
		})
	}
	// Extra may name a field the kind has but the entry lacks.
	if _, err := authfile.MarshalOpencodeEntry(oauth(`{"accountId":null}`, nil)); err != nil {
		t.Errorf("optional field in Extra: %v", err)
	}
}

func TestWipe(t *testing.T) {
	_, entries, err := authfile.ReadFile("testdata/claude.json")
	if err != nil {
		t.Fatal(err)
	}
	e := entries[0]
	var held [][]byte
	for _, v := range e.Fields {
		held = append(held, v)
	}
	held = append(held, e.Extra)
	e.Wipe()
	for _, b := range held {
		if len(b) == 0 || bytes.ContainsFunc(b, func(r rune) bool { return r != 0 }) {
			t.Errorf("not wiped: %q", b)
		}
	}
	if e.Fields != nil || e.Extra != nil {
		t.Errorf("Wipe left references: %v %v", e.Fields, e.Extra)
	}
	e.Wipe() // idempotent
	var zero authfile.Entry
	zero.Wipe()
}

// TestParseDoesNotAlias checks that entries do not share memory with the
// input, so callers can wipe the file buffer right after Parse.
func TestParseDoesNotAlias(t *testing.T) {
	data := []byte(`{"a":{"type":"api","key":"plain","x":"y"}}`)
	_, entries, err := authfile.Parse("t", data)
	if err != nil {
		t.Fatal(err)
	}
	clear(data)
	if string(entries[0].Fields["key"]) != "plain" || string(entries[0].Extra) != `{"x":"y"}` {
		t.Errorf("entry changed when input was wiped: %q %q", entries[0].Fields["key"], entries[0].Extra)
	}
}

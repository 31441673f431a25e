package keychain_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/internal/authfile"
	"github.com/llm-agent/llm-agent/internal/keychain"
	"github.com/llm-agent/llm-agent/internal/keychain/keychaintest"
	"github.com/llm-agent/llm-agent/protocol"
)

// This test binary is also the security stand-in (keychaintest.Setup).
func init() { keychaintest.Dispatch() }

var item = protocol.KeychainItem{Service: keychain.DefaultService, Account: "alice"}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestServiceName(t *testing.T) {
	for _, tc := range []struct{ dir, want string }{
		{"", "Claude Code-credentials"},
		// printf %s DIR | sha256sum | cut -c1-8
		{"/Users/alice/.claude-work", "Claude Code-credentials-be865d75"},
		{"/Users/alice/.claude-work/", "Claude Code-credentials-95672096"}, // as given: no trimming
		{"~/.claude-work", "Claude Code-credentials-250d1b22"},             // no ~ expansion
		{"/Users/alice/.claude", "Claude Code-credentials-5ac5e874"},       // the default dir, named: hashed
	} {
		if got := keychain.ServiceName(tc.dir); got != tc.want {
			t.Errorf("ServiceName(%q) = %q, want %q", tc.dir, got, tc.want)
		}
	}
}

func TestConfigDir(t *testing.T) {
	for _, tc := range []struct{ secure, config, want string }{
		{"", "", ""},
		{"", "/c", "/c"},
		{"/s", "/c", "/s"},
		{"/s", "", "/s"},
	} {
		env := map[string]string{"CLAUDE_SECURESTORAGE_CONFIG_DIR": tc.secure, "CLAUDE_CONFIG_DIR": tc.config}
		if got := keychain.ConfigDir(func(k string) string { return env[k] }); got != tc.want {
			t.Errorf("ConfigDir(%q, %q) = %q, want %q", tc.secure, tc.config, got, tc.want)
		}
	}
}

func TestAccountName(t *testing.T) {
	for _, tc := range []struct{ user, want string }{
		{"alice", "alice"},
		{"a.b_c-9", "a.b_c-9"},
		{"first@example.com", "claude-code-user"},
		{"ünïcode", "claude-code-user"},
		{"with space", "claude-code-user"},
		{"", "claude-code-user"},
	} {
		if got := keychain.AccountName(tc.user); got != tc.want {
			t.Errorf("AccountName(%q) = %q, want %q", tc.user, got, tc.want)
		}
	}
}

// login is a Claude Code login as the item holds it; pretty printing puts
// newlines in it, which the tool prints as hex.
func login(refresh, access string, pretty bool) []byte {
	if pretty {
		return []byte(fmt.Sprintf("{\n  \"claudeAiOauth\": {\n    \"accessToken\": %q,\n    \"refreshToken\": %q,\n    \"expiresAt\": 1700000000000,\n    \"scopes\": [\"user:inference\", \"user:profile\"],\n    \"subscriptionType\": \"max\"\n  },\n  \"mcpOAuth\": {\"srv|1\": {\"accessToken\": \"mcp-FAKE\", \"expiresAt\": 0}}\n}", access, refresh))
	}
	return []byte(fmt.Sprintf(`{"claudeAiOauth":{"accessToken":%q,"refreshToken":%q,"expiresAt":1700000000000,"scopes":["user:inference"]},"mcpOAuth":{"srv|1":{"accessToken":"mcp-FAKE"}}}`, access, refresh))
}

func TestRead(t *testing.T) {
	for _, tc := range []struct {
		name     string
		stored   []byte // nil: no item
		fault    string
		want     []byte
		errIs    error
		errHas   string
		errLacks string
	}{
		{name: "printable JSON", stored: login("rt-FAKE", "at-FAKE", false), want: login("rt-FAKE", "at-FAKE", false)},
		{name: "pretty JSON comes as hex", stored: login("rt-FAKE", "at-FAKE", true), want: login("rt-FAKE", "at-FAKE", true)},
		{name: "non-ASCII comes as hex", stored: []byte(`{"claudeAiOauth":null,"n":"é"}`), want: []byte(`{"claudeAiOauth":null,"n":"é"}`)},
		{name: "not logged in", errIs: keychain.ErrNotFound,
			errHas: `no Claude Code login in the macOS Keychain (item "Claude Code-credentials", account "alice"): log in with claude, then /login`},
		{name: "locked", stored: []byte("{}"), fault: "locked", errHas: "exited with status 36 (the login Keychain is locked"},
		{name: "not JSON", stored: []byte("hunter2-SECRET"), errHas: "does not hold a JSON object", errLacks: "hunter2"},
		{name: "hex of not JSON", stored: []byte("deadbeef"), errHas: "does not hold a JSON object", errLacks: "deadbeef"},
		{name: "empty", stored: []byte{}, errHas: "is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := keychaintest.Setup(t)
			if tc.stored != nil {
				k.Put(item.Service, item.Account, tc.stored)
			}
			t.Setenv(keychaintest.EnvFault, tc.fault)
			got, err := keychain.Read(ctx(t), item)
			if tc.want != nil {
				if err != nil || !bytes.Equal(got, tc.want) {
					t.Fatalf("Read = %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Read = %q, want an error", got)
			}
			if tc.errIs != nil && !errors.Is(err, tc.errIs) {
				t.Errorf("error %v is not %v", err, tc.errIs)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.errHas) || strings.Contains(msg, "\n") ||
				(tc.errLacks != "" && strings.Contains(msg, tc.errLacks)) {
				t.Errorf("error %q: want one line holding %q and not %q", msg, tc.errHas, tc.errLacks)
			}
		})
	}
}

func TestReadNoTool(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if _, err := keychain.Read(ctx(t), item); err == nil || !strings.Contains(err.Error(), "security tool is not on PATH") {
		t.Errorf("Read without security on PATH: %v", err)
	}
}

func TestWrite(t *testing.T) {
	// The longest content whose line security -i still reads whole.
	head := len(`add-generic-password -U -a "alice" -s "Claude Code-credentials" -X "`) + len("\"")
	longest := (keychain.MaxLine - head) / 2
	fill := func(n int) []byte { return []byte(`{"x":"` + strings.Repeat("y", n-8) + `"}`) }
	for _, tc := range []struct {
		name   string
		item   protocol.KeychainItem
		data   []byte
		before []byte // the item's content before; nil: none
		fault  string
		errHas string
	}{
		{name: "new item", item: item, data: login("rt-1", "at-1", false)},
		{name: "update", item: item, data: login("rt-2", "at-2", true), before: login("rt-1", "at-1", false)},
		{name: "hashed service", item: protocol.KeychainItem{Service: keychain.ServiceName("/Users/alice/.claude-work"), Account: "alice"}, data: []byte("{}")},
		{name: "longest line", item: item, data: fill(longest)},
		{name: "line too long", item: item, data: fill(longest + 1), errHas: "security -i reads at most 4094"},
		{name: "read back differs", item: item, data: []byte(`{"a":"b"}`), fault: "mangle", errHas: "does not hold what was written"},
		{name: "lying tool, new item", item: item, data: []byte(`{"a":"b"}`), fault: "drop", errHas: "reading back what was written"},
		{name: "lying tool, update", item: item, data: login("rt-2", "at-2", false), before: login("rt-1", "at-1", false), fault: "drop", errHas: "does not hold what was written"},
		{name: "locked", item: item, data: []byte(`{"a":"b"}`), fault: "locked", errHas: "exited with status 36"},
		{name: "single quote and spaces", item: protocol.KeychainItem{Service: "Claude Code-credentials 'x' -s y", Account: "o'brien"}, data: []byte(`{"a":"b"}`)},
		{name: "longest names", item: protocol.KeychainItem{Service: strings.Repeat("s", protocol.MaxKeychainText), Account: strings.Repeat("a", protocol.MaxKeychainText)}, data: []byte(`{"a":"b"}`)},
		{name: "quote in service", item: protocol.KeychainItem{Service: `a" -s "b`, Account: "alice"}, data: []byte("{}"), errHas: "could misread"},
		{name: "backslash in account", item: protocol.KeychainItem{Service: "s", Account: `a\`}, data: []byte("{}"), errHas: "could misread"},
		{name: "non-ASCII account", item: protocol.KeychainItem{Service: "s", Account: "é"}, data: []byte("{}"), errHas: "could misread"},
		{name: "newline in service", item: protocol.KeychainItem{Service: "s\nfind-generic-password", Account: "a"}, data: []byte("{}"), errHas: "could misread"},
		{name: "empty account", item: protocol.KeychainItem{Service: "s"}, data: []byte("{}"), errHas: "account is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := keychaintest.Setup(t)
			if tc.before != nil {
				k.Put(tc.item.Service, tc.item.Account, tc.before)
			}
			t.Setenv(keychaintest.EnvFault, tc.fault)
			err := keychain.Write(ctx(t), tc.item, tc.data)
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("Write: %v, want an error holding %q", err, tc.errHas)
				}
				if got, ok := k.Get(tc.item.Service, tc.item.Account); tc.fault == "" && ok && !bytes.Equal(got, tc.before) {
					t.Errorf("a refused write changed the item")
				}
				return
			}
			if err != nil {
				t.Fatalf("Write: %v", err)
			}
			if got, _ := k.Get(tc.item.Service, tc.item.Account); !bytes.Equal(got, tc.data) {
				t.Errorf("the item holds %q, want %q", got, tc.data)
			}
			argv := k.Argv()
			if len(argv) != 2 || strings.Join(argv[0][1:], " ") != "-i" || argv[1][1] != "find-generic-password" {
				t.Errorf("argv log %q: want security -i, then the read back", argv)
			}
		})
	}
}

func TestWriteBack(t *testing.T) {
	update := func(prev string) authfile.Update {
		return authfile.Update{Access: []byte("at-NEW"), Refresh: []byte("rt-NEW"), Expires: 1800000000000, Previous: []byte(prev)}
	}
	for _, tc := range []struct {
		name   string
		before []byte
		u      authfile.Update
		want   []byte // the item after; nil: unchanged
		errIs  error
	}{
		{name: "compact", before: login("rt-OLD", "at-OLD", false), u: update("rt-OLD"),
			want: bytes.Replace(bytes.Replace(bytes.Replace(login("rt-OLD", "at-OLD", false), []byte("rt-OLD"), []byte("rt-NEW"), 1),
				[]byte("at-OLD"), []byte("at-NEW"), 1), []byte("1700000000000"), []byte("1800000000000"), 1)},
		{name: "pretty (hex both ways)", before: login("rt-OLD", "at-OLD", true), u: update("rt-OLD"),
			want: bytes.Replace(bytes.Replace(bytes.Replace(login("rt-OLD", "at-OLD", true), []byte("rt-OLD"), []byte("rt-NEW"), 1),
				[]byte("at-OLD"), []byte("at-NEW"), 1), []byte("1700000000000"), []byte("1800000000000"), 1)},
		{name: "a new login meanwhile", before: login("rt-OTHER", "at-OTHER", false), u: update("rt-OLD"), errIs: authfile.ErrEntryChanged},
		{name: "logged out", u: update("rt-OLD"), errIs: keychain.ErrNotFound},
		{name: "only mcpOAuth left", before: []byte(`{"mcpOAuth":{}}`), u: update("rt-OLD"), errIs: authfile.ErrNoEntry},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := keychaintest.Setup(t)
			if tc.before != nil {
				k.Put(item.Service, item.Account, tc.before)
			}
			err := keychain.WriteBack(ctx(t), item, tc.u)
			got, _ := k.Get(item.Service, item.Account)
			if tc.errIs != nil {
				if !errors.Is(err, tc.errIs) {
					t.Fatalf("WriteBack: %v, want %v", err, tc.errIs)
				}
				if !bytes.Equal(got, tc.before) {
					t.Errorf("a refused write-back changed the item")
				}
				for _, v := range []string{"rt-", "at-", "mcp-"} {
					if strings.Contains(err.Error(), v) {
						t.Errorf("error %q holds a value", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("WriteBack: %v", err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Errorf("the item holds\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestParseLogin(t *testing.T) {
	for _, tc := range []struct {
		name    string
		data    string
		entries int
		errHas  string
	}{
		{"login", string(login("rt-FAKE", "at-FAKE", true)), 1, ""},
		{"logged out, mcpOAuth left", `{"mcpOAuth":{"srv":{"accessToken":"mcp-FAKE"}}}`, 0, ""},
		{"login null", `{"claudeAiOauth":null}`, 0, ""},
		{"not JSON", `{"claudeAiOauth":`, 0, "does not hold valid JSON"},
		{"login without refresh token", `{"claudeAiOauth":{"accessToken":"at-FAKE"}}`, 0, "refreshToken"},
	} {
		entries, err := keychain.ParseLogin(item, []byte(tc.data))
		switch {
		case tc.errHas != "" && (err == nil || !strings.Contains(err.Error(), tc.errHas)):
			t.Errorf("%s: %v, want an error holding %q", tc.name, err, tc.errHas)
		case tc.errHas == "" && (err != nil || len(entries) != tc.entries):
			t.Errorf("%s: %d entries, %v; want %d", tc.name, len(entries), err, tc.entries)
		case err != nil && strings.Contains(err.Error(), "FAKE"):
			t.Errorf("%s: error %q holds a value", tc.name, err)
		}
		for i := range entries {
			if entries[i].Provider != "anthropic" || entries[i].Kind != protocol.KindOAuth {
				t.Errorf("%s: entry %s/%s", tc.name, entries[i].Provider, entries[i].Kind)
			}
			entries[i].Wipe()
		}
	}
}

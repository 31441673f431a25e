package agent_test

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/agent"
	"github.com/llm-agent/llm-agent/internal/keychain"
	"github.com/llm-agent/llm-agent/internal/keychain/keychaintest"
	"github.com/llm-agent/llm-agent/protocol"
)

// This test binary is also the security stand-in (keychaintest.Setup).
func init() { keychaintest.Dispatch() }

// claudeLogin is Claude Code's login as its Keychain item holds it, with
// an MCP server's token beside it.
func claudeLogin(refresh, access string, expires int64) []byte {
	return []byte(fmt.Sprintf("{\n  \"claudeAiOauth\": {\n    \"accessToken\": %q,\n    \"refreshToken\": %q,\n    \"expiresAt\": %d,\n    \"scopes\": [\"user:inference\", \"user:profile\"],\n    \"subscriptionType\": \"max\"\n  },\n  \"mcpOAuth\": {\"srv|1\": {\"accessToken\": \"MCP-TOKEN-FAKE\", \"expiresAt\": 0}}\n}", access, refresh, expires))
}

// TestKeychainWriteBack: an anthropic credential imported from Claude
// Code's Keychain item with write-back gets its rotated tokens written to
// that item by the agent's real refresh path, through the security
// stand-in: the item's other bytes stay as they were, and no token shows
// in any process's command line (a /proc watcher runs the whole time) or
// in the stand-in's argv log. An item that a new login changed meanwhile
// is left alone, and a refused refresh token says to import it again.
func TestKeychainWriteBack(t *testing.T) {
	k := keychaintest.Setup(t)
	t.Setenv(keychaintest.EnvDelay, "40ms") // each security run lives long enough to be seen
	ts := newTokenServer(t)
	ts.rotate = true
	clock := newClock()
	ta := startAgent(t, agent.Config{Now: clock.Now, RefreshTimeout: 3 * time.Second,
		OAuthEndpoints: map[string]string{"anthropic": ts.URL + "/v1/oauth/token"}})
	item := protocol.KeychainItem{Service: keychain.DefaultService, Account: "alice"}
	expired := clock.Now().UnixMilli()
	before := claudeLogin(mRefresh, mAccess, expired)
	k.Put(item.Service, item.Account, before)

	c := ta.client(t)
	mustAdd(t, c, &protocol.AddRequest{
		Credential: protocol.Credential{Provider: "anthropic", Kind: protocol.KindOAuth, Fields: []protocol.Field{
			{Name: "refresh", Value: []byte(mRefresh)}, {Name: "access", Value: []byte(mAccess)},
			{Name: "expires", Value: []byte(strconv.FormatInt(expired, 10))}}},
		Constraints: protocol.Constraints{Keychain: &item},
	})

	var forms [][]byte
	for _, s := range []string{mRefresh, mAccess, refreshN(1), accessN(1)} {
		forms = append(forms, keychaintest.Forms([]byte(s))...)
	}
	w := keychaintest.Watch(forms)
	cr, err := c.Get("anthropic", nil)
	rep := w.Stop()
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	access, expires := string(cr.Value("access")), string(cr.Value("expires"))
	cr.Wipe()
	if access != accessN(1) {
		t.Fatalf("get handed out %q, want the refreshed access token", access)
	}

	// The item: the three token members replaced, every other byte kept.
	want := bytes.Replace(before, []byte(mRefresh), []byte(refreshN(1)), 1)
	want = bytes.Replace(want, []byte(mAccess), []byte(accessN(1)), 1)
	want = bytes.Replace(want, []byte(strconv.FormatInt(expired, 10)), []byte(expires), 1)
	if got, _ := k.Get(item.Service, item.Account); !bytes.Equal(got, want) {
		t.Errorf("the Keychain item holds\n%s\nwant\n%s", got, want)
	}
	audit := ta.audit.String()
	if !strings.Contains(audit, `"op":"write-back","provider":"anthropic","decision":"allow"`) ||
		!strings.Contains(audit, `Keychain item \"Claude Code-credentials\" (account \"alice\")`) {
		t.Errorf("no write-back event naming the item:\n%s", audit)
	}

	// No token in any argv, nor in the stand-in's log; three runs of
	// security (read, write, read back) of 40 ms each were there to see.
	rep.ExpectClean(t, k, forms, 3)
	argv := k.Argv()
	t.Logf("the write-back ran: %q", argv)
	if len(argv) != 3 {
		t.Errorf("want 3 runs of security (read, write, read back), got %d", len(argv))
	}

	// A new login on the laptop changed the item: not ours to touch.
	other := claudeLogin("REFRESH-OF-A-NEW-LOGIN", "ACCESS-OF-A-NEW-LOGIN", expired)
	k.Put(item.Service, item.Account, other)
	clock.Advance(2 * time.Hour)
	if _, err := c.Get("anthropic", nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := k.Get(item.Service, item.Account); !bytes.Equal(got, other) {
		t.Errorf("the write-back overwrote an item that a new login changed")
	}
	if !strings.Contains(ta.audit.String(), "changed since it was imported") {
		t.Errorf("the skipped write-back is not in the audit log")
	}

	// The provider refuses the refresh token: import again, from the Keychain.
	ts.set(func(ts *tokenServer) { ts.mode = "invalid_grant" })
	clock.Advance(2 * time.Hour)
	_, err = c.Get("anthropic", nil)
	if err == nil || !strings.Contains(err.Error(), "then llm-agent-client import --keychain --write-back") {
		t.Errorf("get after a refused refresh: %v", err)
	}
	noRefreshIn(t, "audit log", ta.audit.String())
}

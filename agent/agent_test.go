package agent_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/llm-agent/llm-agent/agent"
	"github.com/llm-agent/llm-agent/internal/agenttest"
	"github.com/llm-agent/llm-agent/memsafe"
	"github.com/llm-agent/llm-agent/protocol"
)

// Marker secrets: fake, distinctive, never printed. A test that finds one
// where it must not be says "found", not what it found.
const (
	mKey     = "MARKER-AGENT-KEY-2b7e15"
	mKey2    = "MARKER-AGENT-KEY2-28aed2"
	mRefresh = "MARKER-AGENT-REFRESH-a6d2ae"
	mAccess  = "MARKER-AGENT-ACCESS-f7cf9b"
	mToken   = "MARKER-AGENT-TOKEN-d4ff6e"
)

func oauthCred(provider string) *protocol.AddRequest {
	return &protocol.AddRequest{Credential: protocol.Credential{Provider: provider, Kind: protocol.KindOAuth, Fields: []protocol.Field{
		{Name: "refresh", Value: []byte(mRefresh)}, {Name: "access", Value: []byte(mAccess)},
		{Name: "expires", Value: []byte("4102444800000")}, {Name: "accountId", Value: []byte("acct-1")}}}}
}

func wellknownCred(provider string) *protocol.AddRequest {
	return &protocol.AddRequest{Credential: protocol.Credential{Provider: provider, Kind: protocol.KindWellKnown, Fields: []protocol.Field{
		{Name: "key", Value: []byte("EXAMPLE_TOKEN")}, {Name: "token", Value: []byte(mToken)}}}}
}

func providers(entries []protocol.Entry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Provider)
	}
	return out
}

func TestAddGetListRemove(t *testing.T) {
	ta := startAgent(t, agent.Config{})
	c := ta.client(t)
	mustAdd(t, c, apiCred("anthropic", mKey))
	mustAdd(t, c, oauthCred("openai"))
	mustAdd(t, c, wellknownCred("example"))

	list, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	if got := providers(list); !slices.Equal(got, []string{"anthropic", "example", "openai"}) {
		t.Fatalf("list = %q", got)
	}
	oa := list[2]
	if oa.Kind != "oauth" || !oa.HasRefresh || oa.AccessExpires != 4102444800000 || oa.Expires != 0 || oa.Confirm || oa.LocalOnly {
		t.Errorf("oauth entry = %+v", oa)
	}
	if list[0].HasRefresh || list[0].Kind != "api" {
		t.Errorf("api entry = %+v", list[0])
	}

	tests := []struct {
		provider, kind string
		want           map[string]string
	}{
		{"anthropic", "api", map[string]string{"key": mKey}},
		{"openai", "oauth", map[string]string{"access": mAccess, "expires": "4102444800000", "accountId": "acct-1"}},
		{"example", "wellknown", map[string]string{"key": "EXAMPLE_TOKEN", "token": mToken}},
	}
	for _, tt := range tests {
		cr, err := c.Get(tt.provider, nil)
		if err != nil {
			t.Fatalf("get %s: %v", tt.provider, err)
		}
		if cr.Provider != tt.provider || cr.Kind != tt.kind || len(cr.Fields) != len(tt.want) {
			t.Errorf("get %s: provider %q kind %q, %d fields", tt.provider, cr.Provider, cr.Kind, len(cr.Fields))
		}
		for name, v := range tt.want {
			if string(cr.Value(name)) != v {
				t.Errorf("get %s: field %q does not match", tt.provider, name)
			}
		}
		cr.Wipe()
	}

	if err := c.Remove("example"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get("example", nil); failureCode(err) != protocol.CodeNotFound {
		t.Errorf("get after remove: %v", err)
	}
	if err := c.Remove("example"); failureCode(err) != protocol.CodeNotFound {
		t.Errorf("second remove: %v", err)
	}
	n, err := c.RemoveAll()
	if err != nil || n != 2 {
		t.Errorf("remove-all = %d, %v", n, err)
	}
	if list, err := c.List(); err != nil || len(list) != 0 {
		t.Errorf("list after remove-all: %v, %v", providers(list), err)
	}
	if n, err := c.RemoveAll(); err != nil || n != 0 {
		t.Errorf("second remove-all = %d, %v", n, err)
	}

	audit := ta.audit.String()
	for _, op := range []string{`"op":"add"`, `"op":"get"`, `"op":"remove"`, `"op":"remove-all"`} {
		if !strings.Contains(audit, op) {
			t.Errorf("audit log has no %s record", op)
		}
	}
	for _, m := range []string{mKey, mRefresh, mAccess, mToken} {
		if strings.Contains(audit, m) {
			t.Errorf("audit log: secret marker found")
		}
	}
}

func TestReplaceOnReAdd(t *testing.T) {
	ta := startAgent(t, agent.Config{})
	c := ta.client(t)
	mustAdd(t, c, apiCred("anthropic", mKey))
	mustAdd(t, c, oauthCred("anthropic"))
	mustAdd(t, c, apiCred("anthropic", mKey2))
	list, err := c.List()
	if err != nil || len(list) != 1 || list[0].Kind != "api" || list[0].HasRefresh {
		t.Fatalf("list = %+v, %v", list, err)
	}
	cr, err := c.Get("anthropic", nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(cr.Value("key")) != mKey2 {
		t.Errorf("get returned the old value, not the replacement")
	}
}

func TestGetNeverHandsOutRefresh(t *testing.T) {
	ta := startAgent(t, agent.Config{})
	c := ta.raw(t)
	if reply := exchange(t, c, oauthCred("openai").Marshal()); reply[0] != protocol.MsgSuccess {
		t.Fatalf("add: %v", protocol.ParseFailure(reply[1:]))
	}
	reply := exchange(t, c, (&protocol.GetRequest{Provider: "openai"}).Marshal())
	if reply[0] != protocol.MsgSuccess {
		t.Fatalf("get: %v", protocol.ParseFailure(reply[1:]))
	}
	if bytes.Contains(reply, []byte(mRefresh)) {
		t.Errorf("get reply: refresh token marker found")
	}
	if !bytes.Contains(reply, []byte(mAccess)) {
		t.Errorf("get reply: access token marker not found")
	}
	cr, err := protocol.ParseGetReply(reply[1:])
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range cr.Fields {
		if f.Name == "refresh" {
			t.Errorf("get reply has a refresh field")
		}
	}
}

// TestOAuthWithoutAccessToken: an oauth credential of a provider the agent
// cannot refresh, without an access token, is refused (refresh_test.go
// covers the providers it can refresh).
func TestOAuthWithoutAccessToken(t *testing.T) {
	ta := startAgent(t, agent.Config{})
	c := ta.client(t)
	mustAdd(t, c, &protocol.AddRequest{Credential: protocol.Credential{Provider: "example-oauth", Kind: "oauth",
		Fields: []protocol.Field{{Name: "refresh", Value: []byte(mRefresh)}}}})
	_, err := c.Get("example-oauth", nil)
	if failureCode(err) != protocol.CodeFailed || !strings.Contains(err.Error(), "no access token") {
		t.Fatalf("get of an oauth credential without access token: %v", err)
	}
}

func TestBadRequests(t *testing.T) {
	ta := startAgent(t, agent.Config{})
	c := ta.raw(t)
	tests := []struct {
		name  string
		frame []byte
		code  uint32 // 0: plain SSH_AGENT_FAILURE
	}{
		{"invalid credential", (&protocol.AddRequest{Credential: protocol.Credential{Provider: "p", Kind: "api"}}).Marshal(), protocol.CodeBadRequest},
		{"unknown kind", (&protocol.AddRequest{Credential: protocol.Credential{Provider: "p", Kind: "password",
			Fields: []protocol.Field{{Name: "key", Value: []byte(mKey)}}}}).Marshal(), protocol.CodeBadRequest},
		{"truncated add", protocol.SimpleExtension(protocol.ExtAdd), protocol.CodeBadRequest},
		{"get with junk", extension(protocol.ExtGet, 0, 0, 0, 1, 'p', 1), protocol.CodeBadRequest},
		{"remove of nothing", protocol.SimpleExtension(protocol.ExtRemove), protocol.CodeBadRequest},
		{"bad extension name", []byte{0, 0, 0, 6, protocol.MsgExtension, 0, 0, 0, 1, 0}, protocol.CodeBadRequest},
		{"unknown extension", protocol.SimpleExtension("nope@example.com"), 0},
		{"unknown llm-agent extension", protocol.SimpleExtension("nope@llm-agent"), 0},
		{"unknown message", []byte{0, 0, 0, 1, 200}, 0},
		{"bad session-bind", protocol.SimpleExtension(protocol.ExtSessionBind), 0},
		{"bad lock", []byte{0, 0, 0, 2, protocol.MsgLock, 0}, 0},
	}
	for _, tt := range tests {
		reply := exchange(t, c, tt.frame)
		switch {
		case tt.code == 0 && reply[0] == protocol.MsgFailure:
		case tt.code != 0 && reply[0] == protocol.MsgExtensionFailure:
			f := protocol.ParseFailure(reply[1:])
			if f.Code != tt.code {
				t.Errorf("%s: code %d (%s), want %d", tt.name, f.Code, f.Message, tt.code)
			}
			if strings.Contains(f.Message, mKey) {
				t.Errorf("%s: failure message: secret marker found", tt.name)
			}
		default:
			t.Errorf("%s: reply message %d", tt.name, reply[0])
		}
	}
	// The connection survived all of that.
	if _, err := newClient(c).Status(); err != nil {
		t.Fatalf("status after bad requests: %v", err)
	}
}

func TestQuery(t *testing.T) {
	ta := startAgent(t, agent.Config{})
	names, err := ta.client(t).Query()
	if err != nil || !slices.Equal(names, protocol.Extensions) {
		t.Fatalf("query = %q, %v", names, err)
	}
}

func TestLifetime(t *testing.T) {
	clock := newClock()
	ta := startAgent(t, agent.Config{Now: clock.Now, DefaultLifetime: time.Hour})
	c := ta.client(t)
	short := apiCred("short", mKey)
	short.Lifetime = 60
	mustAdd(t, c, short)
	mustAdd(t, c, apiCred("default", mKey2)) // gets the agent's -t (1h)
	start := clock.Now().Unix()

	list, err := c.List()
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %v, %v", providers(list), err)
	}
	for _, e := range list {
		want := map[string]int64{"short": start + 60, "default": start + 3600}[e.Provider]
		if e.Added != start || e.Expires != want {
			t.Errorf("%s: added %d expires %d, want %d and %d", e.Provider, e.Added, e.Expires, start, want)
		}
	}

	clock.Advance(59 * time.Second)
	if _, err := c.Get("short", nil); err != nil {
		t.Fatalf("get 1 s before expiry: %v", err)
	}
	clock.Advance(time.Second)
	// Lookup checks expiry itself; no need to wait for the reaper.
	if _, err := c.Get("short", nil); failureCode(err) != protocol.CodeNotFound {
		t.Fatalf("get at expiry: %v", err)
	}
	if list, err := c.List(); err != nil || !slices.Equal(providers(list), []string{"default"}) {
		t.Fatalf("list after expiry: %v, %v", providers(list), err)
	}

	// The reaper (on the real one-second ticker, reading Config.Now) drops
	// the other one and says so in the audit log.
	clock.Advance(time.Hour)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(ta.audit.String(), `"op":"expire","provider":"default"`) {
		if time.Now().After(deadline) {
			t.Fatalf("the reaper did not expire the credential within 5 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st, err := c.Status(); err != nil || st.Count != 0 {
		t.Fatalf("status after expiry: %+v, %v", st, err)
	}
}

func TestNoLifetimeMeansForever(t *testing.T) {
	clock := newClock()
	ta := startAgent(t, agent.Config{Now: clock.Now})
	c := ta.client(t)
	mustAdd(t, c, apiCred("anthropic", mKey))
	clock.Advance(10 * 365 * 24 * time.Hour)
	if _, err := c.Get("anthropic", nil); err != nil {
		t.Fatalf("get ten years later: %v", err)
	}
}

func TestLock(t *testing.T) {
	ta := startAgent(t, agent.Config{})
	c := ta.client(t)
	mustAdd(t, c, apiCred("anthropic", mKey))
	if err := c.Unlock([]byte("pw")); !errors.Is(err, protocol.ErrLockFailed) {
		t.Errorf("unlock while unlocked: %v", err)
	}
	if err := c.Lock([]byte("pw")); err != nil {
		t.Fatalf("lock: %v", err)
	}
	if err := c.Lock([]byte("other")); !errors.Is(err, protocol.ErrLockFailed) {
		t.Errorf("lock while locked: %v", err)
	}

	other := ta.client(t) // the lock is agent-wide
	if _, err := other.Get("anthropic", nil); failureCode(err) != protocol.CodeLocked {
		t.Errorf("get while locked: %v", err)
	}
	if _, err := other.List(); failureCode(err) != protocol.CodeLocked {
		t.Errorf("list while locked: %v", err)
	}
	if err := other.Add(apiCred("x", mKey2)); failureCode(err) != protocol.CodeLocked {
		t.Errorf("add while locked: %v", err)
	}
	if err := other.Remove("anthropic"); failureCode(err) != protocol.CodeLocked {
		t.Errorf("remove while locked: %v", err)
	}
	if _, err := other.RemoveAll(); failureCode(err) != protocol.CodeLocked {
		t.Errorf("remove-all while locked: %v", err)
	}
	st, err := other.Status()
	if err != nil || !st.Locked || st.Count != 1 {
		t.Errorf("status while locked = %+v, %v", st, err)
	}

	// Each failure makes the next attempt wait longer (100 ms steps).
	var took []time.Duration
	for range 3 {
		start := time.Now()
		if err := c.Unlock([]byte("wrong")); !errors.Is(err, protocol.ErrLockFailed) {
			t.Fatalf("unlock with a wrong passphrase: %v", err)
		}
		took = append(took, time.Since(start))
	}
	t.Logf("wrong unlocks took %v, %v, %v", took[0].Round(time.Millisecond), took[1].Round(time.Millisecond), took[2].Round(time.Millisecond))
	if took[1] < 100*time.Millisecond {
		t.Errorf("the second wrong unlock took %v, want at least 100ms", took[1])
	}
	start := time.Now()
	if err := c.Unlock([]byte("pw")); err != nil {
		t.Fatalf("unlock: %v", err)
	}
	t.Logf("right unlock after three failures took %v", time.Since(start).Round(time.Millisecond))
	if _, err := c.Get("anthropic", nil); err != nil {
		t.Fatalf("get after unlock: %v", err)
	}
	// The delay starts over after a successful unlock.
	if err := c.Lock([]byte("pw2")); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	c.Unlock([]byte("wrong"))
	t.Logf("first wrong unlock of a new lock took %v", time.Since(start).Round(time.Millisecond))
	if err := c.Unlock([]byte("pw2")); err != nil {
		t.Fatalf("unlock: %v", err)
	}
	if strings.Contains(ta.audit.String(), "pw2") {
		t.Errorf("audit log holds a passphrase")
	}
}

func TestLocalOnlyInvisibleWhenForwarded(t *testing.T) {
	ta := startAgent(t, agent.Config{})
	local := ta.client(t)
	lo := apiCred("laptop-only", mKey)
	lo.LocalOnly = true
	mustAdd(t, local, lo)
	mustAdd(t, local, apiCred("shared", mKey2))

	remote := ta.boundClient(t, newHostKey(t))
	st, err := remote.Status()
	if err != nil || !st.Forwarded || st.Count != 1 {
		t.Fatalf("forwarded status = %+v, %v", st, err)
	}
	list, err := remote.List()
	if err != nil || !slices.Equal(providers(list), []string{"shared"}) {
		t.Fatalf("forwarded list = %q, %v", providers(list), err)
	}
	if _, err := remote.Get("laptop-only", nil); failureCode(err) != protocol.CodeNotFound {
		t.Errorf("forwarded get of a local-only credential: %v", err)
	}
	if _, err := remote.Get("shared", nil); err != nil {
		t.Errorf("forwarded get: %v", err)
	}

	st, err = local.Status()
	if err != nil || st.Forwarded || st.Count != 2 {
		t.Fatalf("local status = %+v, %v", st, err)
	}
	list, err = local.List()
	if err != nil || len(list) != 2 || !list[0].LocalOnly {
		t.Fatalf("local list = %+v, %v", list, err)
	}
	if _, err := local.Get("laptop-only", nil); err != nil {
		t.Errorf("local get of a local-only credential: %v", err)
	}
}

func TestForwardedMayNotManage(t *testing.T) {
	ta := startAgent(t, agent.Config{})
	local := ta.client(t)
	mustAdd(t, local, apiCred("anthropic", mKey))
	remote := ta.boundClient(t, newHostKey(t))

	if err := remote.Add(apiCred("evil", mKey2)); failureCode(err) != protocol.CodeNotPermitted {
		t.Errorf("forwarded add: %v", err)
	}
	if err := remote.Remove("anthropic"); failureCode(err) != protocol.CodeNotPermitted {
		t.Errorf("forwarded remove: %v", err)
	}
	if _, err := remote.RemoveAll(); failureCode(err) != protocol.CodeNotPermitted {
		t.Errorf("forwarded remove-all: %v", err)
	}
	// Lock and unlock are SSH agent messages: refused with SSH_AGENT_FAILURE.
	if err := remote.Lock([]byte("pw")); !errors.Is(err, protocol.ErrLockFailed) {
		t.Errorf("forwarded lock: %v", err)
	}
	if err := local.Lock([]byte("pw")); err != nil {
		t.Fatal(err)
	}
	if err := remote.Unlock([]byte("pw")); !errors.Is(err, protocol.ErrLockFailed) {
		t.Errorf("forwarded unlock with the right passphrase: %v", err)
	}
	if st, err := local.Status(); err != nil || !st.Locked {
		t.Fatalf("a forwarded unlock unlocked the agent: %+v, %v", st, err)
	}
	if err := local.Unlock([]byte("pw")); err != nil {
		t.Fatal(err)
	}

	// Nothing changed.
	list, err := local.List()
	if err != nil || !slices.Equal(providers(list), []string{"anthropic"}) {
		t.Fatalf("list = %q, %v", providers(list), err)
	}
	// Reading is allowed.
	if _, err := remote.Get("anthropic", nil); err != nil {
		t.Errorf("forwarded get: %v", err)
	}
	if _, err := remote.Query(); err != nil {
		t.Errorf("forwarded query: %v", err)
	}
	audit := ta.audit.String()
	if !strings.Contains(audit, `"decision":"deny","reason":"add is not permitted on a forwarded connection"`) ||
		!strings.Contains(audit, `"via_reason":"connection on the admin socket, but a session-bind says it is forwarded"`) {
		t.Errorf("audit log has no denial for the forwarded management requests: %s", audit)
	}
}

func TestSessionBind(t *testing.T) {
	ta := startAgent(t, agent.Config{})
	a, b := newHostKey(t), newHostKey(t)

	t.Run("bad signature", func(t *testing.T) {
		c := ta.raw(t)
		frame := a.bindFrame(t, true)
		frame[len(frame)-2] ^= 1 // inside the signature blob
		if bind(t, c, frame) {
			t.Fatal("accepted a bad signature")
		}
		// Signed by b but claiming a's key.
		bad := agenttest.ParseSessionBind(t, b.bindFrame(t, true))
		bad.HostKey = a.blob
		if bind(t, c, bad.Marshal()) {
			t.Fatal("accepted a signature by another key")
		}
		if st, err := newClient(c).Status(); err != nil || st.Forwarded {
			t.Fatalf("a refused bind marked the connection forwarded: %+v, %v", st, err)
		}
	})
	t.Run("garbage host key", func(t *testing.T) {
		c := ta.raw(t)
		g := &protocol.SessionBind{HostKey: []byte("not a key"), SessionID: []byte("id"), Signature: []byte("sig"), Forwarding: true}
		if bind(t, c, g.Marshal()) {
			t.Fatal("accepted")
		}
	})
	t.Run("after an authentication bind", func(t *testing.T) {
		c := ta.raw(t)
		if !bind(t, c, a.bindFrame(t, false)) {
			t.Fatal("authentication bind refused")
		}
		if st, err := newClient(c).Status(); err != nil || st.Forwarded {
			t.Fatalf("authentication-bound connection: %+v, %v", st, err)
		}
		// As OpenSSH's agent: failure, then the connection is closed.
		if bind(t, c, b.bindFrame(t, true)) {
			t.Fatal("a bind after an authentication bind was accepted")
		}
		expectClosed(t, c)
		c = ta.raw(t)
		if !bind(t, c, a.bindFrame(t, false)) {
			t.Fatal("authentication bind refused")
		}
		if bind(t, c, a.bindFrame(t, false)) {
			t.Fatal("a second authentication bind was accepted")
		}
		expectClosed(t, c)
	})
	t.Run("same session again", func(t *testing.T) {
		c := ta.raw(t)
		frame := a.bindFrame(t, true)
		if !bind(t, c, frame) || !bind(t, c, frame) {
			t.Fatal("rebinding the same session to the same key refused")
		}
	})
	t.Run("same session, other key", func(t *testing.T) {
		c := ta.raw(t)
		frame := a.bindFrame(t, true)
		if !bind(t, c, frame) {
			t.Fatal("bind refused")
		}
		id := agenttest.ParseSessionBind(t, frame).SessionID
		sig, err := b.signer.Sign(nil, id)
		if err != nil {
			t.Fatal(err)
		}
		other := &protocol.SessionBind{HostKey: b.blob, SessionID: id, Signature: ssh.Marshal(sig), Forwarding: true}
		if bind(t, c, other.Marshal()) {
			t.Fatal("a session id bound to a second host key was accepted")
		}
	})
	t.Run("at most 16 binds", func(t *testing.T) {
		c := ta.raw(t)
		for i := range 16 {
			if !bind(t, c, a.bindFrame(t, true)) {
				t.Fatalf("bind %d refused", i+1)
			}
		}
		if bind(t, c, a.bindFrame(t, true)) {
			t.Fatal("17th bind accepted")
		}
	})
}

func TestDestinationConstraints(t *testing.T) {
	ta := startAgent(t, agent.Config{})
	hostA, hostB, hostC := newHostKey(t), newHostKey(t), newHostKey(t)
	local := ta.client(t)

	onlyA := apiCred("only-a", mKey)
	onlyA.Destinations = []protocol.Chain{{{Host: "hostA", Keys: [][]byte{hostA.blob}}}}
	mustAdd(t, local, onlyA)
	viaAB := apiCred("a-then-b", mKey2)
	viaAB.Destinations = []protocol.Chain{{{Host: "hostA", Keys: [][]byte{hostA.blob}}, {Host: "hostB", Keys: [][]byte{hostB.blob}}}}
	mustAdd(t, local, viaAB)
	either := apiCred("a-or-c", mKey)
	either.Destinations = []protocol.Chain{{{Host: "hostA", Keys: [][]byte{hostA.blob}}}, {{Host: "hostC", Keys: [][]byte{hostC.blob}}}}
	mustAdd(t, local, either)
	multiKey := apiCred("b-any-key", mKey)
	multiKey.Destinations = []protocol.Chain{{{Host: "hostB", Keys: [][]byte{hostC.blob, hostB.blob}}}}
	mustAdd(t, local, multiKey)

	list, err := local.List()
	if err != nil {
		t.Fatal(err)
	}
	dest := map[string][]string{}
	for _, e := range list {
		dest[e.Provider] = e.Destinations
	}
	if !slices.Equal(dest["a-then-b"], []string{"hostA>hostB"}) || !slices.Equal(dest["a-or-c"], []string{"hostA", "hostC"}) {
		t.Errorf("list destinations = %q", dest)
	}

	tests := []struct {
		name string
		path []hostKey // nil: local, unbound
		ok   map[string]bool
	}{
		{"local", nil, map[string]bool{"only-a": true, "a-then-b": true, "a-or-c": true, "b-any-key": true}},
		{"via A", []hostKey{hostA}, map[string]bool{"only-a": true, "a-or-c": true}},
		{"via B", []hostKey{hostB}, map[string]bool{"b-any-key": true}},
		{"via C", []hostKey{hostC}, map[string]bool{"a-or-c": true, "b-any-key": true}}, // b-any-key lists C's key too
		{"via A then B", []hostKey{hostA, hostB}, map[string]bool{"a-then-b": true}},
		{"via B then A", []hostKey{hostB, hostA}, map[string]bool{}},
		{"via A then A", []hostKey{hostA, hostA}, map[string]bool{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := local
			if tt.path != nil {
				c = ta.boundClient(t, tt.path...)
			}
			for _, p := range []string{"only-a", "a-then-b", "a-or-c", "b-any-key"} {
				_, err := c.Get(p, nil)
				switch {
				case tt.ok[p] && err != nil:
					t.Errorf("%s: refused: %v", p, err)
				case !tt.ok[p] && failureCode(err) != protocol.CodeDestination:
					t.Errorf("%s: %v, want a destination refusal", p, err)
				}
			}
		})
	}

	// A connection bound for authentication (forwarding=0) at hostA is not
	// local: the constraint applies to it too.
	c := ta.raw(t)
	if !bind(t, c, hostB.bindFrame(t, false)) {
		t.Fatal("authentication bind refused")
	}
	if _, err := newClient(c).Get("only-a", nil); failureCode(err) != protocol.CodeDestination {
		t.Errorf("auth-bound connection at hostB got the hostA credential: %v", err)
	}
}

func TestOversizeFrame(t *testing.T) {
	ta := startAgent(t, agent.Config{FrameTimeout: 2 * time.Second})

	t.Run("over the limit", func(t *testing.T) {
		c := ta.raw(t)
		hdr := binary.BigEndian.AppendUint32(nil, protocol.MaxFrame+1)
		if reply := exchange(t, c, hdr); reply[0] != protocol.MsgFailure {
			t.Errorf("reply message %d, want SSH_AGENT_FAILURE", reply[0])
		}
		expectClosed(t, c)
	})
	t.Run("16 MiB header", func(t *testing.T) {
		c := ta.raw(t)
		// The agent must answer on the header alone, without our sending
		// any of the 16 MiB.
		if reply := exchange(t, c, []byte{1, 0, 0, 0}); reply[0] != protocol.MsgFailure {
			t.Errorf("reply message %d", reply[0])
		}
		expectClosed(t, c)
	})
	t.Run("empty frame", func(t *testing.T) {
		c := ta.raw(t)
		if reply := exchange(t, c, []byte{0, 0, 0, 0}); reply[0] != protocol.MsgFailure {
			t.Errorf("reply message %d", reply[0])
		}
		expectClosed(t, c)
	})
	t.Run("at the limit", func(t *testing.T) {
		c := ta.raw(t)
		frame := append(protocol.SimpleExtension(protocol.ExtGet), make([]byte, protocol.MaxFrame-len(protocol.SimpleExtension(protocol.ExtGet))+4)...)
		binary.BigEndian.PutUint32(frame, protocol.MaxFrame)
		if reply := exchange(t, c, frame); reply[0] != protocol.MsgExtensionFailure {
			t.Errorf("reply message %d, want an extension failure", reply[0])
		}
		if _, err := newClient(c).Status(); err != nil {
			t.Errorf("connection unusable after a frame at the limit: %v", err)
		}
	})
	t.Run("truncated frame", func(t *testing.T) {
		c := ta.raw(t)
		c.Write([]byte{0, 0, 1, 0, protocol.MsgExtension})
		// Nothing more: the agent gives up after FrameTimeout and hangs up.
		start := time.Now()
		expectClosed(t, c)
		t.Logf("closed %v after a stalled frame (FrameTimeout 2s)", time.Since(start).Round(time.Millisecond))
	})
	if _, err := ta.client(t).Status(); err != nil {
		t.Fatalf("agent unusable: %v", err)
	}
}

func TestIdleTimeout(t *testing.T) {
	ta := startAgent(t, agent.Config{IdleTimeout: 300 * time.Millisecond})
	c := ta.raw(t)
	start := time.Now()
	expectClosed(t, c)
	t.Logf("idle connection closed after %v (IdleTimeout 300ms)", time.Since(start).Round(time.Millisecond))
}

func TestConnectionCap(t *testing.T) {
	clock := newClock()
	ta := startAgent(t, agent.Config{MaxConns: 8, Now: clock.Now})
	var conns []*protocol.Client
	var raws []net.Conn
	for i := range 8 {
		r := ta.raw(t)
		c := newClient(r)
		// A request makes sure the agent has accepted the connection.
		if _, err := c.Status(); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		if i == 0 {
			// The agent notes the time of a request just after replying;
			// let it, then move the clock so this one is the longest idle.
			time.Sleep(100 * time.Millisecond)
			clock.Advance(time.Hour)
		}
		conns = append(conns, c)
		raws = append(raws, r)
	}
	ninth := ta.client(t)
	if _, err := ninth.List(); err != nil {
		t.Fatalf("9th connection: list: %v", err)
	}
	expectClosed(t, raws[0])
	for i, c := range conns[1:] {
		if _, err := c.Status(); err != nil {
			t.Errorf("connection %d closed: %v", i+1, err)
		}
	}
}

func TestMaxCredentials(t *testing.T) {
	ta := startAgent(t, agent.Config{MaxCredentials: 2})
	c := ta.client(t)
	mustAdd(t, c, apiCred("a", mKey))
	mustAdd(t, c, apiCred("b", mKey))
	if err := c.Add(apiCred("c", mKey)); failureCode(err) == 0 {
		t.Errorf("third credential accepted")
	}
	mustAdd(t, c, apiCred("a", mKey2)) // replacing is fine
}

func TestLockedMemoryRefused(t *testing.T) {
	ta := startAgent(t, agent.Config{Budget: memsafe.NewBudget(64 << 10)})
	c := ta.client(t)
	big := apiCred("big", strings.Repeat("k", 60<<10))
	if err := c.Add(big); failureCode(err) != protocol.CodeResource {
		t.Fatalf("add of a secret larger than the locked memory budget: %v", err)
	}
	mustAdd(t, c, apiCred("small", mKey))
	if _, err := c.Get("small", nil); err != nil {
		t.Fatalf("get within the budget: %v", err)
	}
}

func TestConfirm(t *testing.T) {
	dir := t.TempDir()
	promptFile := filepath.Join(dir, "prompt")
	yes := writeScript(t, dir, "yes", fmt.Sprintf("printf '%%s' \"$1\" > %s\nexit 0", promptFile))
	no := writeScript(t, dir, "no", "exit 1")
	who := &protocol.Requester{PID: 77, UID: 1000, Exe: "/usr/bin/claude", Hostname: "gpu1"}
	tests := []struct {
		askpass string
		code    uint32
	}{
		{yes, 0},
		{no, protocol.CodeRefused},
		{"", protocol.CodeRefused},
	}
	for _, tt := range tests {
		ta := startAgent(t, agent.Config{Askpass: tt.askpass})
		c := ta.client(t)
		r := apiCred("anthropic", mKey)
		r.Confirm = true
		mustAdd(t, c, r)
		_, err := c.Get("anthropic", who)
		if failureCode(err) != tt.code && !(tt.code == 0 && err == nil) {
			t.Errorf("askpass %q: %v, want code %d", filepath.Base(tt.askpass), err, tt.code)
		}
	}
	// Locally the prompt names the kernel's peer and the program that ran it.
	prompt, err := os.ReadFile(promptFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"anthropic"`, fmt.Sprintf("pid %d", os.Getpid()), "/usr/bin/claude"} {
		if !strings.Contains(string(prompt), want) {
			t.Errorf("local prompt %q does not mention %q", prompt, want)
		}
	}

	// Over a forwarded connection it names the verified host and what the
	// remote side reports, marked as such.
	ta := startAgent(t, agent.Config{Askpass: yes})
	r := apiCred("anthropic", mKey)
	r.Confirm = true
	mustAdd(t, ta.client(t), r)
	host := newHostKey(t)
	if _, err := ta.boundClient(t, host).Get("anthropic", who); err != nil {
		t.Fatalf("forwarded confirmed get: %v", err)
	}
	prompt, err = os.ReadFile(promptFile)
	if err != nil {
		t.Fatal(err)
	}
	fp := ssh.FingerprintSHA256(mustParseKey(t, host.blob))
	for _, want := range []string{`"anthropic"`, fp, "/usr/bin/claude", "gpu1", "as reported by the requester"} {
		if !strings.Contains(string(prompt), want) {
			t.Errorf("forwarded prompt %q does not mention %q", prompt, want)
		}
	}
}

func mustParseKey(t *testing.T, blob []byte) ssh.PublicKey {
	t.Helper()
	k, err := ssh.ParsePublicKey(blob)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// extension returns the frame of extension name with a raw payload.
func extension(name string, payload ...byte) []byte {
	frame := append(protocol.SimpleExtension(name), payload...)
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	return frame
}

// RemoveAll (SIGUSR1) and Close drop everything.
func TestRemoveAllMethod(t *testing.T) {
	ta := startAgent(t, agent.Config{})
	c := ta.client(t)
	mustAdd(t, c, apiCred("a", mKey))
	ta.RemoveAll()
	if st, err := c.Status(); err != nil || st.Count != 0 {
		t.Fatalf("status after RemoveAll: %+v, %v", st, err)
	}
}

// The audit log names the verified hops of a forwarded request by their
// host key fingerprints.
func TestAuditNamesVerifiedHops(t *testing.T) {
	ta := startAgent(t, agent.Config{})
	mustAdd(t, ta.client(t), apiCred("anthropic", mKey))
	a, b := newHostKey(t), newHostKey(t)
	if _, err := ta.boundClient(t, a, b).Get("anthropic", nil); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`"hops":[%q,%q]`, ssh.FingerprintSHA256(mustParseKey(t, a.blob)), ssh.FingerprintSHA256(mustParseKey(t, b.blob)))
	// A get is logged just after its reply goes out.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(ta.audit.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("audit log does not hold %s", want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

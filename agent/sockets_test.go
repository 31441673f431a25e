package agent_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"strings"
	"testing"

	sshagent "golang.org/x/crypto/ssh/agent"

	"github.com/llm-agent/llm-agent/agent"
	"github.com/llm-agent/llm-agent/protocol"
)

// TestUseSocketIsUseOnly: a connection on LLM_AUTH_SOCK gets use-only
// rights whoever is on the other end (here the test process itself, which
// is no ssh): no management, local-only invisible, -h unmatched until an
// ssh binds it; the admin socket keeps every right.
func TestUseSocketIsUseOnly(t *testing.T) {
	ta := startAgent(t, agent.Config{})
	admin := ta.client(t)
	mustAdd(t, admin, apiCred("anthropic", mKey))
	lo := apiCred("laptop-only", mKey2)
	lo.LocalOnly = true
	mustAdd(t, admin, lo)
	host := newHostKey(t)
	dest := apiCred("gpu1-only", mKey)
	dest.Destinations = []protocol.Chain{{{Host: "gpu1", Keys: [][]byte{host.blob}}}}
	mustAdd(t, admin, dest)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	if err := sshagent.NewClient(ta.raw(t)).Add(sshagent.AddedKey{PrivateKey: priv}); err != nil {
		t.Fatalf("ssh-key add on the admin socket: %v", err)
	}

	use := newClient(ta.useRaw(t))
	wantMsg := "add is not permitted on LLM_AUTH_SOCK (use-only); manage the agent on the laptop, where llm-agent-client uses the admin socket beside it"
	if err := use.Add(apiCred("evil", mKey2)); failureCode(err) != protocol.CodeNotPermitted || !strings.Contains(err.Error(), wantMsg) {
		t.Errorf("add on the use socket: %v", err)
	}
	if err := use.Remove("anthropic"); failureCode(err) != protocol.CodeNotPermitted {
		t.Errorf("remove on the use socket: %v", err)
	}
	if _, err := use.RemoveAll(); failureCode(err) != protocol.CodeNotPermitted {
		t.Errorf("remove-all on the use socket: %v", err)
	}
	if err := use.Lock([]byte("pw")); !errors.Is(err, protocol.ErrLockFailed) {
		t.Errorf("lock on the use socket: %v", err)
	}
	if err := admin.Lock([]byte("pw")); err != nil {
		t.Fatal(err)
	}
	if err := use.Unlock([]byte("pw")); !errors.Is(err, protocol.ErrLockFailed) {
		t.Errorf("unlock on the use socket: %v", err)
	}
	if err := admin.Unlock([]byte("pw")); err != nil {
		t.Fatalf("unlock on the admin socket: %v", err)
	}

	keys := sshagent.NewClient(ta.useRaw(t))
	_, priv2, _ := ed25519.GenerateKey(rand.Reader)
	if err := keys.Add(sshagent.AddedKey{PrivateKey: priv2}); err == nil {
		t.Error("ssh-key add on the use socket succeeded")
	}
	list, err := keys.List()
	if err != nil || len(list) != 1 {
		t.Fatalf("ssh-key list on the use socket: %d keys, %v", len(list), err)
	}
	if _, err := keys.Sign(list[0], []byte("data")); err != nil {
		t.Errorf("ssh-key sign on the use socket: %v", err)
	}
	if err := keys.Remove(list[0]); err == nil {
		t.Error("ssh-key remove on the use socket succeeded")
	}
	if err := keys.RemoveAll(); err == nil {
		t.Error("ssh-key remove-all on the use socket succeeded")
	}

	st, err := use.Status()
	if err != nil || !st.Forwarded || st.Count != 2 {
		t.Errorf("use status = %+v, %v", st, err)
	}
	entries, err := use.List()
	if err != nil || len(entries) != 2 {
		t.Errorf("use list = %+v, %v", entries, err)
	}
	for _, e := range entries {
		if e.Provider == "laptop-only" {
			t.Error("local-only credential listed on the use socket")
		}
	}
	if _, err := use.Get("laptop-only", nil); failureCode(err) != protocol.CodeNotFound {
		t.Errorf("get local-only on the use socket: %v", err)
	}
	if _, err := use.Get("gpu1-only", nil); failureCode(err) != protocol.CodeDestination {
		t.Errorf("get -h credential on an unbound use connection: %v", err)
	}
	if _, err := use.Get("anthropic", nil); err != nil {
		t.Errorf("get on the use socket: %v", err)
	}
	// Bound by ssh at gpu1 with forwarding: the -h credential comes out.
	if _, err := boundOn(t, ta.useRaw(t), host).Get("gpu1-only", nil); err != nil {
		t.Errorf("get -h credential on a connection bound at its host: %v", err)
	}
	// The admin socket, unbound, sees and uses everything.
	for _, p := range []string{"anthropic", "laptop-only", "gpu1-only"} {
		if _, err := admin.Get(p, nil); err != nil {
			t.Errorf("admin get %s: %v", p, err)
		}
	}
	audit := ta.audit.String()
	if !strings.Contains(audit, `"via":"use","via_reason":"connection on LLM_AUTH_SOCK, which is use-only whatever relays it","forwarded":true`) {
		t.Errorf("audit log does not say why the use connection was restricted: %s", audit)
	}
	if !strings.Contains(audit, `"via":"admin","via_reason":"connection on the admin socket"`) {
		t.Errorf("audit log does not class the admin connection: %s", audit)
	}
}

// boundOn binds c at hosts (forwarding at each), as OpenSSH does.
func boundOn(t *testing.T, c net.Conn, hosts ...hostKey) *protocol.Client {
	t.Helper()
	for _, h := range hosts {
		if !bind(t, c, h.bindFrame(t, true)) {
			t.Fatal("valid session-bind refused")
		}
	}
	return newClient(c)
}

// TestBindRules: OpenSSH's session-bind rules for -h (ssh-agent.c,
// process_ext_session_bind and identity_permitted), on both sockets.
func TestBindRules(t *testing.T) {
	ta := startAgent(t, agent.Config{})
	gpu1, bastion, other := newHostKey(t), newHostKey(t), newHostKey(t)
	admin := ta.client(t)
	one := apiCred("gpu1-only", mKey)
	one.Destinations = []protocol.Chain{{{Host: "gpu1", Keys: [][]byte{gpu1.blob}}}}
	mustAdd(t, admin, one)
	chain := apiCred("via-bastion", mKey2)
	chain.Destinations = []protocol.Chain{{{Host: "bastion", Keys: [][]byte{bastion.blob}}, {Host: "gpu1", Keys: [][]byte{gpu1.blob}}}}
	mustAdd(t, admin, chain)

	badSig := func(k hostKey) []byte {
		f := k.bindFrame(t, true)
		f[len(f)-2] ^= 1
		return f
	}
	type step struct {
		frame []byte
		ok    bool
	}
	tests := []struct {
		name     string
		dial     func(testing.TB) net.Conn
		steps    []step
		provider string
		want     bool
	}{
		{"use: forwarding bind at gpu1", ta.useRaw, []step{{gpu1.bindFrame(t, true), true}}, "gpu1-only", true},
		{"use: unbound", ta.useRaw, nil, "gpu1-only", false},
		{"use: authentication bind at gpu1", ta.useRaw, []step{{gpu1.bindFrame(t, false), true}}, "gpu1-only", false},
		{"use: bad bind, then a good one", ta.useRaw, []step{{badSig(gpu1), false}, {gpu1.bindFrame(t, true), true}}, "gpu1-only", false},
		{"use: good bind, then a bad one", ta.useRaw, []step{{gpu1.bindFrame(t, true), true}, {badSig(other), false}}, "gpu1-only", false},
		{"use: garbage bind", ta.useRaw, []step{{(&protocol.SessionBind{HostKey: []byte("x"), SessionID: []byte("i"), Signature: []byte("s"), Forwarding: true}).Marshal(), false}}, "gpu1-only", false},
		{"use: bastion then gpu1", ta.useRaw, []step{{bastion.bindFrame(t, true), true}, {gpu1.bindFrame(t, true), true}}, "via-bastion", true},
		{"use: bastion then gpu1 for authentication", ta.useRaw, []step{{bastion.bindFrame(t, true), true}, {gpu1.bindFrame(t, false), true}}, "via-bastion", false},
		{"use: bastion, gpu1, then a replayed extra hop", ta.useRaw, []step{{bastion.bindFrame(t, true), true}, {gpu1.bindFrame(t, true), true}, {other.bindFrame(t, true), true}}, "via-bastion", false},
		{"admin: unbound", ta.raw, nil, "gpu1-only", true},
		{"admin: bad bind", ta.raw, []step{{badSig(gpu1), false}}, "gpu1-only", false},
		{"admin: authentication bind elsewhere", ta.raw, []step{{other.bindFrame(t, false), true}}, "gpu1-only", false},
		{"admin: forwarding bind at gpu1", ta.raw, []step{{gpu1.bindFrame(t, true), true}}, "gpu1-only", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.dial(t)
			for i, s := range tt.steps {
				if got := bind(t, c, s.frame); got != s.ok {
					t.Fatalf("bind %d: accepted %v, want %v", i, got, s.ok)
				}
			}
			_, err := newClient(c).Get(tt.provider, nil)
			if tt.want && err != nil {
				t.Errorf("refused: %v", err)
			}
			if !tt.want && failureCode(err) != protocol.CodeDestination {
				t.Errorf("%v, want a destination refusal", err)
			}
		})
	}
}

// TestRevocationsUnknown: when known_hosts cannot be read, the agent cannot
// tell whether a hop's key is @revoked, so no -h credential is served.
func TestRevocationsUnknown(t *testing.T) {
	unreadable := t.TempDir() // a directory: opening works, reading fails
	ta := startAgent(t, agent.Config{KnownHosts: []string{unreadable}})
	gpu1 := newHostKey(t)
	one := apiCred("gpu1-only", mKey)
	one.Destinations = []protocol.Chain{{{Host: "gpu1", Keys: [][]byte{gpu1.blob}}}}
	mustAdd(t, ta.client(t), one)
	c := ta.useRaw(t)
	if !bind(t, c, gpu1.bindFrame(t, true)) {
		t.Fatal("forwarding bind refused")
	}
	_, err := newClient(c).Get("gpu1-only", nil)
	if failureCode(err) != protocol.CodeDestination || !strings.Contains(err.Error(), "known_hosts") {
		t.Fatalf("%v, want a destination refusal naming known_hosts", err)
	}
}

// TestGuardSessionsPerHost: a guard session registered through one host's
// relay is shown only to connections that came the same verified way.
// Before, anyone holding a relay on host A could register, for host B's
// boot id (world-readable on B), a co-tenant's login on B, whom B's guard
// then served: -h B credentials included.
func TestGuardSessionsPerHost(t *testing.T) {
	ta := startAgent(t, agent.Config{})
	hostA, hostB := newHostKey(t), newHostKey(t)
	useBound := func(hosts ...hostKey) *protocol.Client {
		c := ta.useRaw(t)
		for _, h := range hosts {
			if !bind(t, c, h.bindFrame(t, true)) {
				t.Fatal("valid session-bind refused")
			}
		}
		return newClient(c)
	}
	register := func(c *protocol.Client, id uint32) error {
		_, err := c.Guard(&protocol.GuardRequest{Op: protocol.GuardRegister, Session: protocol.Session{BootID: "boot-of-B", SessionID: id}})
		return err
	}
	sessionsOf := func(c *protocol.Client) []uint32 {
		list, err := c.Guard(&protocol.GuardRequest{Op: protocol.GuardSessions})
		if err != nil {
			t.Fatalf("sessions: %v", err)
		}
		var ids []uint32
		for _, s := range list {
			ids = append(ids, s.SessionID)
		}
		return ids
	}
	// Root on A (or a co-tenant there) through A's relay; and A's relay
	// appending a bind it collected from B.
	if err := register(useBound(hostA), 666); err != nil {
		t.Fatal(err)
	}
	if err := register(useBound(hostA, hostB), 667); err != nil {
		t.Fatal(err)
	}
	if err := register(useBound(), 668); err != nil { // unbound (ssh -R)
		t.Fatal(err)
	}
	// The guard on B, reached with ForwardAgent.
	if err := register(useBound(hostB), 7); err != nil {
		t.Fatal(err)
	}
	if got := sessionsOf(useBound(hostB)); len(got) != 1 || got[0] != 7 {
		t.Errorf("B's guard sees sessions %v, want only [7]", got)
	}
	if got := sessionsOf(useBound(hostA)); len(got) != 1 || got[0] != 666 {
		t.Errorf("A sees sessions %v, want only [666]", got)
	}
	// A connection whose bind failed has no known host: no register.
	c := ta.useRaw(t)
	f := hostB.bindFrame(t, true)
	f[len(f)-2] ^= 1
	if bind(t, c, f) {
		t.Fatal("bad bind accepted")
	}
	if err := register(newClient(c), 9); failureCode(err) != protocol.CodeNotPermitted {
		t.Errorf("register after a failed bind: %v, want not permitted", err)
	}
	if got := sessionsOf(useBound(hostB)); len(got) != 1 {
		t.Errorf("B's guard sees sessions %v after a refused register", got)
	}
}

// TestAuditFloodFromRelay: whatever relays LLM_AUTH_SOCK may send denied
// requests in a loop, each with 4 KiB of self-reported exe, argv0, cwd
// and hostname. Before, every one became an audit line of ~16 KiB on the
// laptop (about 60 MB/s from one connection): the remote side could fill
// the laptop's disk, after which no audit record is written. Now the
// reported strings are cut and use-only connections share a rate limit,
// with what was not logged counted in an audit-suppressed line; the admin
// socket is not limited.
func TestAuditFloodFromRelay(t *testing.T) {
	ta := startAgent(t, agent.Config{})
	big := strings.Repeat("A", 4000)
	req := &protocol.Requester{Exe: big, Argv0: big, Cwd: big, Hostname: big}
	use := newClient(ta.useRaw(t))
	const n = 3000
	for i := 0; i < n; i++ {
		if _, err := use.Get("no-such-provider", req); failureCode(err) != protocol.CodeNotFound {
			t.Fatalf("get %d: %v", i, err)
		}
	}
	admin := ta.client(t)
	for i := 0; i < 600; i++ {
		admin.Get("no-such-provider", nil)
	}
	log := ta.audit.String()
	lines := strings.Split(strings.TrimSpace(log), "\n")
	var useLines, adminLines, summary int
	for _, l := range lines {
		switch {
		case strings.Contains(l, `"op":"audit-suppressed"`):
			summary++
			if !strings.Contains(l, "get deny") {
				t.Errorf("summary line does not count the denied gets: %s", l)
			}
		case strings.Contains(l, `"via":"use"`):
			useLines++
		case strings.Contains(l, `"via":"admin"`):
			adminLines++
		}
		if len(l) > 4096 {
			t.Errorf("an audit line of %d bytes", len(l))
			break
		}
	}
	t.Logf("%d denied gets on the use socket: %d audit lines, %d summaries; %d bytes of log", n, useLines, summary, len(log))
	if useLines >= n/2 {
		t.Errorf("%d of %d denied gets on the use socket logged one line each: no limit", useLines, n)
	}
	if summary == 0 {
		t.Errorf("no audit-suppressed line after a flood")
	}
	if adminLines < 600 {
		t.Errorf("admin socket: %d of 600 events logged; it must not be limited", adminLines)
	}
}

package agent_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/llm-agent/llm-agent/agent"
	"github.com/llm-agent/llm-agent/internal/agenttest"
	"github.com/llm-agent/llm-agent/memsafe"
	"github.com/llm-agent/llm-agent/protocol"
)

// fakeClock is a Config.Now the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// syncBuffer is an io.Writer safe for the agent's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testAgent is an agent serving on real Unix sockets in a temp dir: sock
// is the admin socket (where the tests manage, as before the split) and
// use the use-only one that llm-agent prints as LLM_AUTH_SOCK.
type testAgent struct {
	*agent.Agent
	sock  string
	use   string
	audit *syncBuffer
}

// memlockBudget is a Budget for the test process's real RLIMIT_MEMLOCK,
// so that memguard is never asked for more than the kernel grants.
func memlockBudget() *memsafe.Budget {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); err != nil || lim.Cur == unix.RLIM_INFINITY {
		return memsafe.NewBudget(-1)
	}
	return memsafe.NewBudget(int64(lim.Cur))
}

func startAgent(t testing.TB, cfg agent.Config) *testAgent {
	t.Helper()
	audit := &syncBuffer{}
	if cfg.Audit == nil {
		cfg.Audit = agent.NewAuditLog(audit, nil)
	}
	if cfg.Budget == nil {
		cfg.Budget = memlockBudget()
	}
	s := agenttest.Serve(t, cfg)
	return &testAgent{Agent: s.Agent, sock: s.Admin, use: s.Use, audit: audit}
}

// raw opens a plain connection to the agent's admin socket.
func (ta *testAgent) raw(t testing.TB) net.Conn {
	t.Helper()
	return dialRaw(t, ta.sock)
}

// useRaw opens a plain connection to the use-only socket.
func (ta *testAgent) useRaw(t testing.TB) net.Conn {
	t.Helper()
	return dialRaw(t, ta.use)
}

func dialRaw(t testing.TB, sock string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// client opens a protocol client on a fresh connection.
func (ta *testAgent) client(t testing.TB) *protocol.Client {
	t.Helper()
	return newClient(ta.raw(t))
}

func newClient(c net.Conn) *protocol.Client {
	pc := protocol.NewClient(c)
	pc.Timeout = 10 * time.Second
	return pc
}

// exchange writes one frame and reads the reply body.
func exchange(t testing.TB, c net.Conn, frame []byte) []byte {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(frame); err != nil {
		t.Fatalf("write: %v", err)
	}
	body, err := protocol.ReadFrame(c, protocol.MaxFrame)
	if err != nil {
		t.Fatalf("read reply: %v", err)
	}
	return body
}

// expectClosed checks that the agent hung up on c (after any pending
// reply bytes, which it discards).
func expectClosed(t testing.TB, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after 5 s")
	}
}

func failureCode(err error) uint32 {
	var f *protocol.Failure
	if errors.As(err, &f) {
		return f.Code
	}
	return 0
}

func apiCred(provider, key string) *protocol.AddRequest {
	return &protocol.AddRequest{Credential: protocol.Credential{Provider: provider, Kind: protocol.KindAPI,
		Fields: []protocol.Field{{Name: protocol.FieldKey, Value: []byte(key)}}}}
}

func mustAdd(t testing.TB, c *protocol.Client, r *protocol.AddRequest) {
	t.Helper()
	if err := c.Add(r); err != nil {
		t.Fatalf("add %s: %v", r.Provider, err)
	}
}

// hostKey is an SSH host key for session-bind tests.
type hostKey struct {
	signer ssh.Signer
	blob   []byte
}

func newHostKey(t testing.TB) hostKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return hostKey{signer: s, blob: s.PublicKey().Marshal()}
}

// bindFrame returns a session-bind@openssh.com frame for a random session
// id, signed by k as an sshd would.
func (k hostKey) bindFrame(t testing.TB, forwarding bool) []byte {
	t.Helper()
	id := make([]byte, 32)
	rand.Read(id)
	sig, err := k.signer.Sign(rand.Reader, id)
	if err != nil {
		t.Fatal(err)
	}
	return (&protocol.SessionBind{HostKey: k.blob, SessionID: id, Signature: ssh.Marshal(sig), Forwarding: forwarding}).Marshal()
}

// bind sends a session-bind on c and reports whether the agent accepted it.
func bind(t testing.TB, c net.Conn, frame []byte) bool {
	t.Helper()
	switch reply := exchange(t, c, frame); reply[0] {
	case protocol.MsgSuccess:
		return true
	case protocol.MsgFailure:
		return false
	default:
		t.Fatalf("session-bind reply message %d", reply[0])
		return false
	}
}

// boundClient returns a client on a connection that went through the
// given hosts (forwarding at each), as OpenSSH binds a forwarded agent.
func (ta *testAgent) boundClient(t testing.TB, hosts ...hostKey) *protocol.Client {
	t.Helper()
	c := ta.raw(t)
	for _, h := range hosts {
		if !bind(t, c, h.bindFrame(t, true)) {
			t.Fatal("valid session-bind refused")
		}
	}
	return newClient(c)
}

//go:build linux

package guard

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/internal/peercred"
	"github.com/llm-agent/llm-agent/protocol"
)

// fakeAgent serves a socket as far as relays need: relay@llm-agent gets
// SSH_AGENT_SUCCESS and then an echo of the stream (or a failure, when
// refuse is set, and the connection goes on); every other frame gets
// SSH_AGENT_SUCCESS.
type fakeAgent struct {
	path   string
	ln     *net.UnixListener
	refuse atomic.Bool
	conns  atomic.Int32 // connections accepted
}

func startFakeAgent(t *testing.T) *fakeAgent {
	t.Helper()
	a := &fakeAgent{path: filepath.Join(t.TempDir(), "agent.sock")}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: a.path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	a.ln = ln
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			a.conns.Add(1)
			go a.serve(c)
		}
	}()
	return a
}

func (a *fakeAgent) serve(c net.Conn) {
	defer c.Close()
	for {
		body, err := protocol.ReadFrame(c, protocol.MaxFrame)
		if err != nil {
			return
		}
		name, _, err := protocol.ParseExtension(body)
		if err != nil || name != protocol.ExtRelay {
			c.Write(protocol.SuccessFrame())
			continue
		}
		if a.refuse.Load() {
			c.Write(protocol.MarshalFailure(protocol.CodeNotPermitted, "relays are off"))
			continue
		}
		c.Write(protocol.SuccessFrame())
		io.Copy(c, c)
		return
	}
}

// fileLog is the guard's log in a file: writes from the guard's
// goroutines may come at once.
type fileLog struct{ *os.File }

func (f fileLog) String() string {
	b, _ := os.ReadFile(f.Name())
	return string(b)
}

// relayGuard is a guard around a fake agent whose path is unlinked, as
// Start leaves it, with no policy: its clients come through serveFrames.
type relayGuard struct {
	g     *Guard
	agent *fakeAgent
	log   fileLog
	dir   string
}

func newRelayGuard(t *testing.T, maxRelays int) *relayGuard {
	t.Helper()
	a := startFakeAgent(t)
	held, err := holdSocket(a.path)
	if err != nil {
		t.Fatal(err)
	}
	if err := held.samePath(a.path); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(a.path); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "guard.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	log := fileLog{f}
	g := &Guard{cfg: Config{Log: log, MaxRelays: maxRelays}, held: held,
		done: make(chan struct{}), stopped: make(chan struct{})}
	t.Cleanup(g.Close)
	shared, err := g.dialRelay()
	if err != nil {
		t.Fatal(err)
	}
	// Answered, so accepted and counted: count only what relays open.
	exchange(t, shared, protocol.SimpleExtension(protocol.ExtStatus), "")
	a.conns.Store(0)
	g.shared = []*upstream{{c: protocol.NewClient(shared)}}
	return &relayGuard{g: g, agent: a, log: log, dir: t.TempDir()}
}

// client connects a client to the guard and returns its end.
func (r *relayGuard) client(t *testing.T) net.Conn {
	t.Helper()
	path := filepath.Join(r.dir, "c.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	proc := peercred.Process{PID: os.Getpid(), Exe: "/usr/bin/tool\nforged"}
	go func() {
		defer s.Close()
		r.g.serveFrames(s, proc)
	}()
	t.Cleanup(func() { c.Close() })
	return c
}

var relayFrame = (&protocol.RelayRequest{Protocol: protocol.RelayH2}).Marshal()

// exchange writes req (and pipelined bytes after it) and reads one reply.
func exchange(t *testing.T, c net.Conn, req []byte, pipelined string) []byte {
	t.Helper()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(append(append([]byte(nil), req...), pipelined...)); err != nil {
		t.Fatal(err)
	}
	body, err := protocol.ReadFrame(c, protocol.MaxReply)
	if err != nil {
		t.Fatalf("reading the reply: %v", err)
	}
	return body
}

// openRelay sends a relay frame, with pipelined stream bytes after it,
// and wants the agent's SSH_AGENT_SUCCESS.
func openRelay(t *testing.T, c net.Conn, pipelined string) {
	t.Helper()
	if body := exchange(t, c, relayFrame, pipelined); body[0] != protocol.MsgSuccess {
		t.Fatalf("relay reply %d, want SSH_AGENT_SUCCESS", body[0])
	}
}

// wantFailure checks that body is an extension failure with code whose
// message holds want.
func wantFailure(t *testing.T, body []byte, code uint32, want string) {
	t.Helper()
	if body[0] != protocol.MsgExtensionFailure {
		t.Fatalf("reply message %d, want an extension failure", body[0])
	}
	f := protocol.ParseFailure(body[1:])
	if f.Code != code || !strings.Contains(f.Message, want) {
		t.Fatalf("failure %d %q, want code %d with %q", f.Code, f.Message, code, want)
	}
}

// echoes checks that what c writes comes back: the stream is spliced.
func echoes(t *testing.T, c net.Conn, pending, more string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte(more)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(pending)+len(more))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("reading the stream: %v", err)
	}
	if string(got) != pending+more {
		t.Fatalf("stream %q, want %q", got, pending+more)
	}
}

func TestHoldSocket(t *testing.T) {
	dir := t.TempDir()
	sock := func(name string) string {
		p := filepath.Join(dir, name)
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		ln.SetUnlinkOnClose(false)
		t.Cleanup(func() { ln.Close() })
		return p
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	foreign := sock("foreign.sock")
	if os.Getuid() == 0 {
		if err := os.Chown(foreign, 4242, 4242); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, want string
		rootOnly         bool
	}{
		{"socket", sock("ok.sock"), "", false},
		{"regular file", file, "is not a socket", false},
		{"symlink to a file", link, "is not a socket", false},
		{"directory", dir, "is not a socket", false},
		{"missing", filepath.Join(dir, "none"), "no such file", false},
		{"another user's socket", foreign, "belongs to uid 4242", true},
	}
	for _, tt := range tests {
		if tt.rootOnly && os.Getuid() != 0 {
			continue
		}
		h, err := holdSocket(tt.path)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v, want nil", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		case err != nil && strings.Contains(err.Error(), "\n"):
			t.Errorf("%s: %q is more than one line", tt.name, err)
		}
		if h != nil {
			h.close()
		}
	}
}

func TestHeldSocketAfterUnlink(t *testing.T) {
	a := startFakeAgent(t)
	h, err := holdSocket(a.path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.close()
	if err := os.Remove(a.path); err != nil {
		t.Fatal(err)
	}
	if _, err := net.Dial("unix", a.path); err == nil {
		t.Fatal("the unlinked path still answers")
	}
	g := &Guard{held: h}
	c, err := g.dialRelay()
	if err != nil {
		t.Fatalf("dialling the held socket: %v", err)
	}
	defer c.Close()
	if body := exchange(t, c, protocol.SimpleExtension(protocol.ExtStatus), ""); body[0] != protocol.MsgSuccess {
		t.Fatalf("reply %d through the held socket", body[0])
	}

	// A socket put at the path after the guard held the first one is
	// another socket: Start refuses it.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: a.path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := h.samePath(a.path); err == nil || !strings.Contains(err.Error(), "was replaced") {
		t.Fatalf("samePath after a replacement: %v", err)
	}
}

func TestRelayStream(t *testing.T) {
	r := newRelayGuard(t, 0)
	c := r.client(t)
	// The first stream bytes come in the same write as the relay frame,
	// before the reply: they must reach the agent all the same.
	openRelay(t, c, "PRI * HTTP/2.0")
	echoes(t, c, "PRI * HTTP/2.0", " and more")
	if n := r.agent.conns.Load(); n != 1 {
		t.Errorf("%d new connections to the agent, want 1 (a fresh one)", n)
	}
	log := r.log.String()
	if !strings.Contains(log, "relay connection for pid") || !strings.Contains(log, "opened (1 of at most 32)") {
		t.Errorf("log %q: want one line for the opened relay", log)
	}
	if strings.Contains(log, "PRI") || strings.Contains(log, "\nforged") {
		t.Errorf("log %q holds stream content or an unescaped executable", log)
	}
}

func TestRelayRefusedByAgent(t *testing.T) {
	r := newRelayGuard(t, 0)
	r.agent.refuse.Store(true)
	c := r.client(t)
	wantFailure(t, exchange(t, c, relayFrame, ""), protocol.CodeNotPermitted, "relays are off")
	// Still an agent connection.
	if body := exchange(t, c, protocol.SimpleExtension(protocol.ExtStatus), ""); body[0] != protocol.MsgSuccess {
		t.Fatalf("a frame after the refused relay: reply %d", body[0])
	}
	if !strings.Contains(r.log.String(), "refused by the agent: relays are off") {
		t.Errorf("log %q: want the refusal", r.log.String())
	}
	r.g.mu.Lock()
	n := len(r.g.relays)
	r.g.mu.Unlock()
	if n != 0 {
		t.Errorf("%d relay slots still taken after a refusal", n)
	}
}

func TestRelayOnDedicated(t *testing.T) {
	r := newRelayGuard(t, 0)
	conn, err := net.Dial("unix", r.g.held.path())
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, conn, protocol.SimpleExtension(protocol.ExtStatus), "")
	r.agent.conns.Store(0)
	r.g.reserve = []*reserved{{c: protocol.NewClient(conn), conn: conn}}
	c := r.client(t)
	if body := exchange(t, c, protocol.SimpleExtension(protocol.ExtSessionBind), ""); body[0] != protocol.MsgSuccess {
		t.Fatalf("session-bind reply %d", body[0])
	}
	openRelay(t, c, "x")
	echoes(t, c, "x", "y")
	if n := r.agent.conns.Load(); n != 0 {
		t.Errorf("%d new connections to the agent, want none (the reserve one carries it)", n)
	}
}

func TestRelayLimit(t *testing.T) {
	r := newRelayGuard(t, 2)
	var open []net.Conn
	for i := 0; i < 2; i++ {
		c := r.client(t)
		openRelay(t, c, "")
		echoes(t, c, "", "up")
		open = append(open, c)
	}
	c := r.client(t)
	wantFailure(t, exchange(t, c, relayFrame, ""), protocol.CodeResource, "at most 2 relay connections")
	if !strings.Contains(r.log.String(), "refused: 2 relay connections are open, the limit") {
		t.Errorf("log %q: want the refusal", r.log.String())
	}
	// The refused client keeps its connection; once a relay ends, its
	// slot is free again.
	open[0].Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		body := exchange(t, c, relayFrame, "")
		if body[0] == protocol.MsgSuccess {
			break
		}
		wantFailure(t, body, protocol.CodeResource, "at most 2")
		if time.Now().After(deadline) {
			t.Fatal("the slot of a closed relay was never freed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	echoes(t, c, "", "again")
}

func TestRelayFailFast(t *testing.T) {
	r := newRelayGuard(t, 0)
	r.g.link.down.Store(true)
	c := r.client(t)
	wantFailure(t, exchange(t, c, relayFrame, ""), protocol.CodeUnreachable, "did not answer")
	if n := r.agent.conns.Load(); n != 0 {
		t.Errorf("%d new connections to the agent while the link is down, want 0", n)
	}
}

func TestRelayEndsOnClose(t *testing.T) {
	r := newRelayGuard(t, 0)
	c := r.client(t)
	openRelay(t, c, "")
	echoes(t, c, "", "idle next")
	r.g.Close()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	var b [1]byte
	if _, err := c.Read(b[:]); err != io.EOF {
		t.Fatalf("read after Close: %v, want EOF", err)
	}
	if _, err := r.g.dialRelay(); err == nil {
		t.Fatal("the held socket still dials after Close")
	}
}

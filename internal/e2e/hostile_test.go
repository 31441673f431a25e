package e2e

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/llm-agent/llm-agent/protocol"
)

// hostileDial opens a raw connection to the agent.
func hostileDial(t testing.TB, sock string) net.Conn {
	t.Helper()
	c, err := dialUnix(sock)
	if err != nil {
		t.Fatalf("dial %s: %v", sock, err)
	}
	return c
}

// hostileHeader is the length header for body.
func hostileHeader(body []byte) []byte {
	return binary.BigEndian.AppendUint32(nil, uint32(len(body)))
}

func hostileSend(c net.Conn, body []byte) error {
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Write(append(hostileHeader(body), body...))
	return err
}

// hostileRead reads one reply frame. closed is set when the agent hung up
// instead; err is set when nothing came within the timeout (a hang).
func hostileRead(c net.Conn, timeout time.Duration) (body []byte, closed bool, err error) {
	c.SetReadDeadline(time.Now().Add(timeout))
	body, err = protocol.ReadFrame(c, protocol.MaxFrame)
	switch {
	case err == nil:
		return body, false, nil
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return nil, true, nil
	}
	return nil, false, err
}

// hostileList asks list@llm-agent on a fresh connection, and requires an
// answer within 1 s.
func hostileList(t testing.TB, a *Agent, when string) time.Duration {
	t.Helper()
	start := time.Now()
	// A full listen backlog refuses a connect (EAGAIN) rather than queue
	// it: retry, counting the time.
	var nc net.Conn
	var err error
	for {
		if nc, err = dialUnix(a.Sock); err == nil || !errors.Is(err, syscall.EAGAIN) || time.Since(start) > 5*time.Second {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err != nil {
		t.Fatalf("%s: dial: %v (after %v)", when, err, time.Since(start))
	}
	c := protocol.NewClient(nc)
	defer c.Close()
	c.Timeout = 5 * time.Second
	_, err = c.List()
	d := time.Since(start)
	if err != nil {
		t.Fatalf("%s: list@llm-agent: %v (after %v)", when, err, d)
	}
	t.Logf("%s: list@llm-agent answered in %v", when, d.Round(time.Microsecond))
	if d >= time.Second {
		t.Errorf("%s: list@llm-agent took %v, want < 1 s", when, d)
	}
	return d
}

// hostileRSS returns the agent's VmRSS and VmData in KiB.
func hostileMem(pid int) (rss, data int64) {
	num := func(s string) int64 {
		n, _ := strconv.ParseInt(strings.TrimSuffix(s, " kB"), 10, 64)
		return n
	}
	return num(memlockProcField(pid, "VmRSS")), num(memlockProcField(pid, "VmData"))
}

// hostileFDs counts the agent's open descriptors (-1 if /proc/PID/fd cannot
// be read: the agent is not dumpable, so that takes root).
func hostileFDs(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(ents)
}

// hostileAlive fails the test if the agent is gone, showing its stderr.
func hostileAlive(t testing.TB, a *Agent) {
	t.Helper()
	if !memlockAlive(a.PID) {
		b, _ := os.ReadFile(a.Stderr)
		t.Fatalf("the agent (pid %d) is gone; its stderr:\n%s", a.PID, b)
	}
}

// hostileNoPanic fails the test if the agent's stderr shows a panic.
func hostileNoPanic(t testing.TB, a *Agent) {
	t.Helper()
	if b, _ := os.ReadFile(a.Stderr); strings.Contains(string(b), "panic") || strings.Contains(string(b), "fatal error") {
		t.Errorf("the agent's stderr shows a crash:\n%s", b)
	}
}

// TestHostileTruncatedFrame holds a connection that announced 64 KiB and
// sent 1000 bytes: the agent keeps answering others.
func TestHostileTruncatedFrame(t *testing.T) {
	a := StartAgent(t, AgentOptions{})
	c := hostileDial(t, a.Sock)
	defer c.Close()
	msg := binary.BigEndian.AppendUint32(nil, 65536)
	msg = append(msg, make([]byte, 1000)...)
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	hostileList(t, a, "during a held truncated 64 KiB frame")
	rss, _ := hostileMem(a.PID)
	t.Logf("agent VmRSS %d KiB while the truncated frame is held", rss)
	c.Close()
	hostileList(t, a, "after the truncated frame's connection closed")
	hostileAlive(t, a)
}

// TestHostileHugeLength sends length prefixes of 1 GiB and more: the agent
// answers with a failure and hangs up, without allocating them.
func TestHostileHugeLength(t *testing.T) {
	a := StartAgent(t, AgentOptions{})
	rss0, data0 := hostileMem(a.PID)
	for _, n := range []uint32{1 << 30, 0xffffffff, protocol.MaxFrame + 1} {
		for i := range 10 {
			c := hostileDial(t, a.Sock)
			// The header, and then some of the body it announces.
			msg := binary.BigEndian.AppendUint32(nil, n)
			msg = append(msg, make([]byte, 4096)...)
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			c.Write(msg) // may fail once the agent has hung up
			body, closed, err := hostileRead(c, 5*time.Second)
			if err != nil {
				t.Fatalf("length %d: no reply and no hang-up within 5 s: %v", n, err)
			}
			if closed || len(body) != 1 || body[0] != protocol.MsgFailure {
				t.Errorf("length %d: reply %v (closed %v), want SSH_AGENT_FAILURE then a close", n, body, closed)
			}
			if _, closed, err := hostileRead(c, 5*time.Second); !closed {
				t.Errorf("length %d: connection not closed after the failure (err %v)", n, err)
			}
			c.Close()
			if i == 0 {
				hostileList(t, a, fmt.Sprintf("after a %d byte length prefix", n))
			}
		}
	}
	rss, data := hostileMem(a.PID)
	t.Logf("agent VmRSS %d -> %d KiB, VmData %d -> %d KiB after 30 oversize length prefixes", rss0, rss, data0, data)
	if rss >= 100<<10 {
		t.Errorf("agent VmRSS is %d KiB, want well under 100 MB", rss)
	}
	if data-data0 >= 512<<10 {
		t.Errorf("agent VmData grew by %d KiB: it allocated what a length prefix announced", data-data0)
	}
	hostileAlive(t, a)
}

// TestHostileUnknownExtension sends an extension nobody implements: the
// reply is SSH_AGENT_FAILURE and the connection stays usable.
func TestHostileUnknownExtension(t *testing.T) {
	a := StartAgent(t, AgentOptions{})
	c := hostileDial(t, a.Sock)
	defer c.Close()
	for _, payload := range [][]byte{nil, []byte("some payload"), make([]byte, 100000)} {
		body := append(protocol.SimpleExtension("nonexistent@example.com")[4:], payload...)
		if err := hostileSend(c, body); err != nil {
			t.Fatal(err)
		}
		reply, closed, err := hostileRead(c, 5*time.Second)
		if err != nil || closed || len(reply) != 1 || reply[0] != protocol.MsgFailure {
			t.Fatalf("unknown extension with a %d byte payload: reply %v, closed %v, err %v; want SSH_AGENT_FAILURE", len(payload), reply, closed, err)
		}
	}
	// Same connection: a list still works.
	if err := hostileSend(c, protocol.SimpleExtension(protocol.ExtList)[4:]); err != nil {
		t.Fatal(err)
	}
	reply, closed, err := hostileRead(c, 5*time.Second)
	if err != nil || closed || reply[0] != protocol.MsgSuccess {
		t.Fatalf("list on the same connection: reply %v, closed %v, err %v", reply, closed, err)
	}
	if _, err := protocol.ParseListReply(reply[1:]); err != nil {
		t.Errorf("list reply: %v", err)
	}
	hostileList(t, a, "after unknown extensions")
}

// TestHostileUnknownMessage sends message numbers the protocol does not
// define, and an empty frame.
func TestHostileUnknownMessage(t *testing.T) {
	a := StartAgent(t, AgentOptions{})
	// (1 and 9 are SSH1 requests, which x/crypto still answers.)
	for _, typ := range []byte{200, 0, 4, 5, 6, 12, 14, 24, 28, 100, 255} {
		c := hostileDial(t, a.Sock)
		if err := hostileSend(c, []byte{typ, 0, 0, 0, 3, 'a', 'b', 'c'}); err != nil {
			t.Fatal(err)
		}
		reply, closed, err := hostileRead(c, 5*time.Second)
		if err != nil || closed || len(reply) != 1 || reply[0] != protocol.MsgFailure {
			t.Errorf("message %d: reply %v, closed %v, err %v; want SSH_AGENT_FAILURE", typ, reply, closed, err)
		}
		// The connection stays usable.
		if err := hostileSend(c, protocol.SimpleExtension(protocol.ExtStatus)[4:]); err != nil {
			t.Fatal(err)
		}
		if reply, closed, err := hostileRead(c, 5*time.Second); err != nil || closed || reply[0] != protocol.MsgSuccess {
			t.Errorf("status after message %d: reply %v, closed %v, err %v", typ, reply, closed, err)
		}
		c.Close()
	}
	hostileList(t, a, "after unknown message numbers")

	// An empty frame: a failure, or a hang-up, and nothing else.
	c := hostileDial(t, a.Sock)
	defer c.Close()
	if _, err := c.Write([]byte{0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	reply, closed, err := hostileRead(c, 5*time.Second)
	if err != nil {
		t.Fatalf("empty frame: %v", err)
	}
	if !closed && (len(reply) != 1 || reply[0] != protocol.MsgFailure) {
		t.Errorf("empty frame: reply %v, want SSH_AGENT_FAILURE or a close", reply)
	}
	if !closed {
		_, closed, _ = hostileRead(c, 2*time.Second)
	}
	t.Logf("empty frame: reply %v, connection closed by the agent: %v", reply, closed)
	hostileList(t, a, "after an empty frame")
	hostileAlive(t, a)
}

// hostilePeekClosed reports whether the peer closed c, without blocking.
func hostilePeekClosed(c net.Conn) bool {
	sc, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	sc.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		closed = n == 0 && err == nil || errors.Is(err, syscall.ECONNRESET)
		return true // do not wait
	})
	return closed
}

// TestHostileIdleConnections opens 10,000 idle connections: the agent
// keeps at most its cap (1024) by closing the longest idle ones, stays
// bounded in descriptors, and answers a new client quickly.
func TestHostileIdleConnections(t *testing.T) {
	const n = 10000
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < n+1000 {
		want := lim
		want.Cur = max(lim.Cur, n+1000)
		want.Max = max(lim.Max, want.Cur)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			t.Skipf("SKIPPED: cannot raise RLIMIT_NOFILE from %d/%d to %d: %v", lim.Cur, lim.Max, want.Cur, err)
		}
		defer syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	a := StartAgent(t, AgentOptions{})
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	start := time.Now()
	var dialErrs int
	for len(conns) < n {
		c, err := net.DialTimeout("unix", a.Sock, 5*time.Second)
		if err != nil {
			// A full backlog: give the agent a moment.
			dialErrs++
			if dialErrs > 1000 {
				t.Fatalf("after %d connections: %v", len(conns), err)
			}
			time.Sleep(time.Millisecond)
			continue
		}
		conns = append(conns, c)
	}
	t.Logf("opened %d idle connections in %v (%d dial retries on a full backlog)", n, time.Since(start).Round(time.Millisecond), dialErrs)
	// The list connection queues behind whatever the agent has not yet
	// accepted: this is the wait a real client sees during such a flood.
	hostileList(t, a, fmt.Sprintf("right after opening %d idle connections", n))
	all := time.Since(start)
	t.Logf("the agent accepted %d connections in %v: %v per connection", n+1, all.Round(time.Millisecond), (all / (n + 1)).Round(time.Microsecond))
	hostileList(t, a, fmt.Sprintf("again, with the %d idle connections still held", n))

	// The list connection came last, so by now every idle one has been
	// accepted (and the oldest ones evicted).
	closed := 0
	for _, c := range conns {
		if hostilePeekClosed(c) {
			closed++
		}
	}
	fds := hostileFDs(a.PID)
	rss, _ := hostileMem(a.PID)
	t.Logf("the agent closed %d of the %d idle connections (%d still open); agent fds %d, VmRSS %d KiB", closed, n, n-closed, fds, rss)
	const maxConns = 1024 // agent.Config's default
	if n-closed > maxConns {
		t.Errorf("%d idle connections still open, more than the cap of %d", n-closed, maxConns)
	}
	if fds < 0 {
		t.Logf("/proc/%d/fd is not readable (not root): fd count not checked", a.PID)
	} else if fds >= maxConns+100 {
		t.Errorf("the agent holds %d descriptors, want < %d", fds, maxConns+100)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	hostileList(t, a, "after the idle connections were closed")
	hostileAlive(t, a)
}

// TestHostileSlowDrip sends a frame one byte per 200 ms: the agent cuts it
// off once the frame timeout (10 s) has passed since the header, and
// serves others meanwhile.
func TestHostileSlowDrip(t *testing.T) {
	const timeout = 10 * time.Second
	a := StartAgent(t, AgentOptions{})
	c := hostileDial(t, a.Sock)
	defer c.Close()
	body := protocol.SimpleExtension(protocol.ExtList)[4:]
	body = append(body, make([]byte, 200)...) // 40 s of dripping
	msg := append(hostileHeader(body), body...)
	cut := make(chan time.Time, 1)
	go func() {
		var b [64]byte
		c.SetReadDeadline(time.Now().Add(time.Minute))
		for {
			if _, err := c.Read(b[:]); err != nil {
				cut <- time.Now()
				return
			}
		}
	}()
	var headerDone time.Time
	var cutAt time.Time
	listed := false
drip:
	for i, b := range msg {
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte{b}); err != nil {
			cutAt = time.Now()
			break
		}
		if i == 3 {
			headerDone = time.Now()
		}
		if i == 10 && !listed {
			hostileList(t, a, "during a slow drip")
			listed = true
		}
		select {
		case cutAt = <-cut:
			break drip
		case <-time.After(200 * time.Millisecond):
		}
		if !headerDone.IsZero() && time.Since(headerDone) > timeout+5*time.Second {
			t.Fatalf("the agent still reads a dripping frame %v after its header", time.Since(headerDone).Round(time.Millisecond))
		}
	}
	if cutAt.IsZero() {
		t.Fatalf("the whole dripped frame was accepted")
	}
	took := cutAt.Sub(headerDone)
	t.Logf("the agent cut off the slow drip %v after the header (frame timeout %v)", took.Round(time.Millisecond), timeout)
	if took > timeout+2*time.Second {
		t.Errorf("cut off after %v, want about %v", took, timeout)
	}
	hostileList(t, a, "after the slow drip")
	hostileAlive(t, a)
}

// Wire helpers for the decoder table.
func hsStr(b []byte) []byte { return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...) }

func hsCat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func hsMpint(n *big.Int) []byte {
	b := n.Bytes()
	if len(b) > 0 && b[0]&0x80 != 0 {
		b = append([]byte{0}, b...)
	}
	return hsStr(b)
}

func hsU32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// hostileCase is a request body (message number included) for the decoder
// table. Its strict prefixes are sent too, as truncated payloads, unless
// complete is set; validPrefix lists prefix lengths that are themselves
// complete messages (which may succeed).
type hostileCase struct {
	name        string
	body        []byte
	complete    bool // send only the whole body: it is malformed as it is
	validPrefix map[int]bool
}

func hostileCases() []hostileCase {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	edPub, _ := ssh.NewPublicKey(pub)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecPub, _ := ssh.NewPublicKey(&ec.PublicKey)
	ecPoint, _ := ec.PublicKey.Bytes()
	ecD := new(big.Int).SetBytes(func() []byte { b, _ := ec.Bytes(); return b }())

	ed := hsCat(hsStr([]byte(ssh.KeyAlgoED25519)), hsStr(pub), hsStr(priv), hsStr([]byte("comment")))
	ecKey := hsCat(hsStr([]byte(ssh.KeyAlgoECDSA256)), hsStr([]byte("nistp256")), hsStr(ecPoint), hsMpint(ecD), hsStr([]byte("comment")))
	zero, one, three := big.NewInt(0), big.NewInt(1), big.NewInt(3)
	rsaZero := hsCat(hsStr([]byte(ssh.KeyAlgoRSA)), hsMpint(zero), hsMpint(three), hsMpint(zero), hsMpint(zero), hsMpint(zero), hsMpint(zero), hsStr(nil))
	rsaOne := hsCat(hsStr([]byte(ssh.KeyAlgoRSA)), hsMpint(one), hsMpint(three), hsMpint(one), hsMpint(one), hsMpint(one), hsMpint(one), hsStr(nil))
	rsaZeroPub := hsCat(hsStr([]byte(ssh.KeyAlgoRSA)), hsMpint(three), hsMpint(zero))
	rsaOnePub := hsCat(hsStr([]byte(ssh.KeyAlgoRSA)), hsMpint(three), hsMpint(one))
	lifetime := hsCat([]byte{1}, hsU32(60))

	ext := func(name string, payload ...[]byte) []byte {
		return hsCat(append([][]byte{{protocol.MsgExtension}, hsStr([]byte(name))}, payload...)...)
	}
	cred := (&protocol.AddRequest{Credential: protocol.Credential{Provider: "hostile", Kind: "oauth", Fields: []protocol.Field{
		{Name: "refresh", Value: []byte("r")}, {Name: "access", Value: []byte("a")}, {Name: "expires", Value: []byte("1")}}}}).Marshal()[4:]
	get := (&protocol.GetRequest{Provider: "hostile", Requester: &protocol.Requester{PID: 1, UID: 2, Exe: "e", Argv0: "a", Cwd: "c", Hostname: "h"}}).Marshal()[4:]
	bind := (&protocol.SessionBind{HostKey: edPub.Marshal(), SessionID: make([]byte, 32), Signature: hsCat(hsStr([]byte("ssh-ed25519")), hsStr(make([]byte, 64))), Forwarding: true}).Marshal()[4:]

	add17 := hsCat([]byte{protocol.MsgAddIdentity}, ed)
	card := hsCat(hsStr([]byte("/usr/lib/nonexistent.so")), hsStr([]byte("1234")))
	return []hostileCase{
		{name: "request identities + junk", body: []byte{protocol.MsgRequestIdentities, 1, 2, 3}, complete: true},
		{name: "sign", body: hsCat([]byte{protocol.MsgSignRequest}, hsStr(edPub.Marshal()), hsStr([]byte("data")), hsU32(0))},
		{name: "sign with a zero RSA key", body: hsCat([]byte{protocol.MsgSignRequest}, hsStr(rsaZeroPub), hsStr([]byte("data")), hsU32(4))},
		{name: "add ed25519", body: add17},
		{name: "add ecdsa", body: hsCat([]byte{protocol.MsgAddIdentity}, ecKey)},
		{name: "add constrained ed25519", body: hsCat([]byte{protocol.MsgAddIDConstrained}, ed, lifetime),
			validPrefix: map[int]bool{len(add17): true}},
		// Complete but absurd keys, then a signature with them.
		{name: "add RSA of zeros", body: hsCat([]byte{protocol.MsgAddIdentity}, rsaZero), complete: true},
		{name: "sign with the RSA key of zeros", body: hsCat([]byte{protocol.MsgSignRequest}, hsStr(rsaZeroPub), hsStr([]byte("data")), hsU32(0)), complete: true},
		{name: "add RSA of ones", body: hsCat([]byte{protocol.MsgAddIdentity}, rsaOne), complete: true},
		{name: "sign with the RSA key of ones", body: hsCat([]byte{protocol.MsgSignRequest}, hsStr(rsaOnePub), hsStr([]byte("data")), hsU32(2)), complete: true},
		{name: "add ecdsa with a bad point", body: hsCat([]byte{protocol.MsgAddIdentity}, hsStr([]byte(ssh.KeyAlgoECDSA256)), hsStr([]byte("nistp256")), hsStr(make([]byte, 65)), hsMpint(one), hsStr(nil)), complete: true},
		{name: "remove identity", body: hsCat([]byte{protocol.MsgRemoveIdentity}, hsStr(ecPub.Marshal()))},
		{name: "add smartcard", body: hsCat([]byte{protocol.MsgAddSmartcardKey}, card)},
		{name: "remove smartcard", body: hsCat([]byte{protocol.MsgRemoveSmartcardKey}, card)},
		{name: "add smartcard constrained", body: hsCat([]byte{protocol.MsgAddSmartcardConstrained}, card, lifetime),
			validPrefix: map[int]bool{1 + len(card): true}},
		// Only strict prefixes of lock: the whole one would lock the agent.
		{name: "lock (prefixes only)", body: hsCat([]byte{protocol.MsgLock}, hsStr([]byte("passphrase")))},
		{name: "unlock", body: hsCat([]byte{protocol.MsgUnlock}, hsStr([]byte("passphrase")))},
		{name: "query", body: ext(protocol.ExtQuery)},
		{name: "session-bind", body: bind},
		{name: "add@llm-agent", body: cred},
		{name: "get@llm-agent", body: get, validPrefix: map[int]bool{len(ext(protocol.ExtGet, hsStr([]byte("hostile")))): true}},
		{name: "list@llm-agent", body: ext(protocol.ExtList)},
		{name: "remove@llm-agent", body: ext(protocol.ExtRemove, hsStr([]byte("hostile")))},
		{name: "remove-all@llm-agent", body: ext(protocol.ExtRemoveAll)},
		{name: "status@llm-agent", body: ext(protocol.ExtStatus)},
		{name: "add@llm-agent with 2^32-1 fields", body: ext(protocol.ExtAdd, hsStr([]byte("p")), hsStr([]byte("api")), hsU32(0xffffffff)), complete: true},
		{name: "add@llm-agent with a 2^32-1 byte value", body: ext(protocol.ExtAdd, hsStr([]byte("p")), hsStr([]byte("api")), hsU32(1), hsStr([]byte("key")), hsU32(0xffffffff), []byte("x")), complete: true},
		{name: "add@llm-agent with 2^32-1 destination chains", body: hsCat(cred, []byte{255}, hsStr([]byte(protocol.ConstraintDestination)), hsU32(0xffffffff)), complete: true},
		{name: "add@llm-agent with 2^32-1 hops", body: hsCat(cred, []byte{255}, hsStr([]byte(protocol.ConstraintDestination)), hsU32(1), hsU32(0xffffffff)), complete: true},
		{name: "add@llm-agent with 2^32-1 host keys", body: hsCat(cred, []byte{255}, hsStr([]byte(protocol.ConstraintDestination)), hsU32(1), hsU32(1), hsStr([]byte("h")), hsU32(0xffffffff)), complete: true},
		{name: "extension with a 2^32-1 byte name", body: hsCat([]byte{protocol.MsgExtension}, hsU32(0xffffffff), []byte("x")), complete: true},
		{name: "unknown extension", body: ext("nonexistent@example.com", []byte("payload"))},
	}
}

// TestHostileDecoderGarbage sends each request type with truncated
// payloads, absurd lengths and random bytes: every one gets a failure
// reply or a closed connection (a complete message hidden in the garbage
// may get its own reply), none hangs, and the agent survives.
func TestHostileDecoderGarbage(t *testing.T) {
	a := StartAgent(t, AgentOptions{Debug: true})
	var c net.Conn
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	counts := map[string]int{}
	// send returns the reply's message number, or -1 for a closed
	// connection.
	send := func(what string, body []byte) int {
		t.Helper()
		if c == nil {
			c = hostileDial(t, a.Sock)
		}
		if err := hostileSend(c, body); err != nil {
			c.Close()
			c = nil
			counts["closed"]++
			return -1
		}
		reply, closed, err := hostileRead(c, 10*time.Second)
		if err != nil {
			hostileAlive(t, a)
			t.Fatalf("%s: no reply and no close within 10 s: %v", what, err)
		}
		if closed {
			c.Close()
			c = nil
			counts["closed"]++
			return -1
		}
		counts[fmt.Sprintf("reply %d", reply[0])]++
		return int(reply[0])
	}
	failure := func(r int) bool { return r == -1 || r == protocol.MsgFailure || r == protocol.MsgExtensionFailure }

	sent := 0
	for _, tc := range hostileCases() {
		if tc.complete {
			r := send(tc.name, tc.body)
			sent++
			t.Logf("%s (%d bytes): reply %d", tc.name, len(tc.body), r)
			continue
		}
		for n := 1; n < len(tc.body); n++ {
			r := send(fmt.Sprintf("%s cut to %d of %d bytes", tc.name, n, len(tc.body)), tc.body[:n])
			sent++
			if !failure(r) && !tc.validPrefix[n] {
				t.Errorf("%s cut to %d of %d bytes: reply %d, want a failure or a close", tc.name, n, len(tc.body), r)
			}
		}
		hostileAlive(t, a)
	}

	// Random payloads behind every message number (but lock, which could
	// by chance be a valid lock request), seeded for repeatability.
	seed := uint64(time.Now().UnixNano())
	rng := mrand.New(mrand.NewPCG(seed, 1))
	t.Logf("random payload seed %d", seed)
	for typ := 0; typ < 256; typ++ {
		if typ == protocol.MsgLock {
			continue
		}
		for range 8 {
			body := make([]byte, 1+rng.IntN(300))
			body[0] = byte(typ)
			for i := 1; i < len(body); i++ {
				body[i] = byte(rng.Uint32())
			}
			if rng.IntN(2) == 0 && len(body) >= 5 {
				copy(body[1:], []byte{0xff, 0xff, 0xff, 0xff}) // an absurd first length
			}
			send(fmt.Sprintf("message %d with %d random bytes", typ, len(body)-1), body)
			sent++
		}
	}
	for _, name := range protocol.Extensions {
		for range 20 {
			body := protocol.SimpleExtension(name)[4:]
			for range 1 + rng.IntN(300) {
				body = append(body, byte(rng.Uint32()))
			}
			send(fmt.Sprintf("%s with random bytes", name), body)
			sent++
		}
	}
	t.Logf("sent %d malformed requests; outcomes: %v", sent, counts)
	hostileAlive(t, a)
	hostileNoPanic(t, a)
	hostileList(t, a, "after the decoder table")
	st, err := func() (*protocol.Status, error) {
		c, err := protocol.Dial(a.Sock)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		return c.Status()
	}()
	if err != nil || st.Locked {
		t.Errorf("status after the table: %+v, %v (want unlocked)", st, err)
	}
}

package e2e

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/llm-agent/llm-agent/internal/sshtest"
	"github.com/llm-agent/llm-agent/protocol"
)

// The TestFault tests cover issue 8: faults (stopped and killed
// processes) and hostile input. They measure times and log them; the
// bounds they assert are the ones the issue names. Not parallel: they
// measure times.

// faultStop sends SIGSTOP to pid and waits until it is stopped; the
// returned func resumes it (also at cleanup, before anything else stops it).
func faultStop(t testing.TB, what string, pid int) func() {
	t.Helper()
	resume := func() { syscall.Kill(pid, syscall.SIGCONT) }
	t.Cleanup(resume)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP %s (pid %d): %v", what, pid, err)
	}
	if _, ok := waitFor(5*time.Second, func() bool { s, _, _ := procState(pid); return s == "T" }); !ok {
		t.Fatalf("%s (pid %d) did not stop", what, pid)
	}
	return resume
}

// TestFaultTimeoutStoppedAgent: a get from an agent that stopped
// answering (SIGSTOP) fails with exit 2 and one line once
// LLM_AGENT_TIMEOUT has passed, 30 s by default; a bad LLM_AGENT_TIMEOUT is
// refused at once.
func TestFaultTimeoutStoppedAgent(t *testing.T) {
	a := StartAgent(t, AgentOptions{})
	token := fwdToken(t, "sk-fault-stop")
	if r := a.Client(t, token, "add", "anthropic"); r.Code != 0 {
		t.Fatalf("add: %+v", r)
	}
	resume := faultStop(t, "the agent", a.PID)
	// The default time-out takes 30 s: start it first, check it last.
	def := faultStart(t, a.Env(), bins.Client, "get", "anthropic")

	for _, tc := range []struct {
		name  string
		env   []string
		args  []string
		limit time.Duration
	}{
		{"get, LLM_AGENT_TIMEOUT=3s", a.Env("LLM_AGENT_TIMEOUT=3s"), []string{"get", "anthropic"}, faultTimeout},
		{"get, LLM_AGENT_TIMEOUT=2 (seconds)", a.Env("LLM_AGENT_TIMEOUT=2"), []string{"get", "anthropic"}, 2 * time.Second},
		{"list, LLM_AGENT_TIMEOUT=3s", a.Env("LLM_AGENT_TIMEOUT=3s"), []string{"list"}, faultTimeout},
		// Found through SSH_AUTH_SOCK, as on a server: the probe that it
		// is an llm-agent is bounded too.
		{"get via SSH_AUTH_SOCK, LLM_AGENT_TIMEOUT=3s", append(cleanEnv(), "SSH_AUTH_SOCK="+a.Sock, "LLM_AGENT_TIMEOUT=3s"), []string{"get", "anthropic"}, faultTimeout},
	} {
		start := time.Now()
		r := Run(t, tc.env, "", bins.Client, tc.args...)
		took := time.Since(start)
		msg := faultOneLine(t, tc.name, r.Stderr, "llm-agent-client: "+tc.args[0]+": ")
		t.Logf("%s: exit %d after %v: %s", tc.name, r.Code, took.Round(time.Millisecond), msg)
		if r.Code != 2 {
			t.Errorf("%s: exit %d, want 2", tc.name, r.Code)
		}
		if took >= tc.limit+faultTimeoutSlack {
			t.Errorf("%s: failed after %v, want < %v", tc.name, took, tc.limit+faultTimeoutSlack)
		}
		if strings.Contains(r.Stdout, token) {
			t.Errorf("%s: the credential was printed", tc.name)
		}
	}

	for _, v := range []string{"soon", "-1s", "0", "NaN", "5 minutes"} {
		start := time.Now()
		r := Run(t, a.Env("LLM_AGENT_TIMEOUT="+v), "", bins.Client, "get", "anthropic")
		took := time.Since(start)
		msg := faultOneLine(t, "LLM_AGENT_TIMEOUT="+v, r.Stderr, "llm-agent-client: get: ")
		if r.Code != 1 || !strings.Contains(msg, "LLM_AGENT_TIMEOUT") || took > faultFast {
			t.Errorf("LLM_AGENT_TIMEOUT=%q: exit %d after %v, %q; want exit 1 at once, naming LLM_AGENT_TIMEOUT", v, r.Code, took, msg)
		}
	}

	r, ok := def.wait(protocol.DefaultTimeout + 10*time.Second)
	if !ok {
		t.Fatalf("get with the default time-out still runs %v after it started", time.Since(def.started))
	}
	took := def.ended.Sub(def.started)
	msg := faultOneLine(t, "default time-out", r.Stderr, "llm-agent-client: get: ")
	t.Logf("get, default time-out (%v): exit %d after %v: %s", protocol.DefaultTimeout, r.Code, took.Round(time.Millisecond), msg)
	if r.Code != 2 || took >= protocol.DefaultTimeout+faultTimeoutSlack {
		t.Errorf("get with the default time-out: exit %d after %v, want 2 within %v", r.Code, took, protocol.DefaultTimeout+faultTimeoutSlack)
	}

	resume()
	r = a.Client(t, "", "get", "anthropic")
	if r.Code != 0 {
		t.Errorf("get after SIGCONT: %+v", r)
	}
	fwdSameSecret(t, "get after SIGCONT", r.Stdout, token)
}

// TestFaultTimeoutForwarded: a get on the server through a forwarded
// socket whose laptop side stopped answering (the laptop's ssh client, or
// the agent behind it, SIGSTOPped) fails with exit 2 and one line within
// LLM_AGENT_TIMEOUT (3 s here) and a second.
func TestFaultTimeoutForwarded(t *testing.T) {
	r := newFwdRig(t, AgentOptions{Debug: true})
	a := r.agent
	srv := sshtest.Start(t, sshtest.Options{Name: "faulttimeout"})
	token := fwdToken(t, "sk-fault-fwdstop")
	if res := a.Client(t, token, "add", "anthropic"); res.Code != 0 {
		t.Fatalf("add on the laptop: %+v", res)
	}
	for i, tc := range []struct {
		name string
		pid  func(s *faultSession) int
	}{
		{"laptop ssh client stopped", func(s *faultSession) int { return s.cmd.Process.Pid }},
		{"laptop agent stopped", func(*faultSession) int { return a.PID }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			result := filepath.Join(r.user.Home, fmt.Sprintf("timeout-%d", i))
			goFile := result + ".go"
			// A control get first, then wait for the test's go-ahead
			// (a file: stdin does not pass a stopped ssh), then the timed
			// get.
			script := fmt.Sprintf(`rm -f '%[1]s' '%[1]s.err' '%[2]s'
"$C" get anthropic >/dev/null 2>&1 || { echo "control get failed: $?"; exit 1; }
echo ready
while [ ! -e '%[2]s' ]; do sleep 0.05; done
%[3]s
wait`, result, goFile, faultTimedGet("LLM_AGENT_TIMEOUT=3s", "anthropic", result))
			s := faultStartSession(t, r.cmd(srv, fwdPrimary, nil, script))
			pid := tc.pid(s)
			resume := faultStop(t, tc.name, pid)
			if err := os.WriteFile(goFile, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			res := faultWaitResult(t, result, protocol.DefaultTimeout+10*time.Second)
			resume()
			errb, _ := os.ReadFile(result + ".err")
			took := res.ended.Sub(res.start)
			msg := faultOneLine(t, tc.name, string(errb), "llm-agent-client: get: ")
			t.Logf("%s: get on the server with LLM_AGENT_TIMEOUT=3s: exit %d after %v: %s", tc.name, res.rc, took.Round(time.Millisecond), msg)
			if res.rc != 2 {
				t.Errorf("%s: exit %d, want 2", tc.name, res.rc)
			}
			if took >= faultTimeout+faultTimeoutSlack {
				t.Errorf("%s: failed after %v, want < %v", tc.name, took, faultTimeout+faultTimeoutSlack)
			}
			select {
			case <-s.done:
			case <-time.After(10 * time.Second):
				t.Errorf("the ssh session did not end within 10 s of SIGCONT")
			}
		})
	}
	// Resumed, the path works again.
	res := r.ssh(srv, fwdPrimary, "", `"$C" get anthropic`)
	if res.Code != 0 {
		t.Fatalf("get on the server after SIGCONT: exit %d, %q", res.Code, res.Stderr)
	}
	fwdSameSecret(t, "get on the server after SIGCONT", res.Stdout, token)
}

// TestFaultKillAgent: kill -9 of the agent while gets wait for it (one in
// a confirm prompt, the others for their turn): each fails at once with
// exit 2; a new get sees the stale socket; an agent restarted on the same
// -a path replaces the stale socket and serves.
func TestFaultKillAgent(t *testing.T) {
	askpass, pids := faultSleepyAskpass(t)
	env := []string{"LLM_AGENT_ASKPASS=" + askpass}
	a := StartAgent(t, AgentOptions{Env: env})
	dir := filepath.Dir(a.Sock)
	token := fwdToken(t, "sk-fault-kill")
	if r := a.Client(t, token, "add", "-c", "confirmed"); r.Code != 0 {
		t.Fatalf("add -c: %+v", r)
	}
	const n = 4
	var gets []*faultProc
	for range n {
		gets = append(gets, faultStart(t, a.Env(), bins.Client, "get", "confirmed"))
	}
	faultWaitAskpass(t, pids, 10*time.Second)
	time.Sleep(300 * time.Millisecond) // the others reach the agent and wait their turn
	for i, p := range gets {
		if !p.running() {
			r, _ := p.wait(0)
			t.Fatalf("get %d ended before the kill: exit %d, %q", i, r.Code, r.Stderr)
		}
	}

	killed := time.Now()
	a.Kill()
	var slowest time.Duration
	for i, p := range gets {
		r, ok := p.wait(protocol.DefaultTimeout + 5*time.Second)
		if !ok {
			t.Fatalf("get %d still runs after the agent was killed", i)
		}
		took := p.ended.Sub(killed)
		slowest = max(slowest, took)
		msg := faultOneLine(t, fmt.Sprintf("get %d", i), r.Stderr, "llm-agent-client: get: ")
		t.Logf("waiting get %d: exit %d %v after kill -9 of the agent: %s", i, r.Code, took.Round(time.Microsecond), msg)
		if r.Code != 2 || took >= faultFast {
			t.Errorf("waiting get %d: exit %d after %v, want 2 within %v", i, r.Code, took, faultFast)
		}
		if strings.Contains(r.Stdout, token) {
			t.Errorf("waiting get %d printed the credential", i)
		}
	}
	t.Logf("all %d waiting gets failed within %v of the kill", n, slowest.Round(time.Microsecond))

	if fi, err := os.Lstat(a.Sock); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("the killed agent's socket is not left behind (%v): nothing to test the restart on", err)
	}
	start := time.Now()
	r := a.Client(t, "", "get", "confirmed")
	took := time.Since(start)
	msg := faultOneLine(t, "get on the stale socket", r.Stderr, "llm-agent-client: get: ")
	t.Logf("get on the stale socket: exit %d after %v: %s", r.Code, took.Round(time.Microsecond), msg)
	if r.Code != 2 || took >= faultFast {
		t.Errorf("get on the stale socket: exit %d after %v, want 2 at once", r.Code, took)
	}

	b := StartAgent(t, AgentOptions{Dir: dir, Env: env})
	if b.Sock != a.Sock {
		t.Fatalf("restarted agent on %s, want %s", b.Sock, a.Sock)
	}
	t.Logf("restarted agent pid %d on the same -a path %s", b.PID, b.Sock)
	if fi, err := os.Lstat(b.Sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the new socket: %v, mode %v; want 0600", err, fi.Mode())
	}
	if r := b.Client(t, "", "list", "--json"); r.Code != 0 || strings.TrimSpace(r.Stdout) != "[]" {
		t.Errorf("list on the restarted agent: %+v; want an empty list (nothing survives a kill)", r)
	}
	token2 := fwdToken(t, "sk-fault-restart")
	if r := b.Client(t, token2, "add", "anthropic"); r.Code != 0 {
		t.Fatalf("add on the restarted agent: %+v", r)
	}
	r = b.Client(t, "", "get", "anthropic")
	if r.Code != 0 {
		t.Errorf("get on the restarted agent: %+v", r)
	}
	fwdSameSecret(t, "get on the restarted agent", r.Stdout, token2)
	hostileNoPanic(t, b)
}

// TestFaultKillSSH: kill -9 of the laptop's ssh client while a get on
// the server waits in a confirm prompt: the get fails at once with exit 2.
func TestFaultKillSSH(t *testing.T) {
	askpass, pids := faultSleepyAskpass(t)
	r := newFwdRig(t, AgentOptions{Debug: true, Env: []string{"LLM_AGENT_ASKPASS=" + askpass}})
	a := r.agent
	srv := sshtest.Start(t, sshtest.Options{Name: "faultkillssh"})
	token := fwdToken(t, "sk-fault-killssh")
	if res := a.Client(t, token, "add", "-c", "confirmed"); res.Code != 0 {
		t.Fatalf("add -c on the laptop: %+v", res)
	}
	result := filepath.Join(r.user.Home, "killssh")
	script := fmt.Sprintf("rm -f '%[1]s' '%[1]s.err'\n%[2]s\necho ready\nexec cat >/dev/null", result, faultTimedGet("", "confirmed", result))
	s := faultStartSession(t, r.cmd(srv, fwdPrimary, nil, script))
	faultWaitAskpass(t, pids, 10*time.Second)

	killed := time.Now()
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	res := faultWaitResult(t, result, protocol.DefaultTimeout+10*time.Second)
	errb, _ := os.ReadFile(result + ".err")
	took := res.ended.Sub(killed)
	msg := faultOneLine(t, "get in flight", string(errb), "llm-agent-client: get: ")
	t.Logf("get in flight on the server: exit %d %v after kill -9 of the laptop's ssh (it ran %v): %s",
		res.rc, took.Round(time.Millisecond), res.ended.Sub(res.start).Round(time.Millisecond), msg)
	if res.rc != 2 || took >= faultFast {
		t.Errorf("get in flight: exit %d %v after the kill, want 2 within %v", res.rc, took, faultFast)
	}
	// The laptop's agent does not care.
	if r := a.Client(t, "", "list"); r.Code != 0 || !strings.Contains(r.Stdout, "confirmed") {
		t.Errorf("list on the laptop after the kill: %+v", r)
	}
	hostileAlive(t, a)
}

// TestFaultKillGuard: kill -9 of the guard on a shared account: a get in
// flight through it and the owner's next get through the stable path both
// fail at once with exit 2.
func TestFaultKillGuard(t *testing.T) {
	askpass, pids := faultSleepyAskpass(t)
	r := newGrdRig(t, "faultguard")
	a := StartAgent(t, AgentOptions{Debug: true, Audit: true, Env: []string{"LLM_AGENT_ASKPASS=" + askpass}})
	token := fwdToken(t, "sk-fault-grd")
	if res := a.Client(t, token, "add", "anthropic"); res.Code != 0 {
		t.Fatalf("add on the laptop: %+v", res)
	}
	if res := a.Client(t, fwdToken(t, "sk-fault-grdc"), "add", "-c", "confirmed"); res.Code != 0 {
		t.Fatalf("add -c on the laptop: %+v", res)
	}
	owner := r.login("owner", a.Sock)
	g := owner.startGuard()
	if res := owner.try(""); res.rc != 0 {
		t.Fatalf("get through the guard before the kill: exit %d, %q", res.rc, res.stderr)
	} else {
		fwdSameSecret(t, "get through the guard", res.out, token)
	}

	result := filepath.Join(r.user.Home, "killguard")
	if out, rc := owner.Run(fmt.Sprintf("rm -f '%[1]s' '%[1]s.err'\n%[2]s", result, faultTimedGet("", "confirmed", result))); rc != 0 {
		t.Fatalf("starting the get in flight: exit %d, %q", rc, out)
	}
	faultWaitAskpass(t, pids, 10*time.Second)

	killed := time.Now()
	if err := syscall.Kill(g.PID, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 the guard (pid %d): %v", g.PID, err)
	}
	res := faultWaitResult(t, result, protocol.DefaultTimeout+10*time.Second)
	errb, _ := os.ReadFile(result + ".err")
	took := res.ended.Sub(killed)
	msg := faultOneLine(t, "get in flight through the guard", string(errb), "llm-agent-client: get: ")
	t.Logf("get in flight through the guard: exit %d %v after kill -9 of the guard: %s", res.rc, took.Round(time.Millisecond), msg)
	if res.rc != 2 || took >= faultFast {
		t.Errorf("get in flight through the guard: exit %d %v after the kill, want 2 within %v", res.rc, took, faultFast)
	}

	out, rc := owner.Run(`s=$(date +%s%N); "$C" get anthropic >/dev/null 2>"$HOME/next.err"; rc=$?; e=$(date +%s%N)
echo "$rc $((e - s)) $LLM_AUTH_SOCK"; cat "$HOME/next.err"`)
	first, rest, _ := strings.Cut(out, "\n")
	f := strings.Fields(first)
	if rc != 0 || len(f) != 3 {
		t.Fatalf("the owner's next get: %q (exit %d)", out, rc)
	}
	if f[2] != g.Sock {
		t.Errorf("the owner's shell uses LLM_AUTH_SOCK=%s, want the guard's stable path %s", f[2], g.Sock)
	}
	ns, _ := strconv.ParseInt(f[1], 10, 64)
	took = time.Duration(ns)
	msg = faultOneLine(t, "the owner's next get", rest, "llm-agent-client: get: ")
	t.Logf("the owner's next get through the stable path after kill -9 of the guard: exit %s after %v: %s", f[0], took.Round(time.Microsecond), msg)
	if f[0] != "2" || took >= faultFast {
		t.Errorf("the owner's next get: exit %s after %v, want 2 at once", f[0], took)
	}
	hostileAlive(t, a)
}

// TestFaultHalfOpen: clients that shut down their side of the connection
// at every stage of a frame. The agent answers what it got in full and
// closes each connection (the time it takes is logged; a hang fails); a
// client that stops reading (its read side shut down) is dropped when a
// reply cannot be written. Meanwhile a well-behaved client's list answers
// within a second.
func TestFaultHalfOpen(t *testing.T) {
	a := StartAgent(t, AgentOptions{})
	if r := a.Client(t, fwdToken(t, "sk-fault-half"), "add", "anthropic"); r.Code != 0 {
		t.Fatalf("add: %+v", r)
	}
	list := protocol.SimpleExtension(protocol.ExtList)
	partial := append(binary.BigEndian.AppendUint32(nil, 100), make([]byte, 50)...)
	p := faultStartProbe(a)
	for _, tc := range []struct {
		name    string
		send    []byte
		replies int // complete requests in send
	}{
		{"nothing sent", nil, 0},
		{"half a header", []byte{0, 0}, 0},
		{"a header announcing 100 bytes", binary.BigEndian.AppendUint32(nil, 100), 0},
		{"a header and 50 of 100 bytes", partial, 0},
		{"a whole list request", list, 1},
		{"a list request and half of another", append(bytes.Clone(list), partial...), 1},
		{"two list requests", append(bytes.Clone(list), list...), 2},
	} {
		c := hostileDial(t, a.Sock)
		if len(tc.send) > 0 {
			if _, err := c.Write(tc.send); err != nil {
				t.Fatalf("%s: write: %v", tc.name, err)
			}
		}
		if err := c.(*net.UnixConn).CloseWrite(); err != nil {
			t.Fatalf("%s: shutdown(SHUT_WR): %v", tc.name, err)
		}
		shut := time.Now()
		got := 0
		for {
			body, closed, err := hostileRead(c, 5*time.Second)
			if err != nil {
				t.Fatalf("%s: neither a reply nor a close within 5 s of shutdown(SHUT_WR): %v", tc.name, err)
			}
			if closed {
				break
			}
			if body[0] != protocol.MsgSuccess {
				t.Errorf("%s: reply %d, want SSH_AGENT_SUCCESS", tc.name, body[0])
			} else if _, err := protocol.ParseListReply(body[1:]); err != nil {
				t.Errorf("%s: list reply: %v", tc.name, err)
			}
			got++
		}
		took := time.Since(shut)
		c.Close()
		t.Logf("%s, then shutdown(SHUT_WR): %d replies, closed by the agent %v later", tc.name, got, took.Round(time.Microsecond))
		if got != tc.replies {
			t.Errorf("%s: %d replies, want %d", tc.name, got, tc.replies)
		}
	}

	// Many at once, held open on our side: the agent drops them all.
	fds0 := hostileFDs(a.PID)
	const many = 400
	conns := make([]net.Conn, 0, many)
	for i := range many {
		c := hostileDial(t, a.Sock)
		conns = append(conns, c)
		c.Write(partial[:i%len(partial)])
		c.(*net.UnixConn).CloseWrite()
	}
	start := time.Now()
	if fds0 >= 0 {
		took, ok := waitFor(5*time.Second, func() bool { return hostileFDs(a.PID) <= fds0 })
		t.Logf("%d half-open connections: the agent's descriptors back to %d after %v (now %d)", many, fds0, took.Round(time.Millisecond), hostileFDs(a.PID))
		if !ok {
			t.Errorf("the agent holds %d descriptors 5 s after %d half-open connections, %d before", hostileFDs(a.PID), many, fds0)
		}
	}
	closed := 0
	for _, c := range conns {
		if hostilePeekClosed(c) {
			closed++
		}
		c.Close()
	}
	t.Logf("%d of %d half-open connections closed by the agent within %v", closed, many, time.Since(start).Round(time.Millisecond))
	if closed != many {
		t.Errorf("%d of %d half-open connections still open on the agent's side", many-closed, many)
	}

	// The read side shut down: the client keeps sending, never reads.
	c := hostileDial(t, a.Sock)
	defer c.Close()
	if err := c.(*net.UnixConn).CloseRead(); err != nil {
		t.Fatalf("shutdown(SHUT_RD): %v", err)
	}
	start = time.Now()
	var werr error
	for i := 0; i < 1000 && werr == nil; i++ {
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, werr = c.Write(list)
		time.Sleep(time.Millisecond)
	}
	t.Logf("a client with its read side shut down: after %v its writes fail with %v", time.Since(start).Round(time.Millisecond), werr)
	if werr == nil || !(errors.Is(werr, syscall.EPIPE) || errors.Is(werr, syscall.ECONNRESET)) {
		t.Errorf("a client that cannot receive replies kept its connection (write error %v), want the agent to close it", werr)
	}
	p.finish(t, "half-open connections")
	hostileAlive(t, a)
	hostileNoPanic(t, a)
}

// TestFaultNeverReads: clients ask for a large list (about 1.5 MB, far
// over a socket's buffer) and never read it: the agent gives up writing
// after its frame time-out (10 s) and closes them, and meanwhile answers a
// well-behaved client's list within a second.
func TestFaultNeverReads(t *testing.T) {
	const frameTimeout = 10 * time.Second
	a := StartAgent(t, AgentOptions{})
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	// Destination chains with long host names make large list entries.
	var chains []protocol.Chain
	for j := range protocol.MaxChains {
		chains = append(chains, protocol.Chain{{Host: fmt.Sprintf("h%02d-%s", j, strings.Repeat("x", 4000)), Keys: [][]byte{key.Marshal()}}})
	}
	c, err := protocol.Dial(a.Admin)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 24 {
		req := &protocol.AddRequest{
			Credential:  protocol.Credential{Provider: fmt.Sprintf("big-%02d", i), Kind: protocol.KindAPI, Fields: []protocol.Field{{Name: protocol.FieldKey, Value: []byte("sk-fault-big")}}},
			Constraints: protocol.Constraints{Destinations: chains},
		}
		if err := c.Add(req); err != nil {
			t.Fatalf("add %s: %v", req.Provider, err)
		}
	}
	c.Close()
	// The reply's size, read on a raw connection.
	rc := hostileDial(t, a.Sock)
	if err := hostileSend(rc, protocol.SimpleExtension(protocol.ExtList)[4:]); err != nil {
		t.Fatal(err)
	}
	rc.SetReadDeadline(time.Now().Add(10 * time.Second))
	reply, err := protocol.ReadFrame(rc, protocol.MaxReply)
	rc.Close()
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	t.Logf("the list reply is %d bytes", len(reply)+4)

	fds0 := hostileFDs(a.PID)
	p := faultStartProbe(a)
	const readers = 16
	var conns []net.Conn
	for range readers {
		c := hostileDial(t, a.Sock)
		defer c.Close()
		conns = append(conns, c)
		// Four requests, pipelined: the agent writes replies it cannot
		// deliver.
		for range 4 {
			if err := hostileSend(c, protocol.SimpleExtension(protocol.ExtList)[4:]); err != nil {
				t.Fatal(err)
			}
		}
	}
	sent := time.Now()
	if fds0 >= 0 {
		took, ok := waitFor(frameTimeout+10*time.Second, func() bool { return hostileFDs(a.PID) <= fds0 })
		t.Logf("%d clients that never read: the agent dropped them %v after their requests (frame time-out %v)", readers, took.Round(time.Millisecond), frameTimeout)
		if !ok {
			t.Errorf("the agent still holds %d descriptors (%d before) %v after %d clients stopped reading", hostileFDs(a.PID), fds0, took, readers)
		} else if took > frameTimeout+2*time.Second {
			t.Errorf("the agent dropped the clients that never read after %v, want about %v", took, frameTimeout)
		}
	} else {
		time.Sleep(frameTimeout + 2*time.Second)
	}
	p.finish(t, "clients that never read a 1.5 MB list")
	// What the clients that never read can still read: part of a reply,
	// then the close.
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := io.Copy(io.Discard, c)
		if err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("client %d: reading what the agent wrote: %v after %d bytes (not closed?)", i, err, n)
		}
		if i == 0 {
			t.Logf("a client that never read finds %d bytes and then the close (%v after its requests)", n, time.Since(sent).Round(time.Millisecond))
		}
		if n >= 4*int64(len(reply)+4) {
			t.Errorf("client %d received all four replies: the agent did not give up", i)
		}
	}
	hostileList(t, a, "after the clients that never read")
	hostileAlive(t, a)
}

// TestFaultEveryLength sends frames of every length from 0 to 4096 bytes,
// then every 997 bytes up to 300 KiB, each a header and that many random
// bytes on its own connection: each gets a reply or a close within 5 s
// (frames over 256 KiB a failure and a close), and a well-behaved client's
// list answers within a second throughout.
func TestFaultEveryLength(t *testing.T) {
	a := StartAgent(t, AgentOptions{})
	if r := a.Client(t, fwdToken(t, "sk-fault-len"), "add", "anthropic"); r.Code != 0 {
		t.Fatalf("add: %+v", r)
	}
	var lengths []int
	for n := 0; n <= 4096; n++ {
		lengths = append(lengths, n)
	}
	for n := 4096 + 997; n <= 300<<10; n += 997 {
		lengths = append(lengths, n)
	}
	seed := uint64(time.Now().UnixNano())
	rng := mrand.New(mrand.NewPCG(seed, 8))
	t.Logf("%d lengths, random seed %d", len(lengths), seed)
	outcomes := map[string]int{}
	buf := make([]byte, 300<<10)
	start := time.Now()
	p := faultStartProbe(a)
	for _, n := range lengths {
		body := buf[:n]
		for i := range body {
			body[i] = byte(rng.Uint32())
		}
		// A random lock request could lock the agent and fail the probe
		// for a reason that is no fault.
		if n > 0 && body[0] == protocol.MsgLock {
			body[0] = protocol.MsgExtension
		}
		var c net.Conn
		var err error
		for dial := time.Now(); ; time.Sleep(time.Millisecond) {
			if c, err = dialUnix(a.Sock); err == nil || !errors.Is(err, syscall.EAGAIN) || time.Since(dial) > 5*time.Second {
				break
			}
		}
		if err != nil {
			t.Fatalf("length %d: dial: %v", n, err)
		}
		wrote := make(chan error, 1)
		go func() {
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			_, err := c.Write(append(binary.BigEndian.AppendUint32(nil, uint32(n)), body...))
			wrote <- err
		}()
		reply, closed, err := hostileRead(c, 5*time.Second)
		werr := <-wrote
		c.Close()
		switch {
		case err != nil:
			hostileAlive(t, a)
			t.Fatalf("length %d: neither a reply nor a close within 5 s: %v (write: %v)", n, err, werr)
		case closed:
			outcomes["closed"]++
		default:
			outcomes[fmt.Sprintf("reply %d", reply[0])]++
		}
		if (n == 0 || n > protocol.MaxFrame) && !closed && (len(reply) != 1 || reply[0] != protocol.MsgFailure) {
			t.Errorf("length %d: reply %v, want SSH_AGENT_FAILURE or a close", n, reply)
		}
		if werr != nil && n <= protocol.MaxFrame {
			t.Errorf("length %d: writing the frame: %v", n, werr)
		}
	}
	t.Logf("%d frames in %v; outcomes: %v", len(lengths), time.Since(start).Round(time.Millisecond), outcomes)
	p.finish(t, "frames of every length")
	hostileAlive(t, a)
	hostileNoPanic(t, a)
}

// faultFile is a valid file of a format, with fresh marker secrets.
type faultFile struct {
	format  string
	data    []byte
	secrets []string
}

func faultFiles(t testing.TB) []faultFile {
	t.Helper()
	ant, orr := fwdToken(t, "sk-ant-faultfile"), fwdToken(t, "sk-or-faultfile")
	cla, clr := fwdToken(t, "sk-ant-oat01-faultfile"), fwdToken(t, "sk-ant-ort01-faultfile")
	cxa, cxr, cxk := fwdToken(t, "eyJfaultfile"), fwdToken(t, "rt-faultfile"), fwdToken(t, "sk-proj-faultfile")
	return []faultFile{
		{"opencode", []byte(`{
  "anthropic": {"type": "api", "key": "` + ant + `"},
  "openrouter": {"type": "api", "key": "` + orr + `"}
}
`), []string{ant, orr}},
		{"claude", []byte(`{
  "claudeAiOauth": {
    "accessToken": "` + cla + `",
    "refreshToken": "` + clr + `",
    "expiresAt": 1766390400000,
    "scopes": ["user:inference"],
    "subscriptionType": "max"
  }
}
`), []string{cla, clr}},
		{"codex", []byte(`{
  "OPENAI_API_KEY": "` + cxk + `",
  "tokens": {
    "id_token": "eyJhbGciOiJub25lIn0.e30.",
    "access_token": "` + cxa + `",
    "refresh_token": "` + cxr + `",
    "account_id": "00000000-fault-0000-0000-000000000000"
  },
  "last_refresh": "2025-12-22T00:00:00.000000Z"
}
`), []string{cxa, cxr, cxk}},
	}
}

// faultVariant is a broken file.
type faultVariant struct {
	name string
	data []byte
}

// faultBadVariants derives broken files from a valid one of a format.
func faultBadVariants(f faultFile) []faultVariant {
	d := f.data
	first := bytes.IndexByte(d[1:], '}') + 2 // just past the first inner object
	utf16 := []byte{0xff, 0xfe}
	for _, r := range string(d) {
		utf16 = append(utf16, byte(r), byte(r>>8))
	}
	latin1 := bytes.Replace(d, []byte(f.secrets[0]), append([]byte(f.secrets[0][:8]), 0xe9, 0xff, 0xfe), 1)
	out := []faultVariant{
		{"empty", []byte{}},
		{"truncated to half", d[:len(d)/2]},
		{"truncated after the first object", d[:first]},
		{"last brace missing", bytes.TrimRight(d, "}\n")},
		{"a JSON array", []byte(`[` + string(d) + `]`)},
		{"a string", []byte(`"` + f.secrets[0] + `"`)},
		{"UTF-16 with a byte order mark", utf16},
		{"Latin-1 bytes in a secret", latin1},
		{"a NUL byte", append(bytes.Clone(d[:10]), append([]byte{0}, d[10:]...)...)},
	}
	switch f.format {
	case "opencode":
		out = append(out,
			faultVariant{"key a number", []byte(`{"anthropic": {"type": "api", "key": 12345}}`)},
			faultVariant{"entry a string", []byte(`{"anthropic": "` + f.secrets[0] + `"}`)},
			faultVariant{"expires a string", []byte(`{"anthropic": {"type": "oauth", "refresh": "r", "access": "a", "expires": "tomorrow"}}`)},
			faultVariant{"type unknown", []byte(`{"anthropic": {"type": 7, "key": "k"}}`)},
			faultVariant{"a good entry, then a key null", []byte(`{"aaa-good": {"type": "api", "key": "` + f.secrets[0] + `"}, "zzz-bad": {"type": "api", "key": null}}`)},
			// Parsed, but refused by the client's checks before it adds.
			faultVariant{"a good entry, then a provider name of 100 characters", []byte(`{"aaa-good": {"type": "api", "key": "` + f.secrets[0] + `"}, "` + strings.Repeat("z", 100) + `": {"type": "api", "key": "k"}}`)},
			faultVariant{"non-UTF-8 provider name", []byte("{\"anthr\xffopic\": {\"type\": \"api\", \"key\": \"" + f.secrets[0] + "\"}}")},
		)
	case "claude":
		out = append(out,
			faultVariant{"accessToken a number", []byte(`{"claudeAiOauth": {"accessToken": 42, "refreshToken": "r", "expiresAt": 1766390400000}}`)},
			faultVariant{"claudeAiOauth a string", []byte(`{"claudeAiOauth": "` + f.secrets[0] + `"}`)},
			faultVariant{"expiresAt a string", []byte(`{"claudeAiOauth": {"accessToken": "` + f.secrets[0] + `", "refreshToken": "r", "expiresAt": "soon"}}`)},
			faultVariant{"refreshToken a boolean", []byte(`{"claudeAiOauth": {"accessToken": "` + f.secrets[0] + `", "refreshToken": true, "expiresAt": 1}}`)},
		)
	case "codex":
		out = append(out,
			faultVariant{"OPENAI_API_KEY a number", []byte(`{"OPENAI_API_KEY": 5, "tokens": null}`)},
			faultVariant{"tokens a string", []byte(`{"OPENAI_API_KEY": null, "tokens": "` + f.secrets[0] + `"}`)},
			faultVariant{"a good API key, then access_token a number", []byte(`{"OPENAI_API_KEY": "` + f.secrets[2] + `", "tokens": {"access_token": 1, "refresh_token": "r"}}`)},
		)
	}
	return out
}

// TestFaultBadAuthFiles: import of broken auth files of each format
// (truncated, wrong types, not UTF-8, 100 MB, a symlink to /dev/zero,
// unreadable) fails with one line and exit 1, imports nothing and leaves
// the agent as it was. It runs as a fresh non-root user, so that an
// unreadable file is unreadable.
func TestFaultBadAuthFiles(t *testing.T) {
	u := sshtest.NewUser(t, "llme2e")
	dir := publicDir(t, u)
	a := StartAgent(t, AgentOptions{Dir: dir, Cred: u.Cred()})
	env := append(a.Env(), "HOME="+dir)
	client := func(stdin string, args ...string) Result {
		t.Helper()
		r, _ := runAs(t, u.Cred(), env, stdin, 30*time.Second, bins.Client, args...)
		return r
	}
	// What the agent holds before: credentials the files would replace.
	held := map[string]string{}
	for _, p := range []string{"anthropic", "openai", "openrouter"} {
		held[p] = fwdToken(t, "sk-held-"+p)
		if r := client(held[p], "add", p); r.Code != 0 {
			t.Fatalf("add %s: %+v", p, r)
		}
	}
	before := client("", "list", "--json")
	if before.Code != 0 {
		t.Fatalf("list: %+v", before)
	}
	// write makes a file the user owns (root writes it, as the user
	// cannot write root's temp files).
	n := 0
	write := func(data []byte) string {
		t.Helper()
		n++
		path := filepath.Join(dir, fmt.Sprintf("auth-%d.json", n))
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(path, int(u.UID), int(u.GID)); err != nil {
			t.Fatal(err)
		}
		return path
	}

	files := faultFiles(t)
	var allSecrets []string
	for _, f := range files {
		allSecrets = append(allSecrets, f.secrets...)
	}
	for _, f := range files {
		type bad struct{ name, path string }
		var cases []bad
		for _, v := range faultBadVariants(f) {
			cases = append(cases, bad{v.name, write(v.data)})
		}
		// 100 MB, sparse: a valid start, then zeros.
		huge := write(f.data)
		if err := os.Truncate(huge, 100<<20); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, bad{"100 MB (sparse)", huge})
		zero := filepath.Join(dir, f.format+"-zero.json")
		if err := os.Symlink("/dev/zero", zero); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, bad{"a symlink to /dev/zero", zero})
		// Unreadable: a valid file, 0600 and root's.
		unreadable := filepath.Join(dir, f.format+"-root.json")
		if err := os.WriteFile(unreadable, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, bad{"unreadable (root's, 0600)", unreadable})
		cases = append(cases, bad{"a directory", dir})
		cases = append(cases, bad{"missing", filepath.Join(dir, "no-such-file.json")})

		for _, c := range cases {
			what := f.format + ": " + c.name
			start := time.Now()
			r := client("", "import", c.path)
			took := time.Since(start)
			msg := faultOneLine(t, what, r.Stderr, "llm-agent-client: import: ")
			t.Logf("%s: exit %d after %v: %s", what, r.Code, took.Round(time.Millisecond), msg)
			if r.Code != 1 {
				t.Errorf("%s: exit %d, want 1", what, r.Code)
			}
			for _, s := range allSecrets {
				if strings.Contains(r.Stderr+r.Stdout, s) {
					t.Errorf("%s: a secret from the file is in the client's output: found", what)
				}
			}
			if after := client("", "list", "--json"); after.Code != 0 || after.Stdout != before.Stdout {
				t.Errorf("%s: the agent's list changed:\nbefore %s\nafter  %s (exit %d)", what, before.Stdout, after.Stdout, after.Code)
				// Put it back, so the next case starts from the same state.
				for _, p := range []string{"aaa-good", "claude", "anthropic", "openai", "openai-api-key", "openrouter"} {
					client("", "remove", p)
				}
				for p, v := range held {
					client(v, "add", p)
				}
				before = client("", "list", "--json")
			}
		}
	}
	for p, v := range held {
		r := client("", "get", p)
		if r.Code != 0 {
			t.Errorf("get %s afterwards: %+v", p, r)
			continue
		}
		fwdSameSecret(t, "get "+p+" afterwards", r.Stdout, v)
	}
	// The control: the same files, intact, import.
	for _, f := range files {
		if r := client("", "import", write(f.data)); r.Code != 0 {
			t.Errorf("%s: importing the intact file: exit %d, %q", f.format, r.Code, r.Stderr)
		}
	}
	hostileNoPanic(t, a)
}

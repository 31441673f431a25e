package e2e

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/internal/agenttest"
	"github.com/llm-agent/llm-agent/internal/sshtest"
	"github.com/llm-agent/llm-agent/protocol"
)

// The trust tests (issue 12, items 1, 2 and @revoked): whatever relays
// LLM_AUTH_SOCK gets use-only rights; a replayed session-bind satisfies no
// -h; a @revoked host key satisfies no -h.

// trustScript is what a hostile relay's far end tries, one "name=exit" line
// per step. No step prints a credential: gets go to /dev/null.
const trustScript = `
echo sk-from-the-relay | "$C" add evil >/dev/null; echo "add=$?"
"$C" remove anthropic; echo "remove=$?"
"$C" remove --all; echo "remove-all=$?"
echo hunter2 | "$C" lock; echo "lock=$?"
echo hunter2 | "$C" unlock; echo "unlock=$?"
"$C" list; echo "list=$?"
"$C" get laptoponly >/dev/null; echo "get-local-only=$?"
"$C" get gpuonly >/dev/null; echo "get-h=$?"
"$C" get anthropic >/dev/null; echo "get=$?"
`

// trustCheckScript checks trustScript's outcome through a relay.
func trustCheckScript(t *testing.T, what string, res Result) {
	t.Helper()
	codes := map[string]string{}
	for _, line := range strings.Split(res.Stdout, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.Contains(k, " ") {
			codes[k] = v
		}
	}
	for _, step := range []string{"add", "remove", "remove-all", "lock", "unlock", "get-local-only", "get-h"} {
		if codes[step] != "1" {
			t.Errorf("%s: %s exited %q, want 1 (refused)", what, step, codes[step])
		}
	}
	for _, step := range []string{"list", "get"} {
		if codes[step] != "0" {
			t.Errorf("%s: %s exited %q, want 0", what, step, codes[step])
		}
	}
	if strings.Contains(res.Stdout, "laptoponly") {
		t.Errorf("%s: list shows the --local-only credential", what)
	}
	for _, msg := range []string{
		"add is not permitted on LLM_AUTH_SOCK (use-only)",
		"remove is not permitted on LLM_AUTH_SOCK (use-only)",
		"lock is not permitted on LLM_AUTH_SOCK (use-only)",
		"not allowed on this host path",
	} {
		if !strings.Contains(res.Stderr, msg) {
			t.Errorf("%s: stderr lacks %q:\n%s", what, msg, res.Stderr)
		}
	}
}

// trustRig is an agent with three credentials: a plain one, a
// --local-only one and one bound with -h to srv.
type trustRig struct {
	a      *Agent
	srv    *sshtest.Server
	user   *sshtest.User
	kh     string
	tokens []string
	before string
}

func newTrustRig(t *testing.T, name string) *trustRig {
	t.Helper()
	sshtest.RequireRoot(t)
	r := &trustRig{user: sshtest.NewUser(t, "trust"), srv: sshtest.Start(t, sshtest.Options{Name: name})}
	r.kh = fwdKnownHosts(t, r.srv)
	r.a = StartAgent(t, AgentOptions{Debug: true, Audit: true, Args: []string{"-H", r.kh}})
	r.tokens = []string{fwdToken(t, "sk-trust"), fwdToken(t, "sk-trust-local"), fwdToken(t, "sk-trust-h")}
	for i, args := range [][]string{{"add", "anthropic"}, {"add", "--local-only", "laptoponly"}, {"add", "-H", r.kh, "-h", name, "gpuonly"}} {
		if res := r.a.Client(t, r.tokens[i], args...); res.Code != 0 {
			t.Fatalf("%v on the laptop: %+v", args, res)
		}
	}
	res := r.a.Client(t, "", "list", "--json")
	if res.Code != 0 {
		t.Fatalf("list: %+v", res)
	}
	r.before = res.Stdout
	return r
}

// unchanged checks that the laptop's agent is as it was, that management
// on the laptop still works with no new step (llm-agent-client finds the
// admin socket beside LLM_AUTH_SOCK), and that nothing leaked to the logs.
func (r *trustRig) unchanged(t *testing.T) {
	t.Helper()
	a := r.a
	if res := a.Client(t, "", "list", "--json"); res.Code != 0 || res.Stdout != r.before {
		t.Errorf("the laptop's credentials changed:\nbefore %s\nafter %+v", r.before, res)
	}
	if res := a.Client(t, "", "get", "laptoponly"); res.Code != 0 {
		t.Errorf("get --local-only on the laptop: %+v", res)
	} else {
		fwdSameSecret(t, "get --local-only on the laptop", res.Stdout, r.tokens[1])
	}
	for _, step := range [][]string{{"lock"}, {"unlock"}} {
		if res := a.Client(t, "pw\n", step...); res.Code != 0 {
			t.Errorf("%s on the laptop: %+v", step[0], res)
		}
	}
	if res := a.Client(t, "", "status"); res.Code != 0 || !strings.Contains(res.Stdout, "use-only: no") {
		t.Errorf("status on the laptop: %+v", res)
	}
	fwdNoSecretInLogs(t, a, r.tokens...)
}

// auditSaysUse checks that the relay's denials were classed via=use.
func (r *trustRig) auditSaysUse(t *testing.T, peerExe string) {
	t.Helper()
	const why = "connection on LLM_AUTH_SOCK, which is use-only whatever relays it"
	n := 0
	for _, e := range readAudit(t, r.a.Audit) {
		if e.Decision != "deny" || e.Peer == nil || (peerExe != "" && e.Peer.Exe != peerExe) {
			continue
		}
		n++
		if e.Via != "use" || e.ViaReason != why || !e.Forwarded {
			b, _ := json.Marshal(e)
			t.Errorf("denial classed as via=%q (%q), forwarded %v: %s", e.Via, e.ViaReason, e.Forwarded, b)
		}
	}
	if n < 5 {
		t.Errorf("%d denials from peer %q in the audit log, want at least 5", n, peerExe)
	}
}

// startRelay runs argv (a relay of LLM_AUTH_SOCK to sock) and waits for
// sock to appear; it is killed at cleanup.
func startRelay(t *testing.T, sock string, argv ...string) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = cleanEnv()
	var errb bytes.Buffer
	cmd.Stderr = &errb
	// unshare's child may outlive it with the pipe open; do not wait on it.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", argv[0], err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if fi, err := os.Lstat(sock); err == nil && fi.Mode().Type() == os.ModeSocket {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v did not create %s: %s", argv, sock, errb.String())
		}
	}
}

// plantAdmin listens at path (the admin path derived from a relayed
// socket) as another process than the relay, and counts the bytes any
// client sends it. A client must dial it at most to read its peer
// credentials, and never send it a request.
func plantAdmin(t *testing.T, path string) *atomic.Int64 {
	t.Helper()
	var got atomic.Int64
	agenttest.ServeUnix(t, path, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(30 * time.Second))
		n, _ := io.Copy(io.Discard, c)
		got.Add(n)
	})
	return &got
}

// TestUseOnlyRelays: relays of LLM_AUTH_SOCK that are not named ssh (a
// copy of ssh under another name doing -R to a real sshd, socat, socat in
// another pid namespace) get use-only rights: no add, remove, remove-all,
// lock or unlock; --local-only invisible; the -h credential refused; the
// audit log says via=use and why. On the laptop, nothing changes for the
// user. A socket planted at the relayed path + ".admin" is ignored.
func TestUseOnlyRelays(t *testing.T) {
	t.Parallel()
	r := newTrustRig(t, "relayhost")
	a := r.a

	t.Run("ssh copied as myssh, -R", func(t *testing.T) {
		sshPath, err := exec.LookPath("ssh")
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(sshPath)
		if err != nil {
			t.Fatal(err)
		}
		myssh := filepath.Join(t.TempDir(), "myssh")
		if err := os.WriteFile(myssh, data, 0o755); err != nil {
			t.Fatal(err)
		}
		dir := "/tmp/llm-relay-" + randHex(t, 8)
		remote := dir + "/agent.sock"
		t.Cleanup(func() { os.RemoveAll(dir) })
		cmd := r.srv.SSH(r.user, []string{"-o", "ExitOnForwardFailure=yes", "-R", remote + ":" + a.Sock},
			remoteScript("mkdir -p "+dir+" 2>/dev/null; export LLM_AUTH_SOCK="+remote+"; "+trustScript))
		// The forward needs the directory before ssh asks for it: make it
		// as the user, first.
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		os.Chown(dir, r.user.UID, r.user.GID)
		cmd.Path = myssh
		cmd.Args[0] = "myssh"
		res := fwdRun(t, cmd, "")
		trustCheckScript(t, "myssh -R", res)
		r.auditSaysUse(t, myssh)
	})

	for _, tc := range []struct {
		name string
		wrap []string
	}{
		{"socat", nil},
		{"socat in another pid namespace", []string{"unshare", "-p", "-f", "--kill-child", "--mount-proc"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := exec.LookPath("socat"); err != nil {
				t.Fatal("socat is not installed (apt-get install socat; .ci/run installs it)")
			}
			dir := t.TempDir()
			relay := filepath.Join(dir, "relay.sock")
			argv := append(tc.wrap, "socat", "UNIX-LISTEN:"+relay+",fork,mode=600", "UNIX-CONNECT:"+a.Sock)
			startRelay(t, relay, argv...)
			planted := plantAdmin(t, relay+".admin")
			res := Run(t, append(cleanEnv(), "LLM_AUTH_SOCK="+relay), "", "/bin/sh", "-c", remoteScript(trustScript))
			trustCheckScript(t, tc.name, res)
			socat, _ := exec.LookPath("socat")
			r.auditSaysUse(t, socat)
			if n := planted.Load(); n != 0 {
				t.Errorf("the client sent %d bytes to a socket planted at the relay's .admin path", n)
			}
		})
	}
	r.unchanged(t)
}

// captureAgent is the attacker's fake agent: it records every
// session-bind@openssh.com frame that ssh sends it, answers it with
// success, and has no keys.
type captureAgent struct {
	mu     sync.Mutex
	frames [][]byte
}

func startCaptureAgent(t *testing.T) (*captureAgent, string) {
	t.Helper()
	ca := &captureAgent{}
	sock := agenttest.ServeUnix(t, filepath.Join(t.TempDir(), "capture.sock"), func(c net.Conn) {
		c.SetDeadline(time.Now().Add(30 * time.Second))
		for {
			body, err := protocol.ReadFrame(c, protocol.MaxFrame)
			if err != nil {
				return
			}
			reply := protocol.FailureFrame()
			switch body[0] {
			case protocol.MsgRequestIdentities:
				reply = []byte{0, 0, 0, 5, protocol.MsgIdentitiesAnswer, 0, 0, 0, 0}
			case protocol.MsgExtension:
				if name, _, err := protocol.ParseExtension(body); err == nil && name == protocol.ExtSessionBind {
					ca.mu.Lock()
					ca.frames = append(ca.frames, binary.BigEndian.AppendUint32(nil, uint32(len(body))))
					ca.frames[len(ca.frames)-1] = append(ca.frames[len(ca.frames)-1], body...)
					ca.mu.Unlock()
					reply = protocol.SuccessFrame()
				}
			}
			if _, err := c.Write(reply); err != nil {
				return
			}
		}
	})
	return ca, sock
}

// captureBind points a real ssh at srv, as a user that does not exist,
// with SSH_AUTH_SOCK at a capturing agent: the session-bind signed by
// srv's host key arrives before authentication fails.
func captureBind(t *testing.T, srv *sshtest.Server, u *sshtest.User) (frame []byte, forwarding bool) {
	t.Helper()
	ca, sock := startCaptureAgent(t)
	cmd := srv.SSH(u, []string{"-l", "nosuchuser" + randHex(t, 3), "-o", "PreferredAuthentications=publickey"}, "true")
	cmd.Env = append(cmd.Env, "SSH_AUTH_SOCK="+sock)
	res := fwdRun(t, cmd, "")
	if res.Code == 0 {
		t.Fatalf("ssh as a user that does not exist succeeded")
	}
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if len(ca.frames) == 0 {
		t.Fatalf("ssh sent no session-bind to the capturing agent (exit %d, %q)", res.Code, res.Stderr)
	}
	frame = ca.frames[0]
	b := agenttest.ParseSessionBind(t, frame)
	if !bytes.Equal(b.HostKey, srv.HostKey.Marshal()) {
		t.Fatal("the captured bind is not signed by the server's host key")
	}
	return frame, b.Forwarding
}

// replayBin builds the attacker's replay tool into the shared binaries
// directory, where the test users can run it.
var replayBin = sync.OnceValues(func() (string, error) {
	out := filepath.Join(bins.Dir, "llm-replay")
	cmd := exec.Command("go", "build", "-o", out, "./testdata/replay")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", &exec.Error{Name: "go build ./testdata/replay: " + string(b), Err: err}
	}
	return out, nil
})

// TestReplayedSessionBind: a session-bind captured from gpu1's real sshd
// (ssh as a user that does not exist, SSH_AUTH_SOCK at a fake agent) does
// not make a -h gpu1 credential come out when replayed over an ssh -R
// relay to another host, nor when appended after a genuine forwarding hop
// (bastion>gpu1); a genuine ForwardAgent to gpu1 still gets it.
func TestReplayedSessionBind(t *testing.T) {
	t.Parallel()
	r, kh, srvs := newHostsRig(t, "replay", AgentOptions{}, "gpu1", "bastion")
	a, u, gpu1, bastion := r.agent, r.user, srvs[0], srvs[1]
	evil := sshtest.Start(t, sshtest.Options{Name: "evilhost"}) // not in known_hosts
	tokG, tokBG := fwdToken(t, "sk-replay-g"), fwdToken(t, "sk-replay-bg")
	if res := a.Client(t, tokG, "add", "-H", kh, "-h", "gpu1", "gpu1only"); res.Code != 0 {
		t.Fatalf("add -h gpu1: %+v", res)
	}
	if res := a.Client(t, tokBG, "add", "-H", kh, "-h", "bastion>gpu1", "viabastion"); res.Code != 0 {
		t.Fatalf("add -h bastion>gpu1: %+v", res)
	}
	replay, err := replayBin()
	if err != nil {
		t.Fatal(err)
	}
	frame, forwarding := captureBind(t, gpu1, u)
	t.Logf("captured a session-bind signed by gpu1 (%d bytes, forwarding=%v)", len(frame), forwarding)
	frames := hex.EncodeToString(frame) + "\n"

	// The genuine path still works.
	res := r.ssh(gpu1, fwdPrimary, "", `"$C" get gpu1only`)
	if res.Code != 0 {
		t.Fatalf("genuine ForwardAgent to gpu1: exit %d, %q", res.Code, res.Stderr)
	}
	fwdSameSecret(t, "genuine get on gpu1", res.Stdout, tokG)

	t.Run("replayed over ssh -R to another host", func(t *testing.T) {
		dir := "/tmp/llm-replay-" + randHex(t, 8)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		os.Chown(dir, u.UID, u.GID)
		t.Cleanup(func() { os.RemoveAll(dir) })
		remote := dir + "/agent.sock"
		res := r.ssh(evil, fwdNone, frames, `SSH_AUTH_SOCK=`+remote+` '`+replay+`' /dev/stdin gpu1only`,
			"-o", "ExitOnForwardFailure=yes", "-R", remote+":"+a.Sock)
		t.Logf("replay over -R: exit %d: %s", res.Code, strings.TrimSpace(res.Stdout+res.Stderr))
		if res.Code != 1 || !strings.Contains(res.Stdout, "get: refused") {
			t.Errorf("the replayed bind got the -h gpu1 credential over -R: exit %d, %q %q", res.Code, res.Stdout, res.Stderr)
		}
	})
	t.Run("appended after a genuine forwarding hop", func(t *testing.T) {
		res := r.ssh(bastion, fwdPrimary, frames, `'`+replay+`' /dev/stdin viabastion`)
		t.Logf("replay after bastion: exit %d: %s", res.Code, strings.TrimSpace(res.Stdout+res.Stderr))
		if res.Code != 1 || !strings.Contains(res.Stdout, "get: refused") {
			t.Errorf("bastion + a replayed gpu1 bind got the bastion>gpu1 credential: exit %d, %q %q", res.Code, res.Stdout, res.Stderr)
		}
	})
	denied := 0
	for _, e := range readAudit(t, a.Audit) {
		if e.Op == "get" && e.Decision == "deny" && (e.Provider == "gpu1only" || e.Provider == "viabastion") {
			denied++
		}
	}
	if denied != 2 {
		t.Errorf("%d get denials for the replays in the audit log, want 2", denied)
	}
	fwdNoSecretInLogs(t, a, tokG, tokBG)
}

// TestRevokedHostKey: once the laptop's known_hosts marks the server's
// host key @revoked, the -h credential bound to it is refused (even though
// another line still lists the key for the host), the host is no longer
// named after it, and a new add -h finds no key for it.
func TestRevokedHostKey(t *testing.T) {
	t.Parallel()
	r, kh, srvs := newHostsRig(t, "revoke", AgentOptions{}, "revhost")
	a, srv := r.agent, srvs[0]
	tok := fwdToken(t, "sk-revoked")
	if res := a.Client(t, tok, "add", "-H", kh, "-h", "revhost", "revcred"); res.Code != 0 {
		t.Fatalf("add -h revhost: %+v", res)
	}
	res := r.ssh(srv, fwdPrimary, "", `"$C" get revcred`)
	if res.Code != 0 {
		t.Fatalf("get before revocation: exit %d, %q", res.Code, res.Stderr)
	}
	fwdSameSecret(t, "get before revocation", res.Stdout, tok)

	f, err := os.OpenFile(kh, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	line := srv.KnownHostsLine()
	key := line[strings.Index(line, " ")+1:]
	if _, err := f.WriteString("@revoked * " + key + "\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// The agent rereads known_hosts when its modification time changes.
	later := time.Now().Add(2 * time.Second)
	os.Chtimes(kh, later, later)

	res = r.ssh(srv, fwdPrimary, "", `"$C" get revcred`)
	fwdRefused(t, "get after revocation", res, "@revoked")
	if strings.Contains(res.Stdout, tok) {
		t.Error("the credential was printed after revocation")
	}
	for _, e := range readAudit(t, a.Audit) {
		if e.Op == "get" && e.Provider == "revcred" && e.Decision == "deny" && len(e.Hops) > 0 && e.Hops[0] == "revhost" {
			t.Errorf("the audit log names the revoked key after the host: %q", e.Hops)
		}
	}
	if res := a.Client(t, "sk-x", "add", "-H", kh, "-h", "revhost", "another"); res.Code == 0 || !strings.Contains(res.Stderr, "no host key") {
		t.Errorf("add -h with the only key revoked: %+v", res)
	}
	fwdNoSecretInLogs(t, a, tok)
}

package e2e

// llm-agent as ssh-agent through golang.org/x/crypto/ssh/agent: its own
// tests with llm-agent first in PATH, and ours of confirm and constraints.

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	sshagent "golang.org/x/crypto/ssh/agent"

	"github.com/llm-agent/llm-agent/internal/peercred"
	"github.com/llm-agent/llm-agent/protocol"
)

// dropInDir returns a directory whose ssh-agent is a symbolic link to the
// built llm-agent.
func dropInDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Symlink(bins.Agent, filepath.Join(dir, "ssh-agent")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestSSHAgentDropInXCrypto runs golang.org/x/crypto/ssh/agent's own tests
// with llm-agent first in PATH as ssh-agent: those that start "an OpenSSH
// ssh-agent" (startOpenSSHAgent) start ours.
func TestSSHAgentDropInXCrypto(t *testing.T) {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	requireTools(t, "the go command that built this test", goBin)
	requireTools(t, "apt-get install -y openssh-client", "ssh-agent")
	// From the module root, so that the version tested is the one go.sum
	// pins; first in PATH, dir's ssh-agent.
	xcrypto := func(dir string, args ...string) ([]byte, error) {
		cmd := exec.Command(goBin, append([]string{"test", "-count=1", "-v"}, args...)...)
		cmd.Args = append(cmd.Args, "golang.org/x/crypto/ssh/agent")
		cmd.Dir = "../.."
		cmd.Env = append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
		return cmd.CombinedOutput()
	}
	// The control: with a broken ssh-agent first in PATH the tests fail,
	// so the ssh-agent they use is the one first in PATH, ours below.
	broken := t.TempDir()
	if err := os.Symlink("/bin/false", filepath.Join(broken, "ssh-agent")); err != nil {
		t.Fatal(err)
	}
	if out, err := xcrypto(broken, "-run", "^TestAgent$"); err == nil || !strings.Contains(string(out), broken) {
		t.Fatalf("x/crypto's TestAgent did not fail on %s/ssh-agent (/bin/false): %v\n%s", broken, err, out)
	}
	out, err := xcrypto(dropInDir(t))
	if err != nil {
		t.Fatalf("go test golang.org/x/crypto/ssh/agent with llm-agent as ssh-agent: %v\n%s", err, out)
	}
	// The tests that use ssh-agent must have run, not skipped.
	for _, name := range []string{"TestAgent", "TestCert", "TestAuth", "TestLockOpenSSHAgent", "TestSetupForwardAgent"} {
		if !strings.Contains(string(out), "--- PASS: "+name+" ") {
			t.Errorf("%s did not pass:\n%s", name, out)
		}
	}
}

// dropIn is llm-agent running under the name ssh-agent.
type dropIn struct {
	sock    string
	askLog  string // one line per confirmation asked
	askDeny string // while this file exists, the askpass refuses
}

// startDropIn runs llm-agent as `ssh-agent -D -a SOCK`, with an askpass
// program that logs each question and allows unless askDeny exists.
func startDropIn(t *testing.T) *dropIn {
	t.Helper()
	dir := dropInDir(t)
	sockDir := t.TempDir()
	d := &dropIn{sock: filepath.Join(sockDir, "agent.sock"), askLog: filepath.Join(dir, "asked"), askDeny: filepath.Join(dir, "deny")}
	askpass := filepath.Join(dir, "askpass")
	script := "#!/bin/sh\necho asked >> " + d.askLog + "\n[ -e " + d.askDeny + " ] && exit 1\nexit 0\n"
	if err := os.WriteFile(askpass, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(dir, "ssh-agent"), "-D", "-a", d.sock)
	cmd.Env = append(cleanEnv(), "SSH_ASKPASS="+askpass, "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	if _, ok := waitFor(10*time.Second, func() bool { return answers(d.sock) }); !ok {
		t.Fatalf("llm-agent as ssh-agent does not answer on %s", d.sock)
	}
	return d
}

// client opens a connection to the agent and returns x/crypto's client on it.
func (d *dropIn) client(t *testing.T) sshagent.ExtendedAgent {
	t.Helper()
	c, err := net.Dial("unix", d.sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return sshagent.NewClient(c)
}

// asked is how many confirmations the askpass was asked for.
func (d *dropIn) asked() int {
	b, _ := os.ReadFile(d.askLog)
	return strings.Count(string(b), "\n")
}

func newEd25519Key(t *testing.T) (ed25519.PrivateKey, ssh.Signer) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return priv, s
}

// TestSSHAgentDropInConfirm: a key or a certificate added with confirm
// (ssh-add -c) signs only after the owner allowed it, asked every time.
func TestSSHAgentDropInConfirm(t *testing.T) {
	requireTools(t, "apt-get install -y openssh-client", "ssh-agent")
	_, ca := newEd25519Key(t)
	for _, c := range []struct {
		name string
		cert bool
	}{{"key", false}, {"certificate", true}} {
		t.Run(c.name, func(t *testing.T) {
			d := startDropIn(t)
			ag := d.client(t)
			priv, s := newEd25519Key(t)
			added := sshagent.AddedKey{PrivateKey: priv, ConfirmBeforeUse: true, Comment: c.name}
			pub := s.PublicKey()
			if c.cert {
				cert := &ssh.Certificate{Key: s.PublicKey(), CertType: ssh.UserCert, KeyId: "e2e",
					ValidPrincipals: []string{"e2e"}, ValidBefore: ssh.CertTimeInfinity}
				if err := cert.SignCert(rand.Reader, ca); err != nil {
					t.Fatal(err)
				}
				added.Certificate, pub = cert, cert
			}
			if err := ag.Add(added); err != nil {
				t.Fatalf("add with confirm: %v", err)
			}
			if _, err := ag.Sign(pub, []byte("allowed")); err != nil {
				t.Errorf("sign, owner allows: %v", err)
			}
			if n := d.asked(); n != 1 {
				t.Errorf("asked %d times after one signature, want 1", n)
			}
			if err := os.WriteFile(d.askDeny, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := ag.Sign(pub, []byte("refused")); err == nil {
				t.Errorf("sign, owner refuses: signed")
			}
			if n := d.asked(); n != 2 {
				t.Errorf("asked %d times after two signatures, want 2", n)
			}
		})
	}
}

// TestSSHAgentDropInLifetime: a key added with a lifetime (ssh-add -t) is
// gone when it ends.
func TestSSHAgentDropInLifetime(t *testing.T) {
	requireTools(t, "apt-get install -y openssh-client", "ssh-agent")
	d := startDropIn(t)
	ag := d.client(t)
	priv, _ := newEd25519Key(t)
	if err := ag.Add(sshagent.AddedKey{PrivateKey: priv, LifetimeSecs: 1}); err != nil {
		t.Fatal(err)
	}
	if keys, err := ag.List(); err != nil || len(keys) != 1 {
		t.Fatalf("list after add: %v, %v; want one key", keys, err)
	}
	if _, ok := waitFor(5*time.Second, func() bool { keys, err := ag.List(); return err == nil && len(keys) == 0 }); !ok {
		t.Errorf("key with a 1 s lifetime still listed after 5 s")
	}
}

// TestSSHAgentDropInDestination: a key added with a destination constraint
// (ssh-add -h host) signs on a connection bound to that host's key, and
// not on one bound to another host.
func TestSSHAgentDropInDestination(t *testing.T) {
	requireTools(t, "apt-get install -y openssh-client", "ssh-agent")
	d := startDropIn(t)
	ag := d.client(t)
	_, hostA := newEd25519Key(t)
	_, hostB := newEd25519Key(t)
	priv, s := newEd25519Key(t)
	err := ag.Add(sshagent.AddedKey{PrivateKey: priv, Comment: "-h hostA",
		ConstraintExtensions: []sshagent.ConstraintExtension{restrictDestination("hostA", hostA.PublicKey())}})
	if err != nil {
		t.Fatalf("add with -h: %v", err)
	}
	for _, c := range []struct {
		name string
		host ssh.Signer
		ok   bool
	}{{"bound to hostA", hostA, true}, {"bound to hostB", hostB, false}} {
		// The bind goes first, raw: x/crypto's client reads every reply
		// on its connection once it exists.
		conn, err := net.Dial("unix", d.sock)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		sessionID := make([]byte, 32)
		rand.Read(sessionID)
		sig, err := c.host.Sign(rand.Reader, sessionID)
		if err != nil {
			t.Fatal(err)
		}
		bind := &protocol.SessionBind{HostKey: c.host.PublicKey().Marshal(), SessionID: sessionID, Signature: ssh.Marshal(sig)}
		if reply := roundTrip(t, conn, bind.Marshal()); reply[0] != protocol.MsgSuccess {
			t.Fatalf("%s: session-bind answered %d", c.name, reply[0])
		}
		ag := sshagent.NewClient(conn)
		// What ssh signs for a user authentication begins with the
		// session identifier; ssh-agent checks that it is the bound one.
		data := ssh.Marshal(struct {
			SessionID []byte
			Type      byte
			User      string
			Service   string
			Method    string
			Sig       bool
			Algo      string
			PubKey    []byte
		}{sessionID, 50, "user", "ssh-connection", "publickey", true, s.PublicKey().Type(), s.PublicKey().Marshal()})
		_, err = ag.Sign(s.PublicKey(), data)
		if c.ok && err != nil {
			t.Errorf("%s: sign refused: %v", c.name, err)
		}
		if !c.ok && err == nil {
			t.Errorf("%s: signed for a host the key is not constrained to", c.name)
		}
	}
}

// restrictDestination is OpenSSH's restrict-destination-v00@openssh.com
// constraint (PROTOCOL.agent) for one hop, from this host to host, as
// ssh-add -h host makes it.
func restrictDestination(host string, key ssh.PublicKey) sshagent.ConstraintExtension {
	str := func(b []byte) []byte { return binary.BigEndian.AppendUint32(nil, uint32(len(b))) }
	s := func(b []byte) []byte { return append(str(b), b...) }
	hop := func(name string, keys ...ssh.PublicKey) []byte {
		var h []byte
		h = append(h, s(nil)...)          // username
		h = append(h, s([]byte(name))...) // hostname
		h = append(h, s(nil)...)          // reserved
		for _, k := range keys {
			h = append(h, s(k.Marshal())...)
			h = append(h, 0) // not a CA
		}
		return s(h)
	}
	var c []byte
	c = append(c, hop("")...)
	c = append(c, hop(host, key)...)
	c = append(c, s(nil)...) // reserved
	return sshagent.ConstraintExtension{ExtensionName: "restrict-destination-v00@openssh.com", ExtensionDetails: s(c)}
}

// roundTrip writes a frame and returns the reply's body.
func roundTrip(t *testing.T, c net.Conn, frame []byte) []byte {
	t.Helper()
	if _, err := c.Write(frame); err != nil {
		t.Fatal(err)
	}
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(c, body); err != nil {
		t.Fatal(err)
	}
	return body
}

// TestSSHAgentDropInCLI compares llm-agent under the name ssh-agent with
// the installed ssh-agent, byte for byte once socket paths and pids are
// masked: eval output, -k, running a command, and refused command lines
// (message and exit status).
func TestSSHAgentDropInCLI(t *testing.T) {
	requireTools(t, "apt-get install -y openssh-client", "ssh-agent")
	stock, err := exec.LookPath("ssh-agent")
	if err != nil {
		t.Fatal(err)
	}
	ours := filepath.Join(dropInDir(t), "ssh-agent")
	pidRE := regexp.MustCompile(`[0-9]+`)
	sockRE := regexp.MustCompile(`/[^ ;]*`)
	mask := func(s string) string { return pidRE.ReplaceAllString(sockRE.ReplaceAllString(s, "SOCK"), "N") }
	// run runs agent with args and env; for eval output, the agent it
	// started is killed with its own -k, whose output is returned too.
	run := func(agent string, env []string, args ...string) (out, killOut string, code int) {
		cmd := exec.Command(agent, args...)
		cmd.Env = append(cleanEnv(), env...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code = cmd.ProcessState.ExitCode()
		if err != nil && code < 0 {
			t.Fatalf("%s %v: %v", agent, args, err)
		}
		out = stdout.String() + "|" + stderr.String()
		if m := regexp.MustCompile(`SSH_AGENT_PID[= ]([0-9]+)`).FindStringSubmatch(stdout.String()); m != nil {
			k := exec.Command(agent, "-k")
			k.Env = append(cleanEnv(), "SSH_AGENT_PID="+m[1])
			b, _ := k.CombinedOutput()
			killOut = string(b)
		}
		return out, killOut, code
	}
	sockDir := t.TempDir()
	for _, c := range []struct {
		name string
		env  []string
		args []string
	}{
		{"sh", nil, []string{"-s"}},
		{"csh", nil, []string{"-c"}},
		{"SHELL csh", []string{"SHELL=/bin/tcsh"}, nil},
		{"-a and -t", nil, []string{"-s", "-t", "1h30m", "-a", filepath.Join(sockDir, "sock")}},
		{"-E -O -P", nil, []string{"-s", "-E", "md5", "-O", "no-restrict-websafe", "-P", "/usr/lib/*"}},
		{"command", nil, []string{"sh", "-c", `test -S "$SSH_AUTH_SOCK" && echo "$SSH_AGENT_PID"; exit 3`}},
		{"-k without SSH_AGENT_PID", nil, []string{"-k"}},
		{"-k with a bad pid", []string{"SSH_AGENT_PID=x"}, []string{"-k"}},
		{"bad lifetime", nil, []string{"-t", "soon"}},
		{"bad hash", nil, []string{"-E", "crc"}},
		{"bad -O", nil, []string{"-O", "everything"}},
		{"-c and -s", nil, []string{"-c", "-s"}},
		{"-D and -d", nil, []string{"-D", "-d"}},
		{"-s with a command", nil, []string{"-s", "true"}},
		{"unknown option", nil, []string{"-x"}},
		{"missing argument", nil, []string{"-a"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			os.Remove(filepath.Join(sockDir, "sock"))
			wantOut, wantKill, wantCode := run(stock, c.env, c.args...)
			os.Remove(filepath.Join(sockDir, "sock"))
			gotOut, gotKill, gotCode := run(ours, c.env, c.args...)
			if gotCode != wantCode || mask(gotOut) != mask(wantOut) || mask(gotKill) != mask(wantKill) {
				t.Errorf("ssh-agent %q:\nstock:     exit %d, %q, -k %q\nllm-agent: exit %d, %q, -k %q",
					c.args, wantCode, wantOut, wantKill, gotCode, gotOut, gotKill)
			}
		})
	}
}

// TestSSHAgentDropInDebugPrefix: under -d every line on standard error
// carries llm-agent's prefix, the SSH-key ssh-agent's and the audit copy's
// included.
func TestSSHAgentDropInDebugPrefix(t *testing.T) {
	requireTools(t, "apt-get install -y openssh-client", "ssh-agent")
	sock := filepath.Join(t.TempDir(), "agent.sock")
	cmd := exec.Command(filepath.Join(dropInDir(t), "ssh-agent"), "-d", "-a", sock)
	cmd.Env = cleanEnv()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, ok := waitFor(10*time.Second, func() bool { return answers(sock) }); !ok {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("llm-agent -d does not answer")
	}
	d := &dropIn{sock: sock}
	ag := d.client(t)
	priv, s := newEd25519Key(t)
	if err := ag.Add(sshagent.AddedKey{PrivateKey: priv}); err != nil {
		t.Errorf("add: %v", err)
	}
	if _, err := ag.Sign(s.PublicKey(), []byte("data")); err != nil {
		t.Errorf("sign: %v", err)
	}
	ag.Lock([]byte("pass")) // an audit line
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	prefix := fmt.Sprintf("llm-agent[%d]: ", cmd.Process.Pid)
	lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
	var sawChild, sawAudit bool
	for _, l := range lines {
		if !strings.HasPrefix(l, prefix) {
			t.Errorf("log line without %q: %q", prefix, l)
		}
		sawChild = sawChild || strings.Contains(l, "ssh-agent: debug")
		sawAudit = sawAudit || strings.Contains(l, "audit: ")
	}
	if !sawChild || !sawAudit {
		t.Errorf("want the SSH-key ssh-agent's lines (%v) and audit lines (%v) among:\n%s", sawChild, sawAudit, stderr.String())
	}
}

// TestSSHAgentDropInChild: the SSH keys live in a private OpenSSH
// ssh-agent, not in a second llm-agent (the ssh-agent on PATH is a link to
// llm-agent itself), and it dies with the agent, stopped or killed, its
// socket directory gone.
func TestSSHAgentDropInChild(t *testing.T) {
	requireTools(t, "apt-get install -y openssh-client", "ssh-agent")
	stock, err := exec.LookPath("ssh-agent")
	if err != nil {
		t.Fatal(err)
	}
	dir := dropInDir(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "agent.sock")
			cmd := exec.Command(filepath.Join(dir, "ssh-agent"), "-D", "-a", sock)
			// TMPDIR: where the child makes its socket, and must leave
			// nothing.
			cmd.Env = append(cleanEnv(), "PATH="+dir+":/usr/bin:/bin", "TMPDIR="+t.TempDir())
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			if _, ok := waitFor(10*time.Second, func() bool { return answers(sock) }); !ok {
				t.Fatal("llm-agent as ssh-agent does not answer")
			}
			f := agentChildren(cmd.Process.Pid)
			if len(f) != 1 {
				t.Fatalf("children of the agent: %q, want one", f)
			}
			child := f[0]
			exe, _ := os.Readlink("/proc/" + child + "/exe")
			argv, _ := os.ReadFile("/proc/" + child + "/cmdline")
			args := strings.Split(strings.TrimRight(string(argv), "\x00"), "\x00")
			if exe != stock || len(args) != 3 || args[1] != "-D" || args[2] != "-s" {
				t.Fatalf("child %s runs %s %q, want %s -D -s", child, exe, args, stock)
			}
			tmp := cmd.Env[len(cmd.Env)-1][len("TMPDIR="):]
			made := childSockets(tmp, child)
			if len(made) != 1 {
				t.Fatalf("the child's sockets under TMPDIR (or /tmp): %q, want one", made)
			}
			cmd.Process.Signal(sig)
			cmd.Wait()
			pid, _ := strconv.Atoi(child)
			if _, ok := waitFor(5*time.Second, func() bool { return processGone(pid) }); !ok {
				t.Errorf("the SSH-key ssh-agent (pid %d) outlived the agent killed with %v", pid, sig)
			}
			if left, _ := os.ReadDir(tmp); len(left) != 0 {
				t.Errorf("left in TMPDIR after %v: %v", sig, left)
			}
			if _, err := os.Lstat(filepath.Dir(made[0])); err == nil {
				t.Errorf("the child's socket directory %s is left after %v", filepath.Dir(made[0]), sig)
			}
		})
	}
}

// childSockets finds the sockets the ssh-agent child (pid) made: under
// tmp, the TMPDIR it was given, or under /tmp when it is setgid (as
// Debian's ssh-agent may be), since the loader then drops TMPDIR from its
// environment. -D names the socket after its own pid; only sockets that
// pid serves count, since a socket a killed ssh-agent left in /tmp may
// carry the same number (pids wrap).
func childSockets(tmp, pid string) []string {
	var made []string
	for _, dir := range []string{tmp, "/tmp"} {
		m, _ := filepath.Glob(dir + "/ssh-*/agent." + pid)
		for _, sock := range m {
			if servedBy(sock, pid) {
				made = append(made, sock)
			}
		}
	}
	return made
}

// servedBy reports whether the process pid listens on the socket sock.
func servedBy(sock, pid string) bool {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	p, err := peercred.FromConn(c.(*net.UnixConn))
	if err != nil {
		return false
	}
	defer p.Close()
	return strconv.Itoa(p.PID) == pid
}

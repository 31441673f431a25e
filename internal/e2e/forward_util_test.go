package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/internal/agenttest"
	"github.com/llm-agent/llm-agent/internal/sshtest"
)

// fwdSessionTimeout bounds one ssh session run by a forwarding test.
const fwdSessionTimeout = 30 * time.Second

// fwdToken returns a fresh marker credential. It is made at run time so its
// bytes are in no binary or source file, which keeps the disk scans honest.
func fwdToken(t testing.TB, prefix string) string {
	t.Helper()
	return prefix + "-" + randHex(t, 16)
}

// fwdSameSecret compares a printed credential with the expected one
// without ever putting either in the test output.
func fwdSameSecret(t testing.TB, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s: printed credential differs from the one added (got %d bytes, want %d; contains it: %v)",
			what, len(got), len(want), strings.Contains(got, want))
	}
}

// fwdMode is how the laptop-side ssh forwards the llm-agent socket.
type fwdMode int

const (
	fwdNone fwdMode = iota
	// fwdPrimary is the documented form: the user's usual ssh-agent stays
	// in SSH_AUTH_SOCK (OpenSSH 9.2 only forwards when that one is live)
	// and ForwardAgent names the llm-agent socket.
	fwdPrimary
	// fwdAsSSHAgent uses llm-agent as ssh's agent (an empty keyring) and
	// forwards it with ForwardAgent=yes.
	fwdAsSSHAgent
)

func (m fwdMode) String() string {
	return [...]string{"none", "ForwardAgent=$LLM_AUTH_SOCK", "SSH_AUTH_SOCK=$LLM_AUTH_SOCK+ForwardAgent=yes"}[m]
}

// fwdRig is the laptop (an llm-agent run by the test process and a plain
// ssh-agent standing for the user's usual one) and the server-side user.
type fwdRig struct {
	t     *testing.T
	agent *Agent
	user  *sshtest.User
	live  string // socket of the real ssh-agent
}

func newFwdRig(t *testing.T, o AgentOptions) *fwdRig {
	t.Helper()
	sshtest.RequireRoot(t)
	o.Audit = true
	return &fwdRig{
		t:     t,
		agent: StartAgent(t, o),
		user:  sshtest.NewUser(t, "fwd"),
		live:  liveSSHAgent(t),
	}
}

// newHostsRig is newFwdRig for the tests of -h: it also starts a server
// for each of names, whose host keys the agent reads from the known_hosts
// file given to it with -H. It returns the rig, that file and the servers.
func newHostsRig(t *testing.T, userPrefix string, o AgentOptions, names ...string) (*fwdRig, string, []*sshtest.Server) {
	t.Helper()
	sshtest.RequireRoot(t)
	u := sshtest.NewUser(t, userPrefix)
	srvs := make([]*sshtest.Server, len(names))
	for i, name := range names {
		srvs[i] = sshtest.Start(t, sshtest.Options{Name: name})
	}
	kh := fwdKnownHosts(t, srvs...)
	o.Debug, o.Audit = true, true
	o.Args = append(o.Args, "-H", kh)
	a := StartAgent(t, o)
	return &fwdRig{t: t, agent: a, user: u, live: liveSSHAgent(t)}, kh, srvs
}

// remoteScript prefixes a shell script for the server with C, the path of
// llm-agent-client (a 0755 directory the test user can read).
func remoteScript(script string) string {
	return "C='" + bins.Client + "'; " + script
}

// cmd builds the laptop-side ssh to srv for script, forwarding as mode.
func (r *fwdRig) cmd(srv *sshtest.Server, mode fwdMode, extra []string, script string) *exec.Cmd {
	var args, env []string
	switch mode {
	case fwdPrimary:
		args = []string{"-o", "ForwardAgent=" + r.agent.Sock}
		env = []string{"SSH_AUTH_SOCK=" + r.live}
	case fwdAsSSHAgent:
		args = []string{"-o", "ForwardAgent=yes"}
		env = []string{"SSH_AUTH_SOCK=" + r.agent.Sock}
	}
	cmd := srv.SSH(r.user, append(args, extra...), remoteScript(script))
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// ssh runs script on srv in one session and returns its result.
func (r *fwdRig) ssh(srv *sshtest.Server, mode fwdMode, stdin, script string, extra ...string) Result {
	r.t.Helper()
	return fwdRun(r.t, r.cmd(srv, mode, extra, script), stdin)
}

// fwdRun runs cmd with stdin, failing t if it hangs.
func fwdRun(t testing.TB, cmd *exec.Cmd, stdin string) Result {
	t.Helper()
	return agenttest.RunCmd(t, cmd, stdin, fwdSessionTimeout)
}

// fwdRefused checks a command that the agent must refuse with exit 1 and,
// if msg is not empty, say msg on stderr.
func fwdRefused(t testing.TB, what string, r Result, msg string) {
	t.Helper()
	if r.Code != 1 || !strings.Contains(r.Stderr, msg) {
		t.Errorf("%s: exit %d, stderr %q; want exit 1 and %q", what, r.Code, strings.TrimSpace(r.Stderr), msg)
	}
}

// fwdWant is an audit event a forwarding test expects.
type fwdWant struct {
	op, provider, decision string
	hops                   []string // nil: not checked
}

// fwdCheckAudit checks that each wanted decision is in the audit log as
// made over a forwarded connection relayed by the laptop's ssh, gets with
// what the requester reported (its host name).
func fwdCheckAudit(t testing.TB, a *Agent, wants []fwdWant) {
	t.Helper()
	sshExe := fwdSSHExe(t)
	events := readAudit(t, a.Audit)
	for _, w := range wants {
		found := false
		var near []auditEvent
		for _, e := range events {
			if e.Op != w.op || e.Provider != w.provider || e.Decision != w.decision {
				continue
			}
			if w.hops != nil && !reflect.DeepEqual(e.Hops, w.hops) {
				near = append(near, e)
				continue
			}
			ok := e.Forwarded && e.Peer != nil && e.Peer.Exe == sshExe
			if w.op == "get" {
				ok = ok && e.Remote != nil && e.Remote.Hostname != ""
			}
			if ok {
				found = true
				break
			}
			near = append(near, e)
		}
		if !found {
			if len(near) > 3 {
				near = near[:3]
			}
			nb, _ := json.Marshal(near)
			t.Errorf("audit log: no %s %q %s event (hops %q) with forwarded true, peer exe %s and remote_reported hostname; similar events (up to 3): %s",
				w.op, w.provider, w.decision, w.hops, sshExe, nb)
		}
	}
}

// fwdSSHExe is what /proc/PID/exe says for the laptop's ssh client.
func fwdSSHExe(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("ssh")
	if err != nil {
		p = "/usr/bin/ssh"
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		p = r
	}
	return p
}

// fwdNoSecretInLogs checks that the agent's audit log and stderr never
// hold any of the secrets.
func fwdNoSecretInLogs(t testing.TB, a *Agent, secrets ...string) {
	t.Helper()
	for _, f := range []string{a.Audit, a.Stderr} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Errorf("read %s: %v", f, err)
			continue
		}
		for i, s := range secrets {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("%s (%d bytes) holds credential #%d: found", f, len(data), i+1)
			}
		}
		t.Logf("%s: %d bytes, credentials not found", filepath.Base(f), len(data))
	}
}

// fwdScan looks for secret in every regular file under roots, as root,
// without following symbolic links; sockets, devices, fifos and files over
// maxSize are skipped, and so is /proc. It returns the files holding it.
func fwdScan(roots []string, secret []byte, maxSize int64) (files int, total int64, hits []string) {
	for _, root := range roots {
		filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil // vanished or unreadable: nothing to scan
			}
			if d.IsDir() {
				if path == "/proc" || path == "/sys" {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.Type().IsRegular() {
				return nil
			}
			fi, err := d.Info()
			if err != nil || fi.Size() > maxSize {
				return nil
			}
			f, err := os.Open(path)
			if err != nil {
				return nil
			}
			defer f.Close()
			data, err := io.ReadAll(io.LimitReader(f, maxSize))
			if err != nil {
				return nil
			}
			files++
			total += int64(len(data))
			if bytes.Contains(data, secret) {
				hits = append(hits, path)
			}
			return nil
		})
	}
	return files, total, hits
}

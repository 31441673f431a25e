package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llm-agent/llm-agent/internal/sshtest"
)

// TestAttackForwardedCommandAdd, over real sshd: the server side, through
// every documented way of forwarding the agent (ForwardAgent naming
// LLM_AUTH_SOCK, llm-agent as ssh's agent with ForwardAgent=yes, ssh -R of
// LLM_AUTH_SOCK, and even ForwardAgent naming the admin socket, which a
// session-bind marks as forwarded), tries to make the laptop run a command
// of its choosing: add --from-command of a new provider and over the
// owner's, remove then add. Every attempt is refused by the agent (audit:
// add denied), nothing runs on the laptop, the owner's credential is
// unchanged, and list shows the server no more than the command line.
func TestAttackForwardedCommandAdd(t *testing.T) {
	t.Parallel()
	r := newFwdRig(t, AgentOptions{})
	a := r.agent
	srv := sshtest.Start(t, sshtest.Options{Name: "atk15"})
	// The laptop's side: a root-only directory, which the server's user
	// cannot write; only a command the agent ran can create pwned there.
	laptop := t.TempDir()
	pwned := filepath.Join(laptop, "pwned")
	value := fwdToken(t, "sk-ant-owner")
	if err := os.WriteFile(filepath.Join(laptop, "v"), []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	owner := "cat " + filepath.Join(laptop, "v")
	if res := a.Client(t, "", "add", "--from-command", owner, "anthropic"); res.Code != 0 {
		t.Fatalf("owner's add: %+v", res)
	}
	evil := fmt.Sprintf("touch %s; echo sk-FAKE-evil", pwned)
	attack := fmt.Sprintf(`S=${LLM_AUTH_SOCK:-$SSH_AUTH_SOCK}; export LLM_AUTH_SOCK=$S; rc=0
"$C" add --from-command %[1]q evil </dev/null && rc=1
"$C" add --from-command %[1]q anthropic </dev/null && rc=1
"$C" remove anthropic && rc=1
"$C" list --json
"$C" get anthropic | sha256sum
exit $rc`, evil)
	remoteSock := fmt.Sprintf("/tmp/atk15-%d.sock", os.Getpid())
	for _, tc := range []struct {
		name  string
		mode  fwdMode
		extra []string
		pre   string
	}{
		{"ForwardAgent=$LLM_AUTH_SOCK", fwdPrimary, nil, ""},
		{"ForwardAgent=yes, llm-agent as ssh's agent", fwdAsSSHAgent, nil, ""},
		{"ForwardAgent=the admin socket", fwdNone, []string{"-o", "ForwardAgent=" + a.Admin}, ""},
		{"ssh -R of LLM_AUTH_SOCK", fwdNone, []string{"-o", "StreamLocalBindUnlink=yes", "-R", remoteSock + ":" + a.Sock}, "export LLM_AUTH_SOCK=" + remoteSock + "; "},
	} {
		cmd := r.cmd(srv, tc.mode, tc.extra, tc.pre+attack)
		if tc.mode == fwdNone {
			// OpenSSH forwards only while SSH_AUTH_SOCK is live.
			cmd.Env = append(cmd.Env, "SSH_AUTH_SOCK="+r.live)
		}
		res := fwdRun(t, cmd, "")
		if res.Code != 0 {
			t.Errorf("%s: an add or remove succeeded, or the session failed: exit %d, stderr %s", tc.name, res.Code, firstLines(res.Stderr, 6))
		}
		if !strings.Contains(res.Stdout, `"command": "`+owner+`"`) || strings.Contains(res.Stdout, "evil") {
			t.Errorf("%s: server's list: %s", tc.name, res.Stdout)
		}
		if strings.Contains(res.Stdout, value) {
			t.Errorf("%s: the list shows the value", tc.name)
		}
		if _, err := os.Stat(pwned); err == nil {
			t.Fatalf("%s: the server made the laptop run its command", tc.name)
		}
		t.Logf("%s: refused; stderr: %s", tc.name, firstLines(res.Stderr, 3))
	}
	denied := 0
	for _, e := range readAudit(t, a.Audit) {
		if (e.Op == "add" || e.Op == "remove") && e.Decision == "deny" {
			denied++
			if !e.Forwarded {
				t.Errorf("denied %s not marked forwarded: %+v", e.Op, e)
			}
		}
		if e.Op == "command" && e.Provider != "anthropic" {
			t.Errorf("a command ran for %q", e.Provider)
		}
	}
	if denied != 12 {
		t.Errorf("audit log: %d adds and removes denied, want 12 (the agent, not the client, refused them)", denied)
	}
	if res := a.Client(t, "", "list", "--json"); res.Code != 0 || strings.Count(res.Stdout, `"provider"`) != 1 || !strings.Contains(res.Stdout, `"command": "`+owner+`"`) {
		t.Errorf("laptop's list after the attacks: %+v", res)
	}
}

// TestForwardedAdminNoCommand: an owner who relays the admin socket to a
// server (ssh -R of LLM_AUTH_SOCK.admin, which the README says never to
// do) hands it management, as ssh-agent's own socket would; but the server
// still cannot make the laptop run a command: the agent takes
// add --from-command only from a peer running llm-agent-client (here the
// laptop's ssh is the peer), refuses with one line and an audit record,
// and nothing runs.
func TestForwardedAdminNoCommand(t *testing.T) {
	t.Parallel()
	r := newFwdRig(t, AgentOptions{})
	a := r.agent
	srv := sshtest.Start(t, sshtest.Options{Name: "admin-cmd"})
	pwned := filepath.Join(t.TempDir(), "pwned")
	remoteSock := fmt.Sprintf("/tmp/admin-cmd-%d.sock", os.Getpid())
	script := fmt.Sprintf(`export LLM_AUTH_SOCK=%s
printf sk-FAKE-plain | "$C" add plain || exit 3
"$C" add --from-command %q evil </dev/null && exit 4
exit 0`, remoteSock, "touch "+pwned+"; echo sk-FAKE-evil")
	cmd := r.cmd(srv, fwdNone, []string{"-o", "StreamLocalBindUnlink=yes", "-R", remoteSock + ":" + a.Admin}, script)
	cmd.Env = append(cmd.Env, "SSH_AUTH_SOCK="+r.live)
	res := fwdRun(t, cmd, "")
	if res.Code != 0 {
		t.Fatalf("exit %d (3: the plain add failed, 4: the command add succeeded); stderr %s", res.Code, firstLines(res.Stderr, 6))
	}
	if !strings.Contains(res.Stderr, "a credential from a command is added only by llm-agent-client on the laptop") {
		t.Errorf("the refusal does not say why: %s", firstLines(res.Stderr, 6))
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Fatal("the server made the laptop run its command")
	}
	denied := false
	for _, e := range readAudit(t, a.Audit) {
		if e.Op == "add" && e.Provider == "evil" && e.Decision == "deny" {
			denied = true
		}
		if e.Op == "command" {
			t.Errorf("a command ran: %+v", e)
		}
	}
	if !denied {
		t.Error("no audit record of the refused add")
	}
}

package e2e

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	sshagent "golang.org/x/crypto/ssh/agent"

	"github.com/llm-agent/llm-agent/internal/sshtest"
)

// upsSSHAgent runs a real ssh-agent as cred (nil: as the test) on sock and
// loads one fresh key with comment into it.
func upsSSHAgent(t *testing.T, cred *syscall.Credential, sock, comment string) {
	t.Helper()
	sshtest.StartSSHAgent(t, sock, cred, cleanEnv())
	nc, err := dialUnix(sock)
	if err != nil {
		t.Fatalf("ssh-agent on %s: %v", sock, err)
	}
	defer nc.Close()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// ssh-agent serves root as well as its own uid, so the test can load it.
	if err := sshagent.NewClient(nc).Add(sshagent.AddedKey{PrivateKey: priv, Comment: comment}); err != nil {
		t.Fatalf("loading a key into the ssh-agent on %s: %v", sock, err)
	}
}

// TestUpstreamServedByAnotherUser: llm-agent --upstream names an SSH agent
// socket in a shared directory that another user serves (planted, or a
// forward that went stale and was taken). The agent must not hand that
// user's keys (or signatures) to its own clients: key requests fail and
// the audit log names the socket's owner. An upstream of the agent's own
// uid still works.
func TestUpstreamServedByAnotherUser(t *testing.T) {
	sshtest.RequireRoot(t)
	mallory := sshtest.NewUser(t, "llme2e")
	dir := plantedDir(t)

	cases := []struct {
		name string
		cred *syscall.Credential
		ok   bool
	}{
		{"own uid", nil, true},
		{"another user's", mallory.Cred(), false},
	}
	for i, c := range cases {
		sock := filepath.Join(dir, fmt.Sprintf("upstream%d.sock", i))
		comment := fmt.Sprintf("key-of-upstream-%d", i)
		upsSSHAgent(t, c.cred, sock, comment)
		a := StartAgent(t, AgentOptions{Audit: true, Args: []string{"--upstream", sock}})
		res := Run(t, a.Env(), "", "ssh-add", "-l")
		listed := strings.Contains(res.Stdout, comment)
		if c.ok {
			if res.Code != 0 || !listed {
				t.Errorf("%s: ssh-add -l through llm-agent: exit %d, %q %q; want the upstream's key listed", c.name, res.Code, res.Stdout, res.Stderr)
			}
			continue
		}
		if res.Code == 0 || listed {
			t.Errorf("%s: ssh-add -l through llm-agent: exit %d, %q; want a failure and no key of the other user's agent", c.name, res.Code, res.Stdout)
		}
		want := fmt.Sprintf("refusing the agent socket %s: it is served by uid %d (%s)", sock, mallory.UID, mallory.Name)
		found := false
		for _, e := range readAudit(t, a.Audit) {
			if e.Op == "upstream" && e.Decision == "error" && strings.Contains(e.Reason, want) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: the audit log has no upstream error with %q", c.name, want)
		}
		t.Logf("%s: ssh-add -l exit %d: %s", c.name, res.Code, strings.TrimSpace(res.Stderr))
	}
}

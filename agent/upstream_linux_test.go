//go:build linux

// The relay tests run a real OpenSSH ssh-agent through sshtest, which is
// Linux-only.

package agent_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	sshagent "golang.org/x/crypto/ssh/agent"

	"github.com/llm-agent/llm-agent/agent"
	"github.com/llm-agent/llm-agent/internal/sshtest"
)

// startOpenSSHAgent runs a real OpenSSH ssh-agent to be the agent's
// upstream and returns its socket.
func startOpenSSHAgent(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("ssh-agent"); err != nil {
		t.Skip("OpenSSH's ssh-agent is not installed")
	}
	sock := filepath.Join(t.TempDir(), "upstream.sock")
	sshtest.StartSSHAgent(t, sock, nil, nil)
	return sock
}

// TestUpstreamRelay: SSH-key requests reach a real OpenSSH ssh-agent
// upstream unchanged, behind the agent's lock; the private child is locked
// with the agent, a user's --upstream is not; a foreign upstream gets the
// agent's default lifetime on plain adds.
func TestUpstreamRelay(t *testing.T) {
	for _, c := range []struct {
		name    string
		private bool
	}{{"private ssh-agent child", true}, {"--upstream", false}} {
		t.Run(c.name, func(t *testing.T) {
			up := startOpenSSHAgent(t)
			ta := startAgent(t, agent.Config{Upstream: up, UpstreamPrivate: c.private})
			keys := sshagent.NewClient(ta.raw(t))
			direct := sshagent.NewClient(dialRaw(t, up))
			_, priv, _ := ed25519.GenerateKey(rand.Reader)
			pub, _ := ssh.NewPublicKey(priv.Public())
			if err := keys.Add(sshagent.AddedKey{PrivateKey: priv, Comment: "relayed"}); err != nil {
				t.Fatalf("add: %v", err)
			}
			if l, err := direct.List(); err != nil || len(l) != 1 || l[0].Comment != "relayed" {
				t.Fatalf("upstream lists %v, %v; want the key added through the agent", l, err)
			}
			if _, err := keys.Sign(pub, []byte("data")); err != nil {
				t.Errorf("sign: %v", err)
			}
			if err := keys.Lock([]byte("pw")); err != nil {
				t.Fatalf("lock: %v", err)
			}
			if l, err := keys.List(); err != nil || len(l) != 0 {
				t.Errorf("list through the locked agent: %v, %v; want none", l, err)
			}
			if _, err := keys.Sign(pub, []byte("data")); err == nil {
				t.Errorf("sign through the locked agent succeeded")
			}
			if l, _ := direct.List(); (len(l) == 0) != c.private {
				t.Errorf("upstream lists %d keys while the agent is locked; locked with it: %v", len(l), c.private)
			}
			if err := keys.Unlock([]byte("pw")); err != nil {
				t.Fatalf("unlock: %v", err)
			}
			if l, err := direct.List(); err != nil || len(l) != 1 {
				t.Errorf("upstream after unlock lists %v, %v", l, err)
			}
		})
	}
}

// TestUpstreamDefaultLifetime: with --upstream, a key added without
// constraints gets the agent's -t.
func TestUpstreamDefaultLifetime(t *testing.T) {
	up := startOpenSSHAgent(t)
	ta := startAgent(t, agent.Config{Upstream: up, DefaultLifetime: time.Second})
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	if err := sshagent.NewClient(ta.raw(t)).Add(sshagent.AddedKey{PrivateKey: priv}); err != nil {
		t.Fatal(err)
	}
	direct := sshagent.NewClient(dialRaw(t, up))
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if l, err := direct.List(); err == nil && len(l) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("key added with a 1 s default lifetime still in the upstream after 5 s")
		}
	}
}

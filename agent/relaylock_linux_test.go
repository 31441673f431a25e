//go:build linux

package agent_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"

	sshagent "golang.org/x/crypto/ssh/agent"

	"github.com/llm-agent/llm-agent/agent"
)

// TestRelayLockSSHKeysOnly attacks the use socket under the name ssh-agent
// as a relay without session-bind would (ssh -R, socat, an SSH stack that
// binds nothing): ssh-agent's rule lets it lock and unlock the SSH keys,
// but the LLM credentials' lock is management, refused there before. It
// must neither unlock a locked agent (and so release the credentials) nor
// lock the owner out of them with a passphrase of its own.
func TestRelayLockSSHKeysOnly(t *testing.T) {
	for _, c := range []struct {
		name string
		run  func(t *testing.T, ta *testAgent, relay sshagent.ExtendedAgent)
	}{
		{"relay unlocks the owner's lock", func(t *testing.T, ta *testAgent, relay sshagent.ExtendedAgent) {
			if err := ta.client(t).Lock([]byte("owner pass")); err != nil {
				t.Fatalf("owner's lock: %v", err)
			}
			if err := relay.Unlock([]byte("owner pass")); err == nil {
				t.Errorf("a relay without session-bind unlocked the owner's lock")
			}
			if _, err := newClient(ta.useRaw(t)).Get("anthropic", nil); err == nil {
				t.Errorf("the credential is served after the relay's unlock")
			}
			if l, _ := relay.List(); len(l) != 0 {
				t.Errorf("the relay lists %d SSH keys of the locked agent", len(l))
			}
			if !strings.Contains(ta.audit.String(), `"op":"unlock"`) {
				t.Errorf("the refused unlock is not in the audit log:\n%s", ta.audit)
			}
		}},
		{"relay locks with its own passphrase", func(t *testing.T, ta *testAgent, relay sshagent.ExtendedAgent) {
			if err := relay.Lock([]byte("attacker pass")); err != nil {
				t.Fatalf("ssh-agent's rule: the relay may lock the SSH keys: %v", err)
			}
			if l, _ := relay.List(); len(l) != 0 {
				t.Errorf("the SSH keys are listed after the relay's lock")
			}
			if _, err := newClient(ta.useRaw(t)).Get("anthropic", nil); err != nil {
				t.Errorf("the relay's lock locked the owner's credentials: %v", err)
			}
			if st, err := ta.client(t).Status(); err != nil || st.Locked {
				t.Errorf("status after the relay's lock: %+v, %v; want not locked", st, err)
			}
			if err := relay.Unlock([]byte("attacker pass")); err != nil {
				t.Errorf("the relay cannot unlock the SSH keys it locked: %v", err)
			}
			if l, _ := relay.List(); len(l) != 1 {
				t.Errorf("the relay lists %d SSH keys after its unlock, want 1", len(l))
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			up := startOpenSSHAgent(t)
			ta := startAgent(t, agent.Config{Upstream: up, UpstreamPrivate: true, SSHAgentRights: true})
			mustAdd(t, ta.client(t), apiCred("anthropic", "sk-ant-secret"))
			relay := sshagent.NewClient(ta.useRaw(t))
			_, priv, _ := ed25519.GenerateKey(rand.Reader)
			if err := relay.Add(sshagent.AddedKey{PrivateKey: priv}); err != nil {
				t.Fatalf("ssh-agent's rule: the relay may add a key: %v", err)
			}
			c.run(t, ta, relay)
		})
	}
}

package agent_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"

	sshagent "golang.org/x/crypto/ssh/agent"

	"github.com/llm-agent/llm-agent/agent"
)

// TestSSHAgentRights: under ssh-agent's rule the use socket may add SSH
// keys, until a forwarding session-bind; without it, only ssh-add may. It
// may never lock the in-process keyring: that lock is the credentials' too
// (see TestRelayLockSSHKeysOnly for the private ssh-agent's).
func TestSSHAgentRights(t *testing.T) {
	for _, c := range []struct {
		name   string
		rights bool
		bind   bool
		want   bool
	}{
		{"llm-agent", false, false, false},
		{"ssh-agent", true, false, true},
		{"ssh-agent, forwarded", true, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ta := startAgent(t, agent.Config{SSHAgentRights: c.rights})
			conn := ta.useRaw(t)
			if c.bind && !bind(t, conn, newHostKey(t).bindFrame(t, true)) {
				t.Fatal("bind refused")
			}
			keys := sshagent.NewClient(conn)
			_, priv, _ := ed25519.GenerateKey(rand.Reader)
			if err := keys.Add(sshagent.AddedKey{PrivateKey: priv}); (err == nil) != c.want {
				t.Errorf("add on the use socket: %v, want allowed %v", err, c.want)
			}
			if err := keys.Lock([]byte("pw")); err == nil {
				t.Errorf("lock of the in-process keyring on the use socket allowed")
			}
		})
	}
}

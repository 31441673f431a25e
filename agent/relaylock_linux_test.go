//go:build linux

package agent_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	sshagent "golang.org/x/crypto/ssh/agent"

	"github.com/llm-agent/llm-agent/agent"
	"github.com/llm-agent/llm-agent/protocol"
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

// TestRelayHostileFrames sends what a relay might to break the private
// ssh-agent or regain rights: malformed lock and unlock (OpenSSH's
// ssh-agent exits on those), every message type with a junk body, an
// oversized frame, and after a forwarding session-bind a forged one that
// says "not forwarding". The child must keep serving, and the forwarded
// connection must stay without management rights.
func TestRelayHostileFrames(t *testing.T) {
	up := startOpenSSHAgent(t)
	ta := startAgent(t, agent.Config{Upstream: up, UpstreamPrivate: true, SSHAgentRights: true})
	var junk [][]byte
	junk = append(junk, []byte{0, 0, 0, 1, 22}, []byte{0, 0, 0, 3, 23, 0xff, 0xff})
	for typ := 0; typ < 256; typ++ {
		junk = append(junk, []byte{0, 0, 0, 6, byte(typ), 0xff, 0xff, 0xff, 0xff, 1})
	}
	for _, f := range junk {
		c := dialRaw(t, ta.use)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write(f)
		protocol.ReadFrame(c, protocol.MaxFrame) // a failure, or a hang-up
		c.Close()
	}
	big := dialRaw(t, ta.use)
	big.Write([]byte{0, 4, 0, 1, 11})
	expectClosed(t, big)
	if l, err := sshagent.NewClient(dialRaw(t, up)).List(); err != nil {
		t.Fatalf("the private ssh-agent after the hostile frames: %v, %v", l, err)
	}

	h := newHostKey(t)
	c := ta.useRaw(t)
	if !bind(t, c, h.bindFrame(t, true)) {
		t.Fatal("forwarding bind refused")
	}
	bind(t, c, h.bindFrame(t, false)) // root on the server holds h
	keys := sshagent.NewClient(c)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	if err := keys.Add(sshagent.AddedKey{PrivateKey: priv}); err == nil {
		t.Errorf("a forged non-forwarding bind after a forwarding one regained the right to add keys")
	}
	if err := keys.Lock([]byte("x")); err == nil {
		t.Errorf("a forged non-forwarding bind after a forwarding one regained the right to lock")
	}
}

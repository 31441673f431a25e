package agent_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"

	"golang.org/x/crypto/ssh"
	sshagent "golang.org/x/crypto/ssh/agent"

	"github.com/llm-agent/llm-agent/agent"
	"github.com/llm-agent/llm-agent/protocol"
)

// TestSSHKeys drives the SSH-key side with x/crypto's own agent client on
// the same socket the LLM extensions use.
func TestSSHKeys(t *testing.T) {
	ta := startAgent(t, agent.Config{})
	keys := sshagent.NewClient(ta.raw(t))
	llm := ta.client(t)

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.Add(sshagent.AddedKey{PrivateKey: priv, Comment: "test key"}); err != nil {
		t.Fatalf("add: %v", err)
	}
	list, err := keys.List()
	if err != nil || len(list) != 1 || list[0].Comment != "test key" || string(list[0].Blob) != string(sshPub.Marshal()) {
		t.Fatalf("list = %v, %v", list, err)
	}
	data := []byte("data to sign")
	sig, err := keys.Sign(sshPub, data)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	if err := sshPub.Verify(data, sig); err != nil {
		t.Fatalf("signature does not verify: %v", err)
	}

	// The lock (here from x/crypto's client) hides keys and credentials.
	mustAdd(t, llm, apiCred("anthropic", mKey))
	if err := keys.Lock([]byte("pw")); err != nil {
		t.Fatalf("lock: %v", err)
	}
	if list, err := keys.List(); err != nil || len(list) != 0 {
		t.Errorf("list while locked = %v, %v; want no keys", list, err)
	}
	if _, err := keys.Sign(sshPub, data); err == nil {
		t.Errorf("sign while locked succeeded")
	}
	if err := keys.Add(sshagent.AddedKey{PrivateKey: priv}); err == nil {
		t.Errorf("add while locked succeeded")
	}
	if err := keys.RemoveAll(); err == nil {
		t.Errorf("remove-all while locked succeeded")
	}
	if _, err := llm.Get("anthropic", nil); failureCode(err) != protocol.CodeLocked {
		t.Errorf("get while locked by ssh-add -x: %v", err)
	}
	if err := keys.Unlock([]byte("wrong")); err == nil {
		t.Errorf("unlock with a wrong passphrase succeeded")
	}
	if err := llm.Unlock([]byte("pw")); err != nil {
		t.Fatalf("unlock: %v", err)
	}
	if list, err := keys.List(); err != nil || len(list) != 1 {
		t.Fatalf("list after unlock = %v, %v", list, err)
	}

	if err := keys.Remove(sshPub); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if err := keys.Add(sshagent.AddedKey{PrivateKey: priv}); err != nil {
		t.Fatal(err)
	}
	if err := keys.RemoveAll(); err != nil {
		t.Fatalf("remove-all: %v", err)
	}
	if list, err := keys.List(); err != nil || len(list) != 0 {
		t.Fatalf("list after remove-all = %v, %v", list, err)
	}
	// SSH keys and credentials are separate: remove-all of keys left the
	// credential.
	if _, err := llm.Get("anthropic", nil); err != nil {
		t.Errorf("credential gone after ssh key remove-all: %v", err)
	}
}

// A forwarded connection may list and use SSH keys but not change them.
func TestSSHKeysForwarded(t *testing.T) {
	ta := startAgent(t, agent.Config{})
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	if err := sshagent.NewClient(ta.raw(t)).Add(sshagent.AddedKey{PrivateKey: priv}); err != nil {
		t.Fatal(err)
	}
	c := ta.raw(t)
	if !bind(t, c, newHostKey(t).bindFrame(t, true)) {
		t.Fatal("bind refused")
	}
	remote := sshagent.NewClient(c)
	_, priv2, _ := ed25519.GenerateKey(rand.Reader)
	if err := remote.Add(sshagent.AddedKey{PrivateKey: priv2}); err == nil {
		t.Errorf("forwarded add of an SSH key succeeded")
	}
	if err := remote.RemoveAll(); err == nil {
		t.Errorf("forwarded remove-all of SSH keys succeeded")
	}
	if list, err := remote.List(); err != nil || len(list) != 1 {
		t.Errorf("forwarded list = %v, %v", list, err)
	}
}

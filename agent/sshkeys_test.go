package agent_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// TestSSHKeyConstraintsCert: a constraint (ssh-add -c, -t) given to any
// entry of a private key, the plain key or a certificate for it, binds
// every blob that key is listed and signs under, since a signature under
// one serves a login with the other; it ends with the entry that carried it.
func TestSSHKeyConstraintsCert(t *testing.T) {
	t.Parallel()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	_, caPriv, _ := ed25519.GenerateKey(rand.Reader)
	ca, err := ssh.NewSignerFromKey(caPriv)
	if err != nil {
		t.Fatal(err)
	}
	cert := &ssh.Certificate{
		Key: signer.PublicKey(), Serial: 1, CertType: ssh.UserCert, KeyId: "c14",
		ValidPrincipals: []string{"user"}, ValidBefore: ssh.CertTimeInfinity,
	}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	pubs := map[string]ssh.PublicKey{"key": signer.PublicKey(), "cert": cert}

	// step is one operation: add (with -c and -t), remove, remove-all, sign
	// (asked: whether the owner is asked; the askpass refuses), wait, list.
	type step struct {
		op, which string
		confirm   bool
		life      uint32
		asked     bool
		listed    int
	}
	add := func(which string, confirm bool) step { return step{op: "add", which: which, confirm: confirm} }
	sign := func(which string, asked bool) step { return step{op: "sign", which: which, asked: asked} }
	rm := func(which string) step { return step{op: "remove", which: which} }
	tests := []struct {
		name  string
		steps []step
	}{
		{"key_c", []step{add("key", true), sign("key", true)}},
		{"key_plain", []step{add("key", false), sign("key", false)}},
		{"cert_c", []step{add("cert", true), sign("cert", true)}},
		{"cert_c_key_plain", []step{add("cert", true), add("key", false), sign("key", true), sign("cert", true)}},
		{"key_plain_cert_c", []step{add("key", false), add("cert", true), sign("key", true), sign("cert", true)}},
		{"key_c_cert_plain", []step{add("key", true), add("cert", false), sign("cert", true), sign("key", true)}},
		{"cert_plain_key_c", []step{add("cert", false), add("key", true), sign("cert", true), sign("key", true)}},
		{"remove_cert_c", []step{add("cert", true), add("key", false), rm("cert"), sign("key", false)}},
		{"remove_key_c", []step{add("key", true), add("cert", false), rm("key"), sign("cert", false)}},
		{"readd_cert_without_c", []step{add("cert", true), add("key", false), add("cert", false), sign("key", false), sign("cert", false)}},
		{"remove_all", []step{add("key", true), add("cert", true), {op: "remove-all"}, add("key", false), add("cert", false), sign("key", false), sign("cert", false)}},
		{"cert_t_ends_key", []step{add("key", false), {op: "add", which: "cert", life: 1}, {op: "list", listed: 2}, {op: "wait"}, {op: "list", listed: 0}}},
		{"key_t_ends_cert", []step{{op: "add", which: "key", life: 1}, add("cert", false), {op: "wait"}, {op: "list", listed: 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			asked := filepath.Join(dir, "asked")
			no := writeScript(t, dir, "no", fmt.Sprintf("printf '%%s\\n' \"$1\" >> %s\nexit 1", asked))
			keys := sshagent.NewClient(startAgent(t, agent.Config{Askpass: no}).raw(t))
			prompts := 0
			for i, st := range tt.steps {
				switch st.op {
				case "add":
					k := sshagent.AddedKey{PrivateKey: priv, ConfirmBeforeUse: st.confirm, LifetimeSecs: st.life}
					if st.which == "cert" {
						k.Certificate = cert
					}
					if err := keys.Add(k); err != nil {
						t.Fatalf("step %d: add %s: %v", i, st.which, err)
					}
				case "remove":
					if err := keys.Remove(pubs[st.which]); err != nil {
						t.Fatalf("step %d: remove %s: %v", i, st.which, err)
					}
				case "remove-all":
					if err := keys.RemoveAll(); err != nil {
						t.Fatalf("step %d: remove-all: %v", i, err)
					}
				case "wait":
					time.Sleep(1200 * time.Millisecond)
				case "list":
					if l, err := keys.List(); err != nil || len(l) != st.listed {
						t.Errorf("step %d: list = %d keys, %v; want %d", i, len(l), err, st.listed)
					}
				case "sign":
					data := []byte("data to sign")
					sig, err := keys.Sign(pubs[st.which], data)
					b, _ := os.ReadFile(asked)
					n := strings.Count(string(b), "\n")
					wasAsked := n > prompts
					prompts = n
					if wasAsked != st.asked {
						t.Errorf("step %d: sign with %s: owner asked %v, want %v", i, st.which, wasAsked, st.asked)
					}
					if st.asked && err == nil {
						t.Errorf("step %d: sign with %s succeeded although the owner refused", i, st.which)
					}
					if !st.asked {
						if err != nil {
							t.Errorf("step %d: sign with %s: %v", i, st.which, err)
						} else if err := signer.PublicKey().Verify(data, sig); err != nil {
							t.Errorf("step %d: signature does not verify: %v", i, err)
						}
					}
				}
			}
			// The prompt names the plain key's fingerprint, as ssh-agent's does.
			if b, _ := os.ReadFile(asked); len(b) > 0 && !strings.Contains(string(b), ssh.FingerprintSHA256(signer.PublicKey())) {
				t.Errorf("prompt %q does not name the key's fingerprint", b)
			}
		})
	}
}

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSSHAddOnUseSocket: LLM_AUTH_SOCK is use-only, yet the laptop's own
// ssh-add keeps managing the keyring through it with no new step, because
// the agent recognises the ssh-add program itself (its executable's device
// and inode). A renamed copy of ssh-add (another inode) and ssh-add behind
// a relay are what any other relay is: use-only.
func TestSSHAddOnUseSocket(t *testing.T) {
	t.Parallel()
	sshAdd, err := exec.LookPath("ssh-add")
	if err != nil {
		t.Skip("ssh-add is not installed")
	}
	a := StartAgent(t, AgentOptions{})
	dir := t.TempDir()
	key := func(name string) string {
		p := filepath.Join(dir, name)
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", p).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v: %s", err, out)
		}
		return p
	}
	env := append(cleanEnv(), "SSH_AUTH_SOCK="+a.Sock)

	// The real ssh-add: add, list, delete, as with ssh-agent.
	if r := Run(t, env, "", sshAdd, key("real")); r.Code != 0 {
		t.Fatalf("ssh-add KEY on LLM_AUTH_SOCK: exit %d, %q", r.Code, r.Stderr)
	}
	if r := Run(t, env, "", sshAdd, "-l"); r.Code != 0 || !strings.Contains(r.Stdout, "real") {
		t.Fatalf("ssh-add -l: exit %d, %q", r.Code, r.Stdout)
	}

	// A copy under another name and inode: a stand-in for any program that
	// is not the local ssh-add, relays included.
	data, err := os.ReadFile(sshAdd)
	if err != nil {
		t.Fatal(err)
	}
	copyAdd := filepath.Join(dir, "not-ssh-add")
	if err := os.WriteFile(copyAdd, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if r := Run(t, env, "", copyAdd, key("copy")); r.Code == 0 {
		t.Errorf("a copy of ssh-add added a key on LLM_AUTH_SOCK: %q", r.Stderr)
	}
	if r := Run(t, env, "", copyAdd, "-D"); r.Code == 0 {
		t.Errorf("a copy of ssh-add removed every key on LLM_AUTH_SOCK")
	}

	// The real ssh-add behind a relay: the agent sees the relay.
	if _, err := exec.LookPath("socat"); err == nil {
		relay := filepath.Join(t.TempDir(), "relay.sock")
		startRelay(t, relay, "socat", "UNIX-LISTEN:"+relay+",fork,mode=600", "UNIX-CONNECT:"+a.Sock)
		renv := append(cleanEnv(), "SSH_AUTH_SOCK="+relay)
		if r := Run(t, renv, "", sshAdd, key("relayed")); r.Code == 0 {
			t.Errorf("ssh-add through a socat relay added a key")
		}
		if r := Run(t, renv, "", sshAdd, "-l"); r.Code != 0 || !strings.Contains(r.Stdout, "real") {
			t.Errorf("ssh-add -l through the relay (use is allowed): exit %d, %q", r.Code, r.Stdout)
		}
	}
	if r := Run(t, env, "", sshAdd, "-l"); strings.Contains(r.Stdout, "copy") || strings.Contains(r.Stdout, "relayed") || !strings.Contains(r.Stdout, "real") {
		t.Errorf("keyring after the refused adds: %q", r.Stdout)
	}
}

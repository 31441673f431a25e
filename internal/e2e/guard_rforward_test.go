package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGuardReadmeRForward: the README's -R recipe forwards to
// ~/.llm-agent/sock, which is inside the guard's default directory when
// the login has no XDG_RUNTIME_DIR. The guard took any LLM_AUTH_SOCK under
// that directory for a guard of its own and refused to start ("this shell
// already uses a guard"), so an -R forward to a shared account could not be
// guarded at all. Now only a guard's stable path (<dir>/<owner>/agent.sock)
// counts as one: the guard starts, hides the -R socket and refuses the
// co-tenant.
func TestGuardReadmeRForward(t *testing.T) {
	r, a, token := newGrdRigAgent(t, "grdrfw", "sk-ant-grdrfw")
	laptop, _ := readmeRForward(t)
	if !strings.Contains(laptop[len(laptop)-1], "/home/you/.llm-agent/sock") {
		t.Fatalf("the README's -R recipe no longer forwards to /home/you/.llm-agent/sock: %q", laptop[len(laptop)-1])
	}
	if err := os.MkdirAll(filepath.Join(r.user.Home, ".llm-agent"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chown(filepath.Join(r.user.Home, ".llm-agent"), r.user.UID, r.user.GID)
	remote := filepath.Join(r.user.Home, ".llm-agent", "sock")
	owner := r.loginWith("owner", []string{"-o", "ExitOnForwardFailure=yes", "-R", remote + ":" + a.Sock}, nil)
	if out, _ := owner.Run(`printf '%s\n' "${XDG_RUNTIME_DIR:-unset}"`); strings.TrimSpace(out) != "unset" {
		t.Logf("XDG_RUNTIME_DIR=%s in the login: the guard's directory is not ~/.llm-agent", strings.TrimSpace(out))
	}
	owner.Run(`export LLM_AUTH_SOCK=~/.llm-agent/sock; unset SSH_AUTH_SOCK`)
	g := owner.startGuard()
	t.Logf("guard pid %d on %s", g.PID, g.Sock)
	if res := owner.try(""); res.rc != 0 {
		t.Errorf("the owner through the guard: exit %d, %q", res.rc, res.stderr)
	} else {
		fwdSameSecret(t, "the owner through the guard", res.out, token)
	}
	if _, err := os.Lstat(remote); !os.IsNotExist(err) {
		t.Errorf("the -R socket %s is still there after the guard started (%v)", remote, err)
	}
	co := r.login("co-tenant", "")
	for _, sock := range []string{g.Sock, remote} {
		res := co.try("LLM_AUTH_SOCK='" + sock + "'")
		t.Logf("co-tenant, LLM_AUTH_SOCK=%s: exit %d: %s", sock, res.rc, res.stderr)
		if res.rc == 0 || strings.Contains(res.out, token) {
			t.Errorf("the co-tenant got a credential through %s", sock)
		}
	}
}

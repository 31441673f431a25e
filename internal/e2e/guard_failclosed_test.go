package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// readmeGuardSnippet is the shell profile snippet README.md tells users to
// install: the sh block that runs `llm-agent-client guard`. The tests use
// it verbatim, so that the README stays true.
func readmeGuardSnippet(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(string(data), -1) {
		if strings.Contains(m[1], "llm-agent-client guard") {
			found = append(found, m[1])
		}
	}
	if len(found) != 1 {
		t.Fatalf("README.md has %d sh blocks that run llm-agent-client guard, want the one profile snippet", len(found))
	}
	return found[0]
}

// grdWarning is the line the README's snippet prints when the guard does
// not start.
const grdWarning = "the guard did not start"

// TestGuardSnippetFailsClosed installs the README's profile snippet,
// exactly, as the shared account's ~/.bashrc (bash reads it for an ssh
// command) and logs in: when the guard cannot start (a stable base or
// owner directory it must refuse: another owner's, a symlink, open to
// others; or no llm-agent-client on the PATH), the login has neither
// SSH_AUTH_SOCK nor LLM_AUTH_SOCK, the forwarded socket is gone, and the
// warning was printed once. A forwarded plain ssh-agent is left alone, and
// a guard that can start serves the owner.
func TestGuardSnippetFailsClosed(t *testing.T) {
	r, a, token := newGrdRigAgent(t, "grdclosed", "sk-ant-grdc")
	snippet := readmeGuardSnippet(t)
	home, uid, gid := r.user.Home, r.user.UID, r.user.GID
	base := filepath.Join(home, ".llm-agent")
	mkdir := func(p string, mode os.FileMode, owner int) {
		t.Helper()
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, owner, owner); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	write := func(name, data string) {
		t.Helper()
		p := filepath.Join(home, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	// The owner's directory under the base, <base>/<owner>: learnt from
	// the first case, where the guard starts.
	var ownerDir string
	inBase := func(f func()) func() {
		return func() {
			mkdir(base, 0o700, uid)
			f()
		}
	}
	cases := []struct {
		name    string
		setup   func()
		noPath  bool   // llm-agent-client is not on the PATH
		plain   bool   // forward a plain ssh-agent, not llm-agent
		wantErr string // in ~/.llm-agent-guard.err; "" when the guard starts or is not needed
		closed  bool   // the login must fail closed
	}{
		{name: "guard starts"},
		{name: "stable base owned by root", setup: func() { mkdir(base, 0o755, 0) }, wantErr: "belongs to uid 0", closed: true},
		{name: "stable base is a symlink", setup: func() {
			mkdir(filepath.Join(home, "elsewhere"), 0o700, uid)
			if err := os.Symlink(filepath.Join(home, "elsewhere"), base); err != nil {
				t.Fatal(err)
			}
			os.Lchown(base, uid, gid)
		}, wantErr: "is a symlink", closed: true},
		{name: "stable base group-writable", setup: func() { mkdir(base, 0o770, uid) }, wantErr: "open to group or others", closed: true},
		{name: "owner directory owned by root", setup: inBase(func() { mkdir(ownerDir, 0o700, 0) }), wantErr: "belongs to uid 0", closed: true},
		{name: "owner directory is a symlink", setup: inBase(func() {
			mkdir(filepath.Join(home, "elsewhere"), 0o700, uid)
			if err := os.Symlink(filepath.Join(home, "elsewhere"), ownerDir); err != nil {
				t.Fatal(err)
			}
			os.Lchown(ownerDir, uid, gid)
		}), wantErr: "is a symlink", closed: true},
		{name: "owner directory group-readable", setup: inBase(func() { mkdir(ownerDir, 0o750, uid) }), wantErr: "open to group or others", closed: true},
		{name: "llm-agent-client not on the PATH", noPath: true, closed: true},
		{name: "plain ssh-agent forwarded", plain: true},
	}
	for _, c := range cases {
		for _, p := range []string{base, filepath.Join(home, "elsewhere"), filepath.Join(home, ".llm-agent-guard.err")} {
			os.RemoveAll(p)
		}
		if c.setup != nil {
			c.setup()
		}
		// The lines before the snippet are the test's: where the client
		// is, and which socket was forwarded (to check it is gone).
		rc := "printf '%s\\n' \"$SSH_AUTH_SOCK\" >\"$HOME/.forwarded\"\n"
		if !c.noPath {
			rc = "PATH=" + filepath.Dir(bins.Client) + ":$PATH\n" + rc
		}
		write(".bashrc", rc+snippet)

		var s *grdShell
		if c.plain {
			s = r.loginWith(c.name, []string{"-o", "ForwardAgent=yes"}, []string{"SSH_AUTH_SOCK=" + r.live})
		} else {
			s = r.login(c.name, a.Sock)
		}
		out, _ := s.Run(`printf 'ssh=%s\nllm=%s\nguard=%s\nxdg=%s\n' "${SSH_AUTH_SOCK-unset}" "${LLM_AUTH_SOCK-unset}" "${LLM_GUARD_PID-unset}" "${XDG_RUNTIME_DIR-unset}"`)
		env := map[string]string{}
		for _, l := range strings.Split(out, "\n") {
			if k, v, ok := strings.Cut(l, "="); ok {
				env[k] = v
			}
		}
		fwdData, _ := os.ReadFile(filepath.Join(home, ".forwarded"))
		fwd := strings.TrimSpace(string(fwdData))
		errData, _ := os.ReadFile(filepath.Join(home, ".llm-agent-guard.err"))
		warnings := strings.Count(s.Stderr(), grdWarning)
		_, fwdErr := os.Lstat(fwd)
		t.Logf("%s: SSH_AUTH_SOCK %s, LLM_AUTH_SOCK %s, LLM_GUARD_PID %s (XDG_RUNTIME_DIR %s); forwarded %s exists %v; %d warnings; guard said %q",
			c.name, env["ssh"], env["llm"], env["guard"], env["xdg"], fwd, fwdErr == nil, warnings, strings.TrimSpace(string(errData)))
		if fwd == "" {
			t.Errorf("%s: nothing was forwarded to the login (or ~/.bashrc was not read)", c.name)
			continue
		}
		switch {
		case c.closed:
			if env["ssh"] != "unset" || env["llm"] != "unset" || env["guard"] != "unset" {
				t.Errorf("%s: the login went on with SSH_AUTH_SOCK=%s LLM_AUTH_SOCK=%s LLM_GUARD_PID=%s; want all unset",
					c.name, env["ssh"], env["llm"], env["guard"])
			}
			if fwdErr == nil {
				t.Errorf("%s: the forwarded socket %s is still there", c.name, fwd)
			}
			if warnings != 1 {
				t.Errorf("%s: the warning %q was printed %d times, want once; stderr %q", c.name, grdWarning, warnings, s.Stderr())
			}
			if !strings.Contains(string(errData), c.wantErr) {
				t.Errorf("%s: ~/.llm-agent-guard.err holds %q, want %q", c.name, errData, c.wantErr)
			}
		case c.plain:
			if env["ssh"] != fwd || env["llm"] != "unset" || fwdErr != nil || warnings != 0 || len(s.Profile) != 0 {
				t.Errorf("%s: SSH_AUTH_SOCK=%s (forwarded %s, exists %v), LLM_AUTH_SOCK=%s, %d warnings, profile output %q; want the forward left alone, silently",
					c.name, env["ssh"], fwd, fwdErr == nil, env["llm"], warnings, s.Profile)
			}
			// The forwarded agent still answers (exit 1: it holds no keys).
			if _, rc := s.Run(`ssh-add -l >/dev/null 2>&1`); rc != 1 {
				t.Errorf("%s: ssh-add -l in the login: exit %d, want 1 (an empty agent that answers)", c.name, rc)
			}
		default:
			ownerDir = filepath.Dir(env["llm"])
			if env["guard"] == "unset" || env["llm"] == "unset" || warnings != 0 || fwdErr == nil {
				t.Errorf("%s: LLM_GUARD_PID=%s LLM_AUTH_SOCK=%s, %d warnings, forwarded socket still there %v; want a guard serving",
					c.name, env["guard"], env["llm"], warnings, fwdErr == nil)
			}
			if res := s.try(""); res.rc != 0 {
				t.Errorf("%s: get through the guard: exit %d %q", c.name, res.rc, res.stderr)
			} else {
				fwdSameSecret(t, c.name, res.out, token)
			}
		}
		s.Logout()
		s.Exited(grdCmdTimeout)
		if pid, err := strconv.Atoi(env["guard"]); err == nil {
			if _, ok := grdWaitGone(pid, 5*time.Second); !ok {
				t.Fatalf("%s: the guard %d still runs 5 s after the logout", c.name, pid)
			}
		}
	}
}

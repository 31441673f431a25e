package e2e

// llm-agent as a drop-in ssh-agent, judged by suites other people wrote:
// OpenSSH's own regression tests (Debian's openssh-tests) with llm-agent in
// ssh-agent's place.

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/internal/sshtest"
)

// regressDir is where Debian's openssh-tests installs OpenSSH's regression
// suite, built for the installed OpenSSH; run-tests is its driver.
const regressDir = "/usr/lib/openssh/regress"

// regressAgentTests are the suite's tests of the agent.
var regressAgentTests = []string{
	"agent", "agent-getpeereid", "agent-timeout", "agent-ptrace", "agent-subprocess",
	"agent-restrict", "hostkey-agent", "sshsig", "cert-file", "agent-pkcs11",
}

// requireTools skips t when a program it needs is missing, and fails it
// under CI=true (.ci/run installs them).
func requireTools(t *testing.T, hint string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := exec.LookPath(p); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is not installed and CI=true: %s", p, hint)
			}
			t.Skipf("%s is not installed (%s); skipping", p, hint)
		}
	}
}

// TestSSHAgentDropInRegress runs OpenSSH's regression tests of the agent
// with TEST_SSH_SSHAGENT naming llm-agent under the name ssh-agent, as the
// suite expects to be run: by an unprivileged user with passwordless sudo,
// through Debian's run-tests driver, one test at a time so that each gets
// its time. LLM_REGRESS_STOCK=1 runs the installed ssh-agent too, for the
// table in bench/REGRESS.md.
func TestSSHAgentDropInRegress(t *testing.T) {
	sshtest.RequireRoot(t)
	requireTools(t, "apt-get install -y openssh-tests sudo make softhsm2", regressDir+"/run-tests", "sudo", "make", "softhsm2-util")

	u := sshtest.NewUser(t, "llmregress")
	sudoers := "/etc/sudoers.d/" + u.Name
	if err := os.WriteFile(sudoers, []byte(u.Name+" ALL=(ALL) NOPASSWD: ALL\n"), 0o440); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(sudoers) })

	base := sshtest.PublicDir(t, 0o755, u)
	// A copy of its own, owned by the user: agent-ptrace makes the agent
	// setgid root and back, which must not touch the binary other tests
	// share. The name ssh-agent is a symbolic link to it, so the agent also
	// shows that it does not take itself for OpenSSH's ssh-agent.
	ours := filepath.Join(base, "bin", "llm-agent")
	if err := os.Mkdir(filepath.Dir(ours), 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, bins.Agent, ours, 0o755)
	if err := os.Symlink("llm-agent", filepath.Join(base, "bin", "ssh-agent")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Dir(ours), ours} {
		if err := os.Lchown(p, u.UID, u.GID); err != nil {
			t.Fatal(err)
		}
	}

	// The control: the suite fails with a broken agent, so the agent it
	// runs is TEST_SSH_SSHAGENT's, and the passes below are ours.
	control := filepath.Join(base, "control")
	if err := os.Mkdir(control, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(control, u.UID, u.GID); err != nil {
		t.Fatal(err)
	}
	if out, err := runRegress(u, control, "/bin/false", "agent-getpeereid"); err == nil {
		t.Fatalf("agent-getpeereid passed with /bin/false as the agent: TEST_SSH_SSHAGENT is not used\n%s", out)
	}

	agents := []struct{ name, path string }{{"llm-agent", filepath.Join(base, "bin", "ssh-agent")}}
	if os.Getenv("LLM_REGRESS_STOCK") == "1" {
		agents = append([]struct{ name, path string }{{"stock", "ssh-agent"}}, agents...)
	}
	for i, a := range agents {
		for j, test := range regressAgentTests {
			t.Run(a.name+"/"+test, func(t *testing.T) {
				// Not named after the test: hostkey-agent.sh drops every
				// sshd_config line that says "hostkey", paths included.
				work := filepath.Join(base, fmt.Sprintf("run%d.%d", i, j))
				if err := os.Mkdir(work, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Chown(work, u.UID, u.GID); err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				out, err := runRegress(u, work, a.path, test)
				took := time.Since(start).Round(100 * time.Millisecond)
				// A test that finds no token library (PKCS#11) says
				// "skipped:" and exits 0: that is not a pass.
				if err != nil || !strings.Contains(out, "run test "+test+".sh") || strings.Contains(out, "skipped:") {
					t.Fatalf("%s with %s: %v after %s\n%s", test, a.name, err, took, out)
				}
				t.Logf("REGRESS %s | %s | ok | %s", test, a.name, took)
			})
		}
	}
}

// runRegress runs one test of the suite as u in work with agent as
// TEST_SSH_SSHAGENT, through run-tests (which copies the suite into work
// and runs make t-exec there), and returns what it printed.
func runRegress(u *sshtest.User, work, agent, test string) (string, error) {
	cmd := exec.Command("sudo", "-u", u.Name, "-H", "env", "TEST_SSH_SSHAGENT="+agent, "USER="+u.Name,
		"sh", regressDir+"/run-tests", work, "t-exec", "LTESTS="+test)
	cmd.Dir = work
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Stdin = nil
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		return "", err
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(5 * time.Minute):
		cmd.Process.Kill()
		<-done
		return out.String(), fmt.Errorf("timed out")
	}
}

// copyFile copies src to dst with mode.
func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

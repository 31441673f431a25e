package sshtest

import (
	"net"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// StartSSHAgent runs OpenSSH's ssh-agent in the foreground on sock, as cred
// (nil: as the test) with environment env (nil: the test's), and waits
// until it answers. It returns the agent's pid; t.Cleanup stops it with
// SIGTERM, so that it removes its socket as it would at logout.
func StartSSHAgent(t testing.TB, sock string, cred *syscall.Credential, env []string) int {
	t.Helper()
	cmd := exec.Command("ssh-agent", "-D", "-a", sock)
	cmd.Env = env
	cmd.Dir = "/" // another uid may not enter the test's working directory
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("sshtest: starting ssh-agent: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		c, err := net.DialTimeout("unix", sock, time.Second)
		if err == nil {
			c.Close()
			return cmd.Process.Pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshtest: ssh-agent does not answer on %s: %v", sock, err)
		}
	}
}

package service

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/internal/agenttest"
)

// staleEnv are LISTEN_ variables as a shell started by a socket-activated
// service passes them on: LISTEN_PID names that shell, the parent.
var staleEnv = []string{"LISTEN_FDS=2", "LISTEN_FDNAMES=" + FDName + ":" + FDName}

// underStaleShell runs argv as the child (not the exec) of a shell whose
// own pid is LISTEN_PID, with the shell's fds 3 and 4 two real sockets
// of the agent's shape, so that only LISTEN_PID says they are not ours.
func underStaleShell(t *testing.T, files []*os.File, argv ...string) *exec.Cmd {
	t.Helper()
	// Not the last command, so that no shell execs it in place.
	cmd := exec.Command("/bin/sh", append([]string{"-c", `LISTEN_PID=$$; export LISTEN_PID; "$@"; exit $?`, "sh"}, argv...)...)
	cmd.Env = append(agenttest.CleanEnv(), staleEnv...)
	cmd.ExtraFiles = files
	return cmd
}

// environOf is the environment of process pid.
func environOf(t *testing.T, pid int) []string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(string(bytes.TrimRight(b, "\x00")), "\x00")
}

// TestAttack16StaleListenEnv: LISTEN_ variables inherited from a shell of
// a service (or exported by a tool) never make the agent serve on
// someone else's sockets, and never reach what the agent starts.
func TestAttack16StaleListenEnv(t *testing.T) {
	b := bins(t)
	rt := socketDir(t)
	sock := filepath.Join(rt, "llm-agent", "agent.sock")
	files := listenAsSystemd(t, unitSpec{listen: []string{sock, sock + ".admin"}, socketMode: 0o600, dirMode: 0o700})

	t.Run("-D refuses, naming the variables", func(t *testing.T) {
		r := agenttest.RunCmd(t, underStaleShell(t, files, b.Agent, "-D", "-a", sock), "", time.Minute)
		if r.Code != 1 || strings.Count(r.Stderr, "\n") != 1 || !strings.Contains(r.Stderr, "names another process") || !strings.Contains(r.Stderr, "unset") {
			t.Fatalf("exit %d stdout %q stderr %q; want one refusal saying to unset them", r.Code, r.Stdout, r.Stderr)
		}
		if r.Stdout != "" {
			t.Errorf("printed %q before refusing", r.Stdout)
		}
	})

	t.Run("a command does not inherit them", func(t *testing.T) {
		r := agenttest.RunCmd(t, underStaleShell(t, files, b.Agent, "--ssh-agent", "none", "/usr/bin/env"), "", time.Minute)
		if r.Code != 0 {
			t.Fatalf("exit %d stderr %q", r.Code, r.Stderr)
		}
		if m := regexp.MustCompile(`(?m)^LISTEN_\w+=.*$`).FindAllString(r.Stdout, -1); len(m) > 0 {
			t.Errorf("the command got %q", m)
		}
		if !strings.Contains(r.Stdout, "LLM_AUTH_SOCK=") {
			t.Errorf("the command's environment lacks LLM_AUTH_SOCK: %q", r.Stdout)
		}
	})

	t.Run("the daemon and its children do not inherit them", func(t *testing.T) {
		r := agenttest.RunCmd(t, underStaleShell(t, files, b.Agent, "-s"), "", time.Minute)
		m := regexp.MustCompile(`LLM_AGENT_PID=(\d+);`).FindStringSubmatch(r.Stdout)
		if r.Code != 0 || m == nil {
			t.Fatalf("exit %d stdout %q stderr %q", r.Code, r.Stdout, r.Stderr)
		}
		pid, _ := strconv.Atoi(m[1])
		t.Cleanup(func() { syscall.Kill(pid, syscall.SIGTERM) })
		if strings.Contains(r.Stdout, sock) {
			t.Errorf("the daemon serves on the stale sockets' path: %q", r.Stdout)
		}
		for _, kv := range environOf(t, pid) {
			if strings.HasPrefix(kv, "LISTEN_") {
				t.Errorf("the daemon has %s", kv)
			}
		}
		noListenEnvInChildren(t, pid)
	})
}

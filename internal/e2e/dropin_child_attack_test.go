package e2e

// Attacks on the private SSH-key ssh-agent that llm-agent starts: PATH
// squatting that makes it start llm-agent again (copies, wrappers), a
// child that names someone else's socket, a child that dies, and other
// users' reach into the child's socket and /proc.

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/internal/sshtest"
)

// startGroup starts cmd in a process group of its own, and kills the whole
// group at cleanup: a test of a start loop must not leave one running.
// Its standard error goes to the file it returns the path of (a file, not
// a pipe, so that it is complete once the process is gone).
func startGroup(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	stderr := filepath.Join(t.TempDir(), "stderr")
	f, err := os.Create(stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd.Stderr = f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	t.Cleanup(func() {
		for i := 0; i < 5; i++ {
			syscall.Kill(-pgid, syscall.SIGKILL)
			time.Sleep(20 * time.Millisecond)
		}
		cmd.Wait()
	})
	return stderr
}

// groupSize counts the processes in process group pgid.
func groupSize(pgid int) int {
	n := 0
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) {
			n++
		}
	}
	return n
}

// agentChildren returns the pids of the processes started by pid (by any
// of its threads), once more than one has had a second to become one: the
// shell that starts the SSH-key child's watcher (keyschild.go) is a child
// for the moment it takes to put the watcher in the background.
func agentChildren(pid int) []string {
	waitFor(time.Second, func() bool { return len(childrenOf(pid)) <= 1 })
	return childrenOf(pid)
}

func childrenOf(pid int) []string {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var kids []string
	for _, task := range tasks {
		b, _ := os.ReadFile(task)
		kids = append(kids, strings.Fields(string(b))...)
	}
	return kids
}

// TestSSHAgentChildSquat: whatever is named ssh-agent early in PATH, or
// whatever the child prints, llm-agent either runs OpenSSH's ssh-agent as
// its one child or fails at start with one line, and never starts itself
// without end nor relays to a socket its child does not serve.
func TestSSHAgentChildSquat(t *testing.T) {
	requireTools(t, "apt-get install -y openssh-client", "ssh-agent")
	stock, err := exec.LookPath("ssh-agent")
	if err != nil {
		t.Fatal(err)
	}
	copyAgent := func(t *testing.T, dir string) {
		b, err := os.ReadFile(bins.Agent)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "ssh-agent"), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script := func(t *testing.T, dir, body string) string {
		p := filepath.Join(dir, "ssh-agent")
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// otherAgent is a real ssh-agent of another user, on a socket anyone
	// may connect to, as a hostile user would offer it.
	otherAgent := func(t *testing.T) string {
		u := sshtest.NewUser(t, "squat")
		sock := filepath.Join(u.Home, "agent.sock")
		os.Chmod(u.Home, 0o755)
		sshtest.StartSSHAgent(t, sock, u.Cred(), nil)
		os.Chmod(sock, 0o666)
		return sock
	}
	for _, c := range []struct {
		name string
		// setup fills d1 and d2 (PATH's first two directories) and returns
		// extra arguments and a socket that must outlive the attempt.
		setup func(t *testing.T, d1, d2 string) ([]string, string)
		fail  string // "": serves with OpenSSH's ssh-agent as its child
	}{
		{"two copies of llm-agent first in PATH", func(t *testing.T, d1, d2 string) ([]string, string) {
			copyAgent(t, d1)
			copyAgent(t, d2)
			return nil, ""
		}, ""},
		{"wrappers of llm-agent first in PATH", func(t *testing.T, d1, d2 string) ([]string, string) {
			for _, d := range []string{d1, d2} {
				script(t, d, "#!/bin/bash\nexec -a ssh-agent "+bins.Agent+" \"$@\"\n")
			}
			return nil, ""
		}, "--ssh-agent"},
		{"child names another user's agent", func(t *testing.T, d1, d2 string) ([]string, string) {
			sock := otherAgent(t)
			p := script(t, d1, "#!/bin/sh\necho 'SSH_AUTH_SOCK="+sock+"; export SSH_AUTH_SOCK;'\nexec sleep 60\n")
			return []string{"--ssh-agent", p}, sock
		}, "not the child"},
		{"child names the owner's own agent", func(t *testing.T, d1, d2 string) ([]string, string) {
			sock := filepath.Join(t.TempDir(), "own.sock")
			sshtest.StartSSHAgent(t, sock, nil, nil)
			p := script(t, d1, "#!/bin/sh\necho 'SSH_AUTH_SOCK="+sock+"; export SSH_AUTH_SOCK;'\nexec sleep 60\n")
			return []string{"--ssh-agent", p}, sock
		}, "not the child"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d1, d2 := t.TempDir(), t.TempDir()
			args, keep := c.setup(t, d1, d2)
			sock := filepath.Join(t.TempDir(), "agent.sock")
			cmd := exec.Command(bins.Agent, append([]string{"-D", "-a", sock}, args...)...)
			cmd.Env = append(cleanEnv(), "PATH="+d1+":"+d2+":/usr/bin:/bin", "TMPDIR="+t.TempDir())
			errFile := startGroup(t, cmd)
			stderr := func() string { b, _ := os.ReadFile(errFile); return string(b) }
			exited := make(chan error, 1)
			go func() { _, err := cmd.Process.Wait(); exited <- err }()
			most := 0
			deadline := time.After(15 * time.Second)
		wait:
			for {
				most = max(most, groupSize(cmd.Process.Pid))
				select {
				case <-exited:
					break wait
				case <-deadline:
					break wait
				case <-time.After(20 * time.Millisecond):
					if c.fail == "" && answers(sock) {
						break wait
					}
				}
			}
			if most > 4 {
				t.Errorf("%d processes in the agent's group at once: it starts itself again", most)
			}
			if keep != "" {
				if _, err := os.Stat(keep); err != nil {
					t.Errorf("the socket the child named is gone: %v", err)
				}
			}
			if c.fail != "" {
				if cmd.ProcessState == nil && !processGone(cmd.Process.Pid) {
					t.Fatalf("llm-agent still runs; want it to fail at start (stderr %q)", stderr())
				}
				lines := strings.Split(strings.TrimSpace(stderr()), "\n")
				if len(lines) != 1 || !strings.Contains(lines[0], c.fail) {
					t.Errorf("stderr %q, want one line saying %q", stderr(), c.fail)
				}
				return
			}
			if !answers(sock) {
				t.Fatalf("llm-agent does not serve (stderr %q)", stderr())
			}
			kids := agentChildren(cmd.Process.Pid)
			if len(kids) != 1 {
				t.Fatalf("children of the agent: %q, want one", kids)
			}
			if exe, _ := os.Readlink("/proc/" + kids[0] + "/exe"); exe != stock {
				t.Errorf("the SSH-key child runs %s, want %s", exe, stock)
			}
		})
	}
}

// TestSSHAgentChildPrivate: another user on the laptop reaches neither the
// private ssh-agent's socket (TMPDIR world-writable, as /tmp is) nor its
// environment; its command line holds nothing but its options; when it is
// killed, the audit log says so, credentials are still served and SSH-key
// requests fail.
func TestSSHAgentChildPrivate(t *testing.T) {
	requireTools(t, "apt-get install -y openssh-client", "ssh-agent", "ssh-add")
	stock, err := exec.LookPath("ssh-agent")
	if err != nil {
		t.Fatal(err)
	}
	u := sshtest.NewUser(t, "peek")
	tmp := t.TempDir()
	os.Chmod(tmp, 0o1777)
	sock := filepath.Join(t.TempDir(), "agent.sock")
	auditLog := filepath.Join(t.TempDir(), "audit.log")
	cmd := exec.Command(bins.Agent, "-D", "-a", sock, "--audit-log", auditLog)
	cmd.Env = append(cleanEnv(), "TMPDIR="+tmp)
	startGroup(t, cmd)
	if _, ok := waitFor(10*time.Second, func() bool { return answers(sock) }); !ok {
		t.Fatal("llm-agent does not answer")
	}
	kids := agentChildren(cmd.Process.Pid)
	if len(kids) != 1 {
		t.Fatalf("children of the agent: %q, want one", kids)
	}
	child := kids[0]
	argv, _ := os.ReadFile("/proc/" + child + "/cmdline")
	if got := strings.Split(strings.TrimRight(string(argv), "\x00"), "\x00"); len(got) != 3 || got[1] != "-D" || got[2] != "-s" {
		t.Errorf("the child's command line %q, want %s -D -s", got, stock)
	}
	made := childSockets(tmp, child)
	if len(made) != 1 {
		t.Fatalf("the child's sockets under TMPDIR (or /tmp): %q, want one", made)
	}
	if fi, err := os.Stat(filepath.Dir(made[0])); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("the child's socket directory: %v, %v; want mode 0700", fi.Mode(), err)
	}
	asOther := func(env []string, name string, args ...string) error {
		c := exec.Command(name, args...)
		c.Env, c.Dir = env, "/"
		c.SysProcAttr = &syscall.SysProcAttr{Credential: u.Cred()}
		return c.Run()
	}
	if err := asOther([]string{"SSH_AUTH_SOCK=" + made[0]}, "ssh-add", "-l"); exitCode(err) != 2 {
		t.Errorf("another user's ssh-add -l on the child's socket: %v, want exit 2 (cannot connect)", err)
	}
	for _, pid := range []string{child, strconv.Itoa(cmd.Process.Pid)} {
		if err := asOther(nil, "cat", "/proc/"+pid+"/environ"); err == nil {
			t.Errorf("another user reads /proc/%s/environ", pid)
		}
	}

	syscall.Kill(mustAtoi(t, child), syscall.SIGKILL)
	if _, ok := waitFor(5*time.Second, func() bool {
		b, _ := os.ReadFile(auditLog)
		return strings.Contains(string(b), `"op":"ssh-agent"`)
	}); !ok {
		b, _ := os.ReadFile(auditLog)
		t.Errorf("no audit record of the child's death:\n%s", b)
	}
	// ssh-agent removes its socket and directory only on SIGTERM: after a
	// SIGKILL, llm-agent removes them.
	if _, ok := waitFor(5*time.Second, func() bool {
		_, err := os.Lstat(filepath.Dir(made[0]))
		return errors.Is(err, fs.ErrNotExist)
	}); !ok {
		t.Errorf("the killed child's socket directory %s is left behind", filepath.Dir(made[0]))
	}
	env := append(cleanEnv(), "LLM_AUTH_SOCK="+sock, "SSH_AUTH_SOCK="+sock)
	st := exec.Command(bins.Client, "status")
	st.Env = env
	if out, err := st.CombinedOutput(); err != nil {
		t.Errorf("llm-agent-client status after the child's death: %v\n%s", err, out)
	}
	add := exec.Command("ssh-add", "-l")
	add.Env = env
	if err := add.Run(); exitCode(err) != 1 {
		t.Errorf("ssh-add -l after the child's death: %v, want exit 1 (the agent refuses)", err)
	}
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

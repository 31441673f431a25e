package e2e

// Ports of OpenSSH's regress/agent*.sh to llm-agent, on the real binaries,
// and the daemon's ssh-agent(1)-like command line.

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/internal/sshtest"
)

// procState returns the state letter and session id of pid from
// /proc/PID/stat; err wraps os.ErrNotExist when there is no such process.
func procState(pid int) (state string, sid int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, err
	}
	// comm may hold spaces and parentheses: the fields start after the
	// last ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 4 {
		return "", 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	sid, _ = strconv.Atoi(f[3])
	return f[0], sid, nil
}

// processGone reports whether pid has exited. An exited daemon whose parent
// is gone may stay a zombie when PID 1 does not reap (as in containers); a
// zombie holds no memory, sockets or files, so it counts as gone (as in
// OpenSSH's agent-subprocess.sh).
func processGone(pid int) bool {
	state, _, err := procState(pid)
	if err != nil {
		return errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH)
	}
	return state == "Z" || state == "X"
}

// waitFor polls cond every 50 ms for at most limit and returns how long it
// took and whether it became true.
func waitFor(limit time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	for {
		if cond() {
			return time.Since(start), true
		}
		if time.Since(start) > limit {
			return time.Since(start), false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// answers reports whether something accepts connections on sock.
func answers(sock string) bool {
	c, err := dialUnix(sock)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// stopDaemonAtCleanup sends SIGTERM to a daemon the test started in the
// background, if it is still an llm-agent (the pid may have been reused).
func stopDaemonAtCleanup(t testing.TB, pid int) {
	t.Cleanup(func() {
		if processGone(pid) {
			return
		}
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) == "llm-agent" {
			syscall.Kill(pid, syscall.SIGTERM)
		}
	})
}

// fileHolds reports whether the file at path contains marker, without
// showing either.
func fileHolds(path, marker string) bool {
	b, _ := os.ReadFile(path)
	return strings.Contains(string(b), marker)
}

// envWith is cleanEnv plus kv.
func envWith(kv ...string) []string { return append(cleanEnv(), kv...) }

// TestRegressAgent ports regress/agent.sh: exit codes with no agent and an
// empty agent, adding, listing and removing credentials
// (llm-agent-client) and SSH keys (ssh-add), and SIGUSR1 dropping them all.
func TestRegressAgent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	genKeys(t, dir, "ed25519", "ecdsa")
	missing := filepath.Join(dir, "nonexistent")
	const to = 30 * time.Second

	t.Run("no_agent", func(t *testing.T) {
		t.Parallel()
		sshAgentSock := filepath.Join(t.TempDir(), "ssh-agent.sock")
		startSSHAgent(t, sshAgentSock)
		for _, c := range []struct {
			name string
			env  []string
		}{
			{"no variables", cleanEnv()},
			{"LLM_AUTH_SOCK names no socket", envWith("LLM_AUTH_SOCK=" + missing)},
			{"SSH_AUTH_SOCK names no socket", envWith("SSH_AUTH_SOCK=" + missing)},
			// The fallback to SSH_AUTH_SOCK is only for an llm-agent.
			{"SSH_AUTH_SOCK is a plain ssh-agent", envWith("SSH_AUTH_SOCK=" + sshAgentSock)},
		} {
			r, _ := runAs(t, nil, c.env, "", to, bins.Client, "list")
			if r.Code != 2 || strings.Count(r.Stderr, "\n") != 1 || !strings.HasPrefix(r.Stderr, "llm-agent-client: list:") {
				t.Errorf("%s: llm-agent-client list: exit %d (want 2), stderr %q (want one line)", c.name, r.Code, r.Stderr)
			}
		}
		if r, _ := runAs(t, nil, envWith("SSH_AUTH_SOCK="+missing), "", to, "ssh-add", "-l"); r.Code != 2 {
			t.Errorf("ssh-add -l with no agent: exit %d, want 2 (%q)", r.Code, r.Stderr)
		}
	})

	t.Run("agent", func(t *testing.T) {
		t.Parallel()
		a := StartAgent(t, AgentOptions{Audit: true})
		sshAdd := func(args ...string) Result {
			r, _ := runAs(t, nil, a.AdminEnv(), "", to, "ssh-add", args...)
			return r
		}
		if r := a.Client(t, "", "list"); r.Code != 1 || r.Stdout != "The agent holds no credentials.\n" {
			t.Errorf("list on an empty agent: exit %d (want 1), stdout %q", r.Code, r.Stdout)
		}
		if r := sshAdd("-l"); r.Code != 1 || !strings.Contains(r.Stdout, "The agent has no identities.") {
			t.Errorf("ssh-add -l on an empty agent: exit %d (want 1), stdout %q", r.Code, r.Stdout)
		}

		markers := map[string]string{"anthropic": "sk-ant-e2e-marker-5f1c", "openai": "sk-oai-e2e-marker-9a2d"}
		for p, m := range markers {
			if r := a.Client(t, m, "add", p); r.Code != 0 {
				t.Fatalf("add %s: exit %d, stderr %q", p, r.Code, r.Stderr)
			}
		}
		r := a.Client(t, "", "list")
		if r.Code != 0 || !strings.Contains(r.Stdout, "anthropic") || !strings.Contains(r.Stdout, "openai") {
			t.Errorf("list: exit %d, stdout %q; want both providers", r.Code, r.Stdout)
		}
		for p, m := range markers {
			if strings.Contains(r.Stdout+r.Stderr, m) {
				t.Errorf("list shows the %s secret (marker found)", p)
			}
		}
		// Credentials are not SSH keys.
		if r := sshAdd("-l"); r.Code != 1 {
			t.Errorf("ssh-add -l with only credentials: exit %d, want 1", r.Code)
		}
		if r := a.Client(t, "", "get", "anthropic"); r.Code != 0 || r.Stdout != markers["anthropic"] {
			t.Errorf("get anthropic: exit %d, marker found: %v, stderr %q", r.Code, strings.Contains(r.Stdout, markers["anthropic"]), r.Stderr)
		}

		for _, k := range []string{"id_ed25519", "id_ecdsa"} {
			if r := sshAdd(filepath.Join(dir, k)); r.Code != 0 {
				t.Fatalf("ssh-add %s: exit %d, %q", k, r.Code, r.Stderr)
			}
		}
		if r := sshAdd("-l"); r.Code != 0 || strings.Count(r.Stdout, "\n") != 2 {
			t.Errorf("ssh-add -l: exit %d, stdout %q; want two keys", r.Code, r.Stdout)
		}
		if r := sshAdd("-L"); r.Code != 0 || !strings.Contains(r.Stdout, "ssh-ed25519 AAAA") || !strings.Contains(r.Stdout, "ecdsa-sha2-nistp256 AAAA") {
			t.Errorf("ssh-add -L: exit %d, stdout %q", r.Code, r.Stdout)
		}
		if r := a.Client(t, "", "list"); r.Code != 0 || strings.Count(r.Stdout, "\n") != 2 {
			t.Errorf("list after ssh-add: exit %d, stdout %q; want the two credentials only", r.Code, r.Stdout)
		}

		if r := a.Client(t, "", "remove", "openai"); r.Code != 0 {
			t.Errorf("remove openai: exit %d, %q", r.Code, r.Stderr)
		}
		if r := a.Client(t, "", "remove", "openai"); r.Code != 1 {
			t.Errorf("remove openai twice: exit %d, want 1", r.Code)
		}
		if r := a.Client(t, "", "get", "openai"); r.Code != 1 || r.Stdout != "" {
			t.Errorf("get removed openai: exit %d (want 1), stdout empty: %v", r.Code, r.Stdout == "")
		}
		if r := a.Client(t, "", "list"); r.Code != 0 || strings.Contains(r.Stdout, "openai") || !strings.Contains(r.Stdout, "anthropic") {
			t.Errorf("list after remove: exit %d, stdout %q", r.Code, r.Stdout)
		}
		if r := sshAdd("-d", filepath.Join(dir, "id_ecdsa.pub")); r.Code != 0 {
			t.Errorf("ssh-add -d: exit %d, %q", r.Code, r.Stderr)
		}
		if r := sshAdd("-l"); r.Code != 0 || strings.Count(r.Stdout, "\n") != 1 {
			t.Errorf("ssh-add -l after -d: exit %d, stdout %q", r.Code, r.Stdout)
		}

		// SIGUSR1 drops every credential and key; the agent goes on.
		if err := syscall.Kill(a.PID, syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		took, ok := waitFor(5*time.Second, func() bool {
			return a.Client(t, "", "list").Code == 1 && sshAdd("-l").Code == 1
		})
		if !ok {
			t.Errorf("credentials or keys still listed %v after SIGUSR1", took)
		} else {
			t.Logf("SIGUSR1: credentials and keys gone after %v", took.Round(time.Millisecond))
		}
		if r := a.Client(t, "", "status"); r.Code != 0 || !strings.Contains(r.Stdout, "credentials: 0") {
			t.Errorf("status after SIGUSR1: exit %d, stdout %q", r.Code, r.Stdout)
		}
		if !waitAudit(t, a.Audit, func(e auditEvent) bool {
			return e.Op == "remove-all" && e.Decision == "allow" && strings.Contains(e.Reason, "signal")
		}) {
			t.Errorf("no remove-all audit record for SIGUSR1")
		}

		// The ssh-add -D and remove --all paths, on a refilled agent.
		a.Client(t, markers["openai"], "add", "openai")
		sshAdd(filepath.Join(dir, "id_ed25519"))
		if r := a.Client(t, "", "remove", "--all"); r.Code != 0 {
			t.Errorf("remove --all: exit %d, %q", r.Code, r.Stderr)
		}
		if r := sshAdd("-D"); r.Code != 0 {
			t.Errorf("ssh-add -D: exit %d, %q", r.Code, r.Stderr)
		}
		if a.Client(t, "", "list").Code != 1 || sshAdd("-l").Code != 1 {
			t.Errorf("something is still listed after remove --all and ssh-add -D")
		}
		for p, m := range markers {
			if fileHolds(a.Audit, m) || fileHolds(a.Stderr, m) {
				t.Errorf("the %s secret is in the audit log or the agent's stderr (marker found)", p)
			}
		}
	})
}

// TestRegressAgentTimeout ports regress/agent-timeout.sh: what is added
// with a lifetime (per item, or the daemon's -t) is dropped when it ends.
func TestRegressAgentTimeout(t *testing.T) {
	t.Parallel()
	keyDir := t.TempDir()
	genKeys(t, keyDir, "ed25519")
	key := filepath.Join(keyDir, "id_ed25519")
	const limit = 6 * time.Second
	const to = 30 * time.Second

	credGone := func(t *testing.T, a *Agent, p string) {
		t.Helper()
		start := time.Now()
		_, ok := waitFor(limit, func() bool {
			r := a.Client(t, "", "list")
			return r.Code == 1 && !strings.Contains(r.Stdout, p)
		})
		if !ok {
			t.Errorf("credential %s still listed %v after it was added with a 3 s lifetime", p, limit)
		} else {
			t.Logf("credential %s vanished %v after add", p, time.Since(start).Round(10*time.Millisecond))
		}
		// list hides an expired credential at once; the reaper, once a
		// second, drops it and records the expiry.
		if !waitAudit(t, a.Audit, func(e auditEvent) bool {
			return e.Op == "expire" && e.Provider == p && e.Decision == "allow"
		}) {
			t.Errorf("no expire audit record for %s", p)
		}
	}
	keyGone := func(t *testing.T, a *Agent) {
		t.Helper()
		start := time.Now()
		_, ok := waitFor(limit, func() bool {
			r, _ := runAs(t, nil, a.Env(), "", to, "ssh-add", "-l")
			return r.Code == 1 && strings.Contains(r.Stdout, "The agent has no identities.")
		})
		if !ok {
			t.Errorf("SSH key still listed %v after it was added with a 3 s lifetime", limit)
		} else {
			t.Logf("SSH key vanished %v after ssh-add", time.Since(start).Round(10*time.Millisecond))
		}
	}

	t.Run("credential", func(t *testing.T) {
		t.Parallel()
		a := StartAgent(t, AgentOptions{Audit: true})
		if r := a.Client(t, "sk-e2e-timeout-marker", "add", "-t", "3", "anthropic"); r.Code != 0 {
			t.Fatalf("add -t 3: exit %d, %q", r.Code, r.Stderr)
		}
		if r := a.Client(t, "", "list"); r.Code != 0 || !strings.Contains(r.Stdout, "anthropic") || !strings.Contains(r.Stdout, "left") {
			t.Errorf("list right after add -t 3: exit %d, stdout %q", r.Code, r.Stdout)
		}
		credGone(t, a, "anthropic")
	})
	t.Run("ssh_key", func(t *testing.T) {
		t.Parallel()
		a := StartAgent(t, AgentOptions{})
		if r, _ := runAs(t, nil, a.Env(), "", to, "ssh-add", "-t", "3", key); r.Code != 0 {
			t.Fatalf("ssh-add -t 3: exit %d, %q", r.Code, r.Stderr)
		}
		if r, _ := runAs(t, nil, a.Env(), "", to, "ssh-add", "-l"); r.Code != 0 {
			t.Errorf("ssh-add -l right after ssh-add -t 3: exit %d, stdout %q", r.Code, r.Stdout)
		}
		keyGone(t, a)
	})
	t.Run("daemon_default", func(t *testing.T) {
		t.Parallel()
		a := StartAgent(t, AgentOptions{Audit: true, Args: []string{"-t", "3"}})
		if r := a.Client(t, "sk-e2e-timeout-marker", "add", "openai"); r.Code != 0 {
			t.Fatalf("add: exit %d, %q", r.Code, r.Stderr)
		}
		if r, _ := runAs(t, nil, a.Env(), "", to, "ssh-add", key); r.Code != 0 {
			t.Fatalf("ssh-add: exit %d, %q", r.Code, r.Stderr)
		}
		if r := a.Client(t, "", "list"); r.Code != 0 || !strings.Contains(r.Stdout, "left") {
			t.Errorf("list under llm-agent -t 3: exit %d, stdout %q; want a lifetime left", r.Code, r.Stdout)
		}
		// Same lifetime: one after the other costs no extra time.
		keyGone(t, a)
		credGone(t, a, "openai")
	})
}

// TestRegressGetpeereid ports regress/agent-getpeereid.sh: a client of
// another uid that can reach the socket is still refused; root is allowed.
func TestRegressGetpeereid(t *testing.T) {
	sshtest.RequireRoot(t)
	t.Parallel()
	const to = 30 * time.Second
	marker := "sk-e2e-peereid-marker-77"

	dir := publicDir(t, nil)
	a := StartAgent(t, AgentOptions{Dir: dir, Audit: true})
	// Take the file permissions out of the way, so that only the agent's
	// peer check stands between nobody and the agent.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(a.Sock, 0o777); err != nil {
		t.Fatal(err)
	}
	if r := a.Client(t, marker, "add", "anthropic"); r.Code != 0 {
		t.Fatalf("add as root: exit %d, %q", r.Code, r.Stderr)
	}

	// As root: allowed, as ssh-agent allows root.
	if r := a.Client(t, "", "list"); r.Code != 0 || !strings.Contains(r.Stdout, "anthropic") {
		t.Errorf("list as root: exit %d, stdout %q", r.Code, r.Stdout)
	}
	if r, _ := runAs(t, nil, a.Env(), "", to, "ssh-add", "-l"); r.Code != 1 || !strings.Contains(r.Stdout, "The agent has no identities.") {
		t.Errorf("ssh-add -l as root: exit %d (want 1), stdout %q", r.Code, r.Stdout)
	}

	// As nobody: the connection is accepted by the kernel, then closed by
	// the agent.
	env := a.Env("HOME=/nonexistent")
	for _, args := range [][]string{{"list"}, {"get", "anthropic"}, {"status"}} {
		r, _ := runAs(t, nobodyCred(), env, "", to, bins.Client, args...)
		if r.Code != 2 {
			t.Errorf("llm-agent-client %s as nobody: exit %d, want 2 (stderr %q)", args[0], r.Code, r.Stderr)
		}
		if strings.Contains(r.Stdout, "anthropic") || strings.Contains(r.Stdout, marker) {
			t.Errorf("llm-agent-client %s as nobody printed agent data (provider or marker found)", args[0])
		}
	}
	// ssh-add connects, writes its request and finds the connection closed:
	// it exits 1 ("communication with agent failed") or dies of SIGPIPE,
	// depending on who is first, exactly as against ssh-agent (see
	// TestRegressGetpeereidSSHAgent). Never 0.
	r, ws := runAs(t, nobodyCred(), env, "", to, "ssh-add", "-l")
	if !(r.Code == 1 || ws.Signaled() && ws.Signal() == syscall.SIGPIPE) {
		t.Errorf("ssh-add -l as nobody: exit %d (signal %v), want 1 or SIGPIPE; stdout %q stderr %q", r.Code, ws.Signal(), r.Stdout, r.Stderr)
	}
	t.Logf("ssh-add -l as nobody: exit %d, signaled %v, stderr %q", r.Code, ws.Signaled(), r.Stderr)

	var denied int
	for _, e := range readAudit(t, a.Audit) {
		if e.Peer != nil && e.Peer.UID == 65534 {
			if e.Decision != "deny" || e.Op != "connect" || !strings.Contains(e.Reason, "65534") {
				t.Errorf("audit record for uid 65534 is not a connect deny naming the uid: %+v", e)
				continue
			}
			denied++
		}
	}
	if denied != 4 {
		t.Errorf("%d deny records for uid 65534 in the audit log, want 4 (three llm-agent-client runs, one ssh-add)", denied)
	}
	if fileHolds(a.Audit, marker) {
		t.Errorf("the secret is in the audit log (marker found)")
	}
	// Still serving its owner.
	if r := a.Client(t, "", "get", "anthropic"); r.Code != 0 || r.Stdout != marker {
		t.Errorf("get as root after the refusals: exit %d, marker found: %v", r.Code, r.Stdout == marker)
	}
}

// TestRegressGetpeereidSSHAgent is the reference for the ssh-add exit
// status above: the same situation against OpenSSH's ssh-agent.
func TestRegressGetpeereidSSHAgent(t *testing.T) {
	sshtest.RequireRoot(t)
	t.Parallel()
	dir := publicDir(t, nil)
	sock := filepath.Join(dir, "ssh-agent.sock")
	startSSHAgent(t, sock)
	os.Chmod(dir, 0o755)
	os.Chmod(sock, 0o777)
	r, ws := runAs(t, nobodyCred(), envWith("SSH_AUTH_SOCK="+sock, "HOME=/nonexistent"), "", 30*time.Second, "ssh-add", "-l")
	if !(r.Code == 1 || ws.Signaled() && ws.Signal() == syscall.SIGPIPE) {
		t.Errorf("ssh-add -l as nobody against ssh-agent: exit %d (signaled %v); this test assumed 1 or SIGPIPE", r.Code, ws.Signaled())
	}
	t.Logf("ssh-add -l as nobody against ssh-agent: exit %d, signaled %v, stderr %q", r.Code, ws.Signaled(), r.Stderr)
}

// TestRegressPtrace ports regress/agent-ptrace.sh: an agent running as a
// normal user cannot be read by another process of that same user: no
// ptrace attach, no /proc/PID/environ, no /proc/PID/mem.
func TestRegressPtrace(t *testing.T) {
	sshtest.RequireRoot(t)
	t.Parallel()
	u := sshtest.NewUser(t, "llme2e")
	dir := publicDir(t, u)
	a := StartAgent(t, AgentOptions{Dir: dir, Cred: u.Cred()})
	const to = 30 * time.Second
	env := envWith("HOME=" + dir)
	// The agent hardens itself before it serves its first request, but
	// after its socket answers (see TestRegressHardenedWhenListening): a
	// served request is the barrier.
	// As the agent's user: the client refuses a socket served by another
	// user, also when the client runs as root.
	if r, _ := runAs(t, u.Cred(), a.Env(), "", to, bins.Client, "status"); r.Code != 0 {
		t.Fatalf("status: exit %d, %q", r.Code, r.Stderr)
	}

	scope, err := os.ReadFile("/proc/sys/kernel/yama/ptrace_scope")
	yama := strings.TrimSpace(string(scope))
	if err != nil {
		yama = "absent"
	}
	// Yama does not govern /proc/PID/environ: refusing it proves
	// PR_SET_DUMPABLE=0 whatever this value is.
	t.Logf("kernel.yama.ptrace_scope: %s", yama)

	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", a.PID))
	if err != nil {
		t.Fatalf("/proc/%d/status: %v", a.PID, err)
	}
	if !strings.Contains(string(status), "Name:\tllm-agent\n") || !strings.Contains(string(status), fmt.Sprintf("Uid:\t%d\t%d\t", u.UID, u.UID)) {
		t.Errorf("/proc/%d/status does not show llm-agent running as uid %d:\n%s", a.PID, u.UID, status)
	}
	if limits, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", a.PID)); err != nil || !regexp.MustCompile(`(?m)^Max core file size\s+0\s+`).Match(limits) {
		t.Errorf("RLIMIT_CORE is not 0 in the agent (/proc/%d/limits: %v)", a.PID, err)
	}

	// A control process of the same user, not hardened: what the agent
	// refuses, it allows, so the refusals below are the agent's doing.
	ctl := exec.Command("sleep", "60")
	ctl.SysProcAttr = &syscall.SysProcAttr{Credential: u.Cred()}
	if err := ctl.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Process.Kill(); ctl.Wait() })

	open := func(pid int, file string) Result {
		r, _ := runAs(t, u.Cred(), env, "", to, "/bin/sh", "-c", `exec 3< "$1"`, "sh", fmt.Sprintf("/proc/%d/%s", pid, file))
		return r
	}
	for _, file := range []string{"environ", "mem"} {
		if r := open(ctl.Process.Pid, file); r.Code != 0 {
			t.Errorf("control: the user cannot open /proc/%d/%s of its own sleep: %q", ctl.Process.Pid, file, r.Stderr)
		}
		if r := open(a.PID, file); r.Code == 0 || !strings.Contains(r.Stderr, "Permission denied") {
			t.Errorf("the agent's user opened /proc/%d/%s of the agent (exit %d, stderr %q), want permission denied", a.PID, file, r.Code, r.Stderr)
		}
	}

	if _, err := exec.LookPath("gdb"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("gdb is not installed and CI=true")
		}
		t.Logf("SKIPPED part: gdb not installed, ptrace attach not tried")
		return
	}
	gdb := func(pid int) Result {
		r, _ := runAs(t, u.Cred(), env, "", to, "gdb", "-nx", "-batch", "-p", strconv.Itoa(pid))
		return r
	}
	if yama == "absent" || yama == "0" {
		if r := gdb(ctl.Process.Pid); strings.Contains(r.Stdout+r.Stderr, "ptrace: Operation not permitted") {
			t.Errorf("control: gdb cannot attach to the user's own sleep: %q", r.Stdout+r.Stderr)
		}
	}
	// The same patterns as agent-ptrace.sh looks for in gdb's output.
	refused := regexp.MustCompile(`ptrace: Operation not permitted\.|procfs:.*Permission denied\.|Unable to access task `)
	if r := gdb(a.PID); !refused.MatchString(r.Stdout + r.Stderr) {
		t.Errorf("gdb -p %d as the agent's user was not refused: exit %d, output %q", a.PID, r.Code, r.Stdout+r.Stderr)
	}
	if !answers(a.Sock) {
		t.Errorf("the agent stopped answering after the attach attempts")
	}
}

// TestRegressSubprocess ports regress/agent-subprocess.sh: llm-agent CMD
// runs CMD with the agent's variables, exits with CMD's status soon after
// it, and takes its daemon down.
func TestRegressSubprocess(t *testing.T) {
	t.Parallel()
	const to = 30 * time.Second

	t.Run("sleep", func(t *testing.T) {
		t.Parallel()
		tmp := t.TempDir()
		stamp := filepath.Join(tmp, "child-ended")
		script := fmt.Sprintf(`printf '%%s %%s\n' "$LLM_AUTH_SOCK" "$LLM_AGENT_PID"
%s status; echo "status-exit=$?"
sleep 1
date +%%s%%N > %s`, bins.Client, stamp)
		r, _ := runAs(t, nil, envWith("TMPDIR="+tmp), "", to, bins.Agent, "sh", "-c", script)
		ended := time.Now()
		if r.Code != 0 {
			t.Fatalf("llm-agent sh -c ...: exit %d, stderr %q", r.Code, r.Stderr)
		}
		lines := strings.Split(r.Stdout, "\n")
		var sock string
		var pid int
		if _, err := fmt.Sscanf(lines[0], "%s %d", &sock, &pid); err != nil {
			t.Fatalf("the child did not see LLM_AUTH_SOCK and LLM_AGENT_PID: %q", lines[0])
		}
		stopDaemonAtCleanup(t, pid)
		if !strings.Contains(r.Stdout, "\nagent: "+sock+" ") || !strings.Contains(r.Stdout, "status-exit=0\n") {
			t.Errorf("llm-agent-client status in the child failed:\n%s", r.Stdout)
		}
		if strings.Contains(r.Stdout, "export") || strings.Contains(r.Stdout, "echo Agent pid") {
			t.Errorf("llm-agent printed eval lines around the command's output:\n%s", r.Stdout)
		}
		b, err := os.ReadFile(stamp)
		if err != nil {
			t.Fatalf("the child did not finish: %v", err)
		}
		ns, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		lag := ended.Sub(time.Unix(0, ns))
		t.Logf("llm-agent exited %v after its child", lag.Round(time.Millisecond))
		if lag > 3*time.Second {
			t.Errorf("llm-agent exited %v after its child, want within 3 s", lag)
		}
		took, ok := waitFor(3*time.Second, func() bool { return processGone(pid) && !answers(sock) })
		if !ok {
			t.Errorf("the daemon (pid %d) still runs or answers on %s 3 s after llm-agent exited", pid, sock)
		} else {
			t.Logf("daemon gone %v after llm-agent exited", took.Round(time.Millisecond))
		}
		if _, err := os.Stat(filepath.Dir(sock)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the socket directory %s is still there (%v)", filepath.Dir(sock), err)
		}
	})

	t.Run("exit_status", func(t *testing.T) {
		t.Parallel()
		tmp := t.TempDir()
		// -s asks for Bourne output, which is moot with a command: the
		// command's output must pass through unchanged.
		r, _ := runAs(t, nil, envWith("TMPDIR="+tmp), "", to, bins.Agent, "-s", "sh", "-c", `echo "$LLM_AGENT_PID" >&2; echo hello; exit 3`)
		if r.Code != 3 {
			t.Errorf("llm-agent sh -c 'exit 3': exit %d, want 3", r.Code)
		}
		if r.Stdout != "hello\n" {
			t.Errorf("stdout %q, want exactly the child's %q", r.Stdout, "hello\n")
		}
		pid, err := strconv.Atoi(strings.TrimSpace(r.Stderr))
		if err != nil {
			t.Fatalf("child's stderr %q: %v", r.Stderr, err)
		}
		stopDaemonAtCleanup(t, pid)
		if _, ok := waitFor(3*time.Second, func() bool { return processGone(pid) }); !ok {
			t.Errorf("the daemon (pid %d) still runs 3 s after llm-agent exited", pid)
		}
		if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
			t.Errorf("left behind in TMPDIR: %v", ents)
		}
	})
}

// normEval makes ssh-agent's and llm-agent's eval output comparable: the
// variable names, socket paths and pids differ, the form must not.
func normEval(s string) string {
	s = strings.ReplaceAll(s, "SSH_", "LLM_")
	s = regexp.MustCompile(`/\S+/agent\.\d+`).ReplaceAllString(s, "SOCK")
	return regexp.MustCompile(`\d+`).ReplaceAllString(s, "N")
}

// TestDaemonEvalAndKill starts llm-agent in the background (-s, -c), checks
// its output against ssh-agent's form and the daemon's state (socket
// modes, own session, cwd /, stdio on /dev/null), then kills it with -k.
func TestDaemonEvalAndKill(t *testing.T) {
	t.Parallel()
	cases := []struct {
		flag  string
		lines []*regexp.Regexp
		kill  []string
	}{
		{"-s", []*regexp.Regexp{
			regexp.MustCompile(`^LLM_AUTH_SOCK=(/\S+); export LLM_AUTH_SOCK;$`),
			regexp.MustCompile(`^LLM_AGENT_PID=(\d+); export LLM_AGENT_PID;$`),
			regexp.MustCompile(`^echo Agent pid (\d+);$`),
		}, []string{"unset LLM_AUTH_SOCK;", "unset LLM_AGENT_PID;", "echo Agent pid %d killed;"}},
		{"-c", []*regexp.Regexp{
			regexp.MustCompile(`^setenv LLM_AUTH_SOCK (/\S+);$`),
			regexp.MustCompile(`^setenv LLM_AGENT_PID (\d+);$`),
			regexp.MustCompile(`^echo Agent pid (\d+);$`),
		}, []string{"unsetenv LLM_AUTH_SOCK;", "unsetenv LLM_AGENT_PID;", "echo Agent pid %d killed;"}},
	}
	for _, c := range cases {
		t.Run(c.flag, func(t *testing.T) {
			t.Parallel()
			const to = 30 * time.Second
			tmp := t.TempDir()

			// The reference: ssh-agent's own output, started and killed.
			ref, _ := runAs(t, nil, envWith("TMPDIR="+tmp), "", to, "ssh-agent", c.flag)
			refPID := regexp.MustCompile(`SSH_AGENT_PID[= ](\d+);`).FindStringSubmatch(ref.Stdout)
			if ref.Code != 0 || refPID == nil {
				t.Fatalf("ssh-agent %s: exit %d, stdout %q, stderr %q", c.flag, ref.Code, ref.Stdout, ref.Stderr)
			}
			refKill, _ := runAs(t, nil, envWith("SSH_AGENT_PID="+refPID[1]), "", to, "ssh-agent", c.flag, "-k")

			r, _ := runAs(t, nil, envWith("TMPDIR="+tmp), "", to, bins.Agent, c.flag)
			if r.Code != 0 {
				t.Fatalf("llm-agent %s: exit %d, stderr %q", c.flag, r.Code, r.Stderr)
			}
			lines := strings.Split(strings.TrimSuffix(r.Stdout, "\n"), "\n")
			if len(lines) != 4 || !strings.HasSuffix(r.Stdout, "\n") {
				t.Fatalf("llm-agent %s printed %q; want four lines", c.flag, r.Stdout)
			}
			// No SSH_AUTH_SOCK here, so llm-agent sets it to its use socket
			// on line 2, in ssh-agent's own form for it; the other three
			// lines are ssh-agent's.
			sshLine := lines[1]
			lines = append(lines[:1], lines[2:]...)
			eval3 := strings.Join(lines, "\n") + "\n"
			var m [3][]string
			for i, re := range c.lines {
				if m[i] = re.FindStringSubmatch(lines[i]); m[i] == nil {
					t.Fatalf("line %d %q does not match %s", i+1, lines[i], re)
				}
			}
			sock := m[0][1]
			pid, _ := strconv.Atoi(m[1][1])
			stopDaemonAtCleanup(t, pid)
			if m[2][1] != m[1][1] {
				t.Errorf("two pids: %s and %s", m[1][1], m[2][1])
			}
			if normEval(eval3) != normEval(ref.Stdout) {
				t.Errorf("not in ssh-agent's form:\n  ssh-agent: %q\n  llm-agent: %q", ref.Stdout, r.Stdout)
			}
			refSSH := strings.SplitN(ref.Stdout, "\n", 2)[0]
			if wantSSH := regexp.MustCompile(`/\S+/agent\.\d+`).ReplaceAllLiteralString(refSSH, sock); sshLine != wantSSH {
				t.Errorf("SSH_AUTH_SOCK line %q, want %q (ssh-agent's first line with our socket)", sshLine, wantSSH)
			}
			if r.Stderr != "" {
				t.Errorf("llm-agent %s wrote to stderr: %q", c.flag, r.Stderr)
			}
			if !regexp.MustCompile(`^` + regexp.QuoteMeta(tmp) + `/llm-[A-Za-z0-9]{10}/agent\.\d+$`).MatchString(sock) {
				t.Errorf("socket %s is not TMPDIR/llm-XXXXXXXXXX/agent.N", sock)
			}

			// The socket and its directory are private.
			if fi, err := os.Stat(filepath.Dir(sock)); err != nil || fi.Mode() != os.ModeDir|0o700 {
				t.Errorf("socket directory: %v, mode %v; want drwx------", err, fi.Mode())
			}
			if fi, err := os.Stat(sock); err != nil || fi.Mode() != os.ModeSocket|0o600 {
				t.Errorf("socket: %v, mode %v; want srw-------", err, fi.Mode())
			}
			// A daemon: its own session, cwd /, stdio on /dev/null.
			if _, sid, err := procState(pid); err != nil || sid != pid {
				t.Errorf("daemon pid %d: session %d (%v), want its own session", pid, sid, err)
			}
			if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); err != nil || cwd != "/" {
				t.Errorf("daemon cwd %q (%v), want /", cwd, err)
			}
			for fd := 0; fd <= 2; fd++ {
				if p, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, fd)); err != nil || p != "/dev/null" {
					t.Errorf("daemon fd %d is %q (%v), want /dev/null", fd, p, err)
				}
			}
			if st, _ := runAs(t, nil, envWith("LLM_AUTH_SOCK="+sock), "", to, bins.Client, "status"); st.Code != 0 {
				t.Errorf("status against the daemon: exit %d, %q", st.Code, st.Stderr)
			}

			// -k: the eval lines that undo it, then the daemon is gone with
			// its socket and directory.
			k, _ := runAs(t, nil, envWith("LLM_AGENT_PID="+strconv.Itoa(pid)), "", to, bins.Agent, c.flag, "-k")
			want := strings.Join(c.kill, "\n") + "\n"
			want = fmt.Sprintf(want, pid)
			if k.Code != 0 || k.Stdout != want {
				t.Errorf("llm-agent %s -k: exit %d, stdout %q, want %q (stderr %q)", c.flag, k.Code, k.Stdout, want, k.Stderr)
			}
			if normEval(k.Stdout) != normEval(refKill.Stdout) {
				t.Errorf("-k output not in ssh-agent's form:\n  ssh-agent: %q\n  llm-agent: %q", refKill.Stdout, k.Stdout)
			}
			took, ok := waitFor(5*time.Second, func() bool {
				_, err := os.Stat(filepath.Dir(sock))
				return processGone(pid) && errors.Is(err, os.ErrNotExist)
			})
			if !ok {
				_, err := os.Lstat(sock)
				t.Errorf("after -k: daemon gone %v, socket stat %v, after %v", processGone(pid), err, took)
			} else {
				t.Logf("daemon and socket directory gone %v after -k", took.Round(time.Millisecond))
			}
		})
	}
}

// TestDaemonKillWithoutPID: -k needs LLM_AGENT_PID, as ssh-agent -k needs
// SSH_AGENT_PID; the error is one line.
func TestDaemonKillWithoutPID(t *testing.T) {
	t.Parallel()
	for _, env := range [][]string{cleanEnv(), envWith("LLM_AGENT_PID=not-a-pid")} {
		r, _ := runAs(t, nil, env, "", 30*time.Second, bins.Agent, "-k")
		if r.Code != 1 || r.Stdout != "" || strings.Count(r.Stderr, "\n") != 1 || !strings.HasPrefix(r.Stderr, "llm-agent: ") {
			t.Errorf("llm-agent -k with env %v: exit %d (want 1), stdout %q, stderr %q (want one line)",
				env[len(env)-1], r.Code, r.Stdout, r.Stderr)
		}
	}
	ref, _ := runAs(t, nil, cleanEnv(), "", 30*time.Second, "ssh-agent", "-k")
	t.Logf("for reference, ssh-agent -k without SSH_AGENT_PID: exit %d, stderr %q", ref.Code, ref.Stderr)
}

// TestDaemonBindAddress covers -a: unsafe directories are refused, a stale
// socket is replaced, a live agent's socket is not.
func TestDaemonBindAddress(t *testing.T) {
	t.Parallel()
	// refused runs llm-agent -D -a path, which must exit 1 at once.
	refused := func(t *testing.T, path, want string) {
		t.Helper()
		r, _ := runAs(t, nil, cleanEnv(), "", 10*time.Second, bins.Agent, "-D", "-a", path)
		if r.Code != 1 || !strings.Contains(r.Stderr, want) || strings.Count(r.Stderr, "\n") != 1 {
			t.Errorf("llm-agent -D -a %s: exit %d (want 1), stderr %q (want one line with %q)", path, r.Code, r.Stderr, want)
		}
	}

	for _, mode := range []os.FileMode{0o770, 0o730, 0o757, 0o777} {
		t.Run(fmt.Sprintf("dir_%o", mode), func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "d")
			os.Mkdir(dir, 0o700)
			os.Chmod(dir, mode) // not through umask
			sock := filepath.Join(dir, "agent.sock")
			refused(t, sock, "writable by group or others")
			if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a socket was created in the unsafe directory (%v)", err)
			}
		})
	}

	t.Run("stale_socket_closed_listener", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		sock := filepath.Join(dir, "agent.sock")
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		l.SetUnlinkOnClose(false)
		l.Close()
		if _, err := os.Lstat(sock); err != nil || answers(sock) {
			t.Fatalf("no stale socket to test with: %v, answers %v", err, answers(sock))
		}
		a := StartAgent(t, AgentOptions{Dir: dir})
		if r := a.Client(t, "", "status"); r.Code != 0 {
			t.Errorf("status on the agent that replaced a stale socket: exit %d, %q", r.Code, r.Stderr)
		}
		if fi, err := os.Stat(sock); err != nil || fi.Mode() != os.ModeSocket|0o600 {
			t.Errorf("socket: %v, mode %v; want srw-------", err, fi.Mode())
		}
	})

	t.Run("stale_socket_kill9", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		a := StartAgent(t, AgentOptions{Dir: dir})
		a.Kill()
		if _, err := os.Lstat(a.Sock); err != nil || answers(a.Sock) {
			t.Fatalf("kill -9 left no stale socket: %v, answers %v", err, answers(a.Sock))
		}
		b := StartAgent(t, AgentOptions{Dir: dir})
		if r := b.Client(t, "", "status"); r.Code != 0 {
			t.Errorf("status on the agent that replaced a killed one's socket: exit %d, %q", r.Code, r.Stderr)
		}
	})

	t.Run("agent_listening", func(t *testing.T) {
		t.Parallel()
		a := StartAgent(t, AgentOptions{})
		if r := a.Client(t, "sk-e2e-bind-marker", "add", "anthropic"); r.Code != 0 {
			t.Fatalf("add: exit %d", r.Code)
		}
		refused(t, a.Sock, "already listening")
		// The refused agent neither took nor removed the socket.
		if r := a.Client(t, "", "list"); r.Code != 0 || !strings.Contains(r.Stdout, "anthropic") {
			t.Errorf("the first agent lost its socket: list exit %d, stdout %q", r.Code, r.Stdout)
		}
	})

	t.Run("not_a_socket", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "file")
		os.WriteFile(path, []byte("keep me"), 0o600)
		refused(t, path, "not a socket")
		if b, _ := os.ReadFile(path); string(b) != "keep me" {
			t.Errorf("the file at -a was changed")
		}
	})
}

// TestRegressHardenedWhenListening: by the time llm-agent -D accepts
// connections on its socket, it must already be out of reach of its own
// user (ssh-agent disables tracing first thing in main). The agent's
// stdout is a pipe filled beforehand, so the agent blocks printing its eval
// lines, after it has bound the socket: at that point, another process of
// the same user must not open /proc/PID/environ.
func TestRegressHardenedWhenListening(t *testing.T) {
	sshtest.RequireRoot(t)
	t.Parallel()
	u := sshtest.NewUser(t, "llme2e")
	dir := publicDir(t, u)
	sock := filepath.Join(dir, "agent.sock")

	// Pipe and CloseOnExec under ForkLock, as os.Pipe does where there is
	// no pipe2 (darwin, where this package must still vet).
	var fds [2]int
	syscall.ForkLock.RLock()
	err := syscall.Pipe(fds[:])
	if err == nil {
		syscall.CloseOnExec(fds[0])
		syscall.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		t.Fatal(err)
	}
	r, w := os.NewFile(uintptr(fds[0]), "pipe-r"), os.NewFile(uintptr(fds[1]), "pipe-w")
	defer r.Close()
	syscall.SetNonblock(fds[1], true)
	fill := make([]byte, 4096)
	for {
		if _, err := syscall.Write(fds[1], fill); err != nil {
			break // EAGAIN: full
		}
	}
	syscall.SetNonblock(fds[1], false)

	cmd := exec.Command(bins.Agent, "-D", "-a", sock)
	cmd.Env = cleanEnv()
	cmd.Stdout = w
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: u.Cred()}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	defer func() {
		cmd.Process.Kill()
		go io.Copy(io.Discard, r)
		cmd.Wait()
	}()
	if _, ok := waitFor(5*time.Second, func() bool { return answers(sock) }); !ok {
		t.Fatalf("llm-agent does not answer on %s", sock)
	}
	res, _ := runAs(t, u.Cred(), envWith("HOME="+dir), "", 30*time.Second, "/bin/sh", "-c", `exec 3< "$1"`, "sh",
		fmt.Sprintf("/proc/%d/environ", cmd.Process.Pid))
	if res.Code == 0 {
		t.Errorf("the agent accepts connections on its socket while its own user can still read /proc/%d/environ "+
			"(it is not yet non-dumpable: memsafe.Harden runs after the socket is bound and the eval lines are printed)", cmd.Process.Pid)
	}
}

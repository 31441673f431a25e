package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/internal/sshtest"
)

// The test kit: the one way each to need root, make a user, run a command
// as another uid, start OpenSSH's ssh-agent and read the audit log. Tests
// that need root call sshtest.RequireRoot (under CI=true it fails, never
// skips); a throwaway user is sshtest.NewUser, whose Cred runs commands as
// it.

// randHex returns n random bytes in hex.
func randHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// nobodyCred runs a command as nobody/nogroup (65534), the unprivileged
// user of OpenSSH's agent-getpeereid.sh.
func nobodyCred() *syscall.Credential {
	return &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}
}

// publicDir returns a fresh directory that other users can reach, mode
// 0700 and owned by owner (root when nil); see sshtest.PublicDir.
func publicDir(t testing.TB, owner *sshtest.User) string {
	t.Helper()
	return sshtest.PublicDir(t, 0o700, owner)
}

// errTooLong marks a command that outlived its time limit and was killed.
var errTooLong = errors.New("killed")

// runAs runs a command as cred (nil: as the test) with env and stdin, at
// most timeout long, and returns its result and wait status (to tell a
// signal from an exit code). A command that cannot start fails t, one
// that runs too long is killed and marks t failed.
func runAs(t testing.TB, cred *syscall.Credential, env []string, stdin string, timeout time.Duration, name string, args ...string) (Result, syscall.WaitStatus) {
	t.Helper()
	r, ws, _, err := tryRunAs(cred, env, stdin, timeout, name, args...)
	switch {
	case errors.Is(err, errTooLong):
		t.Error(err)
	case err != nil:
		t.Fatal(err)
	}
	return r, ws
}

// tryRunAs is runAs for goroutines other than the test's: it reports a
// command that cannot start or outlives timeout as an error, and also says
// how long the command took. WaitDelay keeps a daemon that inherited the
// output pipes from holding the test up.
func tryRunAs(cred *syscall.Credential, env []string, stdin string, timeout time.Duration, name string, args ...string) (Result, syscall.WaitStatus, time.Duration, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Dir = "/"
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 2 * time.Second
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Result{}, 0, 0, fmt.Errorf("starting %s: %w", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-done
		err = fmt.Errorf("%s %q ran longer than %v: %w", name, args, timeout, errTooLong)
	}
	took := time.Since(start)
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	return Result{Code: cmd.ProcessState.ExitCode(), Stdout: out.String(), Stderr: errb.String()}, ws, took, err
}

// bashAs runs a bash script as u (with none of root's groups, as a login of
// u would be) and returns its stdout. A script that fails is only logged:
// the caller judges what it printed.
func bashAs(t testing.TB, u *sshtest.User, script string) string {
	t.Helper()
	cmd := exec.Command("setpriv", "--reuid", strconv.Itoa(u.UID), "--regid", strconv.Itoa(u.GID), "--clear-groups", "bash", "-c", script)
	cmd.Dir = "/"
	out, err := cmd.Output()
	if err != nil {
		t.Logf("%s: %v", u.Name, err)
	}
	return string(out)
}

// startSSHAgent runs OpenSSH's ssh-agent on sock with a clean environment
// plus env, and returns its pid; see sshtest.StartSSHAgent.
func startSSHAgent(t testing.TB, sock string, env ...string) int {
	t.Helper()
	return sshtest.StartSSHAgent(t, sock, nil, envWith(env...))
}

// liveSSHAgent runs a real, empty ssh-agent (the user's own agent, beside
// llm-agent) on a fresh socket and returns the socket.
func liveSSHAgent(t testing.TB) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "ssh-agent.sock")
	startSSHAgent(t, sock)
	return sock
}

// auditEvent is the part of an audit record the tests look at.
type auditEvent struct {
	Op        string   `json:"op"`
	Provider  string   `json:"provider"`
	Decision  string   `json:"decision"`
	Reason    string   `json:"reason"`
	Via       string   `json:"via"`
	ViaReason string   `json:"via_reason"`
	Forwarded bool     `json:"forwarded"`
	Hops      []string `json:"hops"`
	Peer      *struct {
		PID int    `json:"pid"`
		UID uint32 `json:"uid"`
		Exe string `json:"exe"`
	} `json:"peer"`
	Remote *struct {
		PID      int    `json:"pid"`
		Exe      string `json:"exe"`
		Hostname string `json:"hostname"`
	} `json:"remote_reported"`
	Relay *struct {
		Model        string `json:"model"`
		Status       int    `json:"status"`
		DurationMS   int64  `json:"duration_ms"`
		UsageKnown   bool   `json:"usage_known"`
		InputTokens  uint64 `json:"input_tokens"`
		OutputTokens uint64 `json:"output_tokens"`
		Method       string `json:"method"`
		Path         string `json:"path"`
	} `json:"relay"`
}

// readAudit reads every record of the audit log at path; a line that is
// not JSON fails t (a half-written line too: the agent writes whole lines).
func readAudit(t testing.TB, path string) []auditEvent {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading the audit log: %v", err)
	}
	var evs []auditEvent
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e auditEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Errorf("audit line is not JSON: %v", err)
			continue
		}
		evs = append(evs, e)
	}
	return evs
}

// waitAudit waits up to 2 s for an audit record matching ok: the agent may
// write a record just after its reply (an allowed get) or after the
// effect the test saw (SIGUSR1).
func waitAudit(t testing.TB, path string, ok func(auditEvent) bool) bool {
	t.Helper()
	_, found := waitFor(2*time.Second, func() bool {
		for _, e := range readAudit(t, path) {
			if ok(e) {
				return true
			}
		}
		return false
	})
	return found
}

// lockedBuffer collects a running process's output so that a test may read
// it before the process exits (a plain bytes.Buffer would race).
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// requireRoot skips a test that needs root (second users, chown, other
// uids), loudly; under CI=true a missing root is a failure, not a skip.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s needs root, and CI=true: run the e2e tests as root", t.Name())
	}
	t.Skipf("SKIPPED: %s needs root (it creates users or runs commands as other uids)", t.Name())
}

// testUser is a throwaway Linux user created for one test.
type testUser struct {
	Name     string
	UID, GID uint32
}

// Cred returns credentials that run a command as the user, without any of
// root's supplementary groups.
func (u *testUser) Cred() *syscall.Credential {
	return &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: []uint32{}}
}

// newTestUser creates a system user with its own group and no home, and
// removes it at cleanup. useradd takes a lock on /etc/passwd, so a
// concurrent useradd elsewhere makes it fail: retry for a while.
func newTestUser(t testing.TB) *testUser {
	t.Helper()
	requireRoot(t)
	var r [4]byte
	rand.Read(r[:])
	name := "llme2e" + hex.EncodeToString(r[:])
	var out []byte
	var err error
	for try := 0; try < 50; try++ {
		out, err = exec.Command("useradd", "--system", "--user-group", "--no-create-home",
			"--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "lock") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("useradd %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		for try := 0; try < 50; try++ {
			out, err := exec.Command("userdel", name).CombinedOutput()
			if err == nil {
				return
			}
			if !strings.Contains(string(out), "lock") {
				t.Errorf("userdel %s: %v: %s", name, err, out)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("userdel %s: /etc/passwd stayed locked", name)
	})
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("looking up the new user %s: %v", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &testUser{Name: name, UID: uint32(uid), GID: uint32(gid)}
}

// nobodyCred runs a command as nobody/nogroup (65534), the unprivileged
// user of OpenSSH's agent-getpeereid.sh.
func nobodyCred() *syscall.Credential {
	return &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}
}

// publicDir returns a fresh directory directly under /tmp (so that every
// path component is traversable by other users), mode 0700 and owned by
// owner (root when nil). t.TempDir() does not do: its parent is 0700.
func publicDir(t testing.TB, owner *testUser) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "llm-e2e-pub-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if owner != nil {
		if err := os.Chown(dir, int(owner.UID), int(owner.GID)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// runAs runs a command as cred (nil: as the test) with env and stdin, at
// most timeout long, and returns its result and wait status (to tell a
// signal from an exit code).
func runAs(t testing.TB, cred *syscall.Credential, env []string, stdin string, timeout time.Duration, name string, args ...string) (Result, syscall.WaitStatus) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Dir = "/"
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	return runCmd(t, cmd, stdin, timeout)
}

// runCmd runs cmd with stdin, killing it after timeout (a test failure).
// WaitDelay keeps a daemon that inherited the output pipes from holding
// the test up.
func runCmd(t testing.TB, cmd *exec.Cmd, stdin string, timeout time.Duration) (Result, syscall.WaitStatus) {
	t.Helper()
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", cmd.Path, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-done
		t.Errorf("%s %q ran longer than %v; killed", cmd.Path, cmd.Args[1:], timeout)
	}
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	return Result{Code: cmd.ProcessState.ExitCode(), Stdout: out.String(), Stderr: errb.String()}, ws
}

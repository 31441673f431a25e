package sshtest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// userNameRE is a portable Unix user name prefix (shadow's useradd is
// stricter than POSIX by default).
var userNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]*$`)

const (
	maxPrefixLen = 20 // leaves room for the suffix under useradd's 32
	// userdelTimeout bounds retries while killed processes are reaped or
	// /etc/passwd is locked by a concurrent useradd/userdel.
	userdelTimeout = 15 * time.Second
	useraddTimeout = 15 * time.Second
)

// GECOS marks users made by NewUser, so that leftovers of a test binary
// that was killed before its Cleanup can be found:
//
//	awk -F: '$5 == "sshtest temporary user"' /etc/passwd
const GECOS = "sshtest temporary user"

// User is a real Unix user created for one test.
type User struct {
	Name string
	UID  int
	GID  int
	Home string
	// KeyPath is the user's private ed25519 key, a root-owned 0600 file for
	// the test process. The same key is in Home/.ssh/id_ed25519 (owned by
	// the user) and authorized in Home/.ssh/authorized_keys.
	KeyPath   string
	PublicKey ssh.PublicKey

	mu      sync.Mutex
	trusted map[string]bool // "name addr" of servers already in ~/.ssh/config
}

// NewUser creates a real Unix user named prefix plus a random suffix
// (prefix default "lat"), with home directory, login shell /bin/bash and a
// fresh ed25519 key authorized for it. t.Cleanup kills every process of the
// user (pkill -KILL) and removes the user and its home (userdel -r).
func NewUser(t testing.TB, prefix string) *User {
	t.Helper()
	RequireRoot(t)
	if prefix == "" {
		prefix = "lat"
	}
	if !userNameRE.MatchString(prefix) || len(prefix) > maxPrefixLen {
		t.Fatalf("sshtest: bad user name prefix %q: want [a-z_][a-z0-9_-]*, at most %d characters", prefix, maxPrefixLen)
	}

	name, err := useradd(prefix)
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	u := &User{Name: name, trusted: make(map[string]bool)}
	// Register removal before anything else can fail.
	t.Cleanup(func() { u.remove(t) })

	pw, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("sshtest: look up new user: %v", err)
	}
	if u.UID, err = strconv.Atoi(pw.Uid); err != nil {
		t.Fatalf("sshtest: uid of %s: %v", name, err)
	}
	if u.GID, err = strconv.Atoi(pw.Gid); err != nil {
		t.Fatalf("sshtest: gid of %s: %v", name, err)
	}
	u.Home = pw.HomeDir

	priv, pub, err := newEd25519(name + "@sshtest")
	if err != nil {
		t.Fatalf("sshtest: key for %s: %v", name, err)
	}
	u.PublicKey = pub
	authorized := ssh.MarshalAuthorizedKey(pub)

	keyDir := t.TempDir()
	if err := checkConfigPath(keyDir); err != nil {
		t.Fatalf("sshtest: temp dir: %v", err)
	}
	u.KeyPath = filepath.Join(keyDir, "id_ed25519")
	if err := os.WriteFile(u.KeyPath, priv, 0o600); err != nil {
		t.Fatalf("sshtest: write key for %s: %v", name, err)
	}
	if err := os.WriteFile(u.KeyPath+".pub", authorized, 0o644); err != nil {
		t.Fatalf("sshtest: write public key for %s: %v", name, err)
	}

	// StrictModes: ~/.ssh and its files must belong to the user and not be
	// writable by others; ssh also refuses private keys readable by others.
	sshDir := filepath.Join(u.Home, ".ssh")
	if err := os.Mkdir(sshDir, 0o700); err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	if err := os.Lchown(sshDir, u.UID, u.GID); err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"authorized_keys", authorized, 0o600},
		{"id_ed25519", priv, 0o600},
		{"id_ed25519.pub", authorized, 0o644},
	} {
		if err := u.writeFile(filepath.Join(sshDir, f.name), f.data, f.mode, false); err != nil {
			t.Fatalf("sshtest: %v", err)
		}
	}
	t.Logf("sshtest: created user %s (uid %d)", u.Name, u.UID)
	return u
}

// Cred returns credentials that run a command as the user, without any of
// root's supplementary groups.
func (u *User) Cred() *syscall.Credential {
	return &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID), Groups: []uint32{}}
}

// useradd creates a user with a fresh name, retrying on name clashes and
// on /etc/passwd being locked by concurrent tests.
func useradd(prefix string) (string, error) {
	deadline := time.Now().Add(useraddTimeout)
	for {
		suffix, err := randHex(3)
		if err != nil {
			return "", err
		}
		name := prefix + suffix
		out, err := exec.Command("useradd", "-m", "-U", "-s", "/bin/bash", "-c", GECOS, name).CombinedOutput()
		if err == nil {
			return name, nil
		}
		// 9: name (or group) in use; 1/10 with "lock": shadow files busy.
		retry := exitCode(err) == 9 || bytes.Contains(out, []byte("lock"))
		if !retry || time.Now().After(deadline) {
			return "", fmt.Errorf("useradd %s: %w: %s", name, err, bytes.TrimSpace(out))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// remove is the Cleanup of NewUser. userdel refuses users that still run
// processes (exit 8), and killed processes count until they are reaped,
// so kill and retry for a while.
func (u *User) remove(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(userdelTimeout)
	for {
		u.killAll(t)
		out, err := exec.Command("userdel", "-r", u.Name).CombinedOutput()
		if err == nil {
			return
		}
		code := exitCode(err)
		if code == 6 { // no such user: already gone
			return
		}
		if (code == 8 || bytes.Contains(out, []byte("lock"))) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		t.Errorf("sshtest: userdel -r %s: %v: %s", u.Name, err, bytes.TrimSpace(out))
		return
	}
}

// killAll sends SIGKILL to every process whose real or effective uid is
// the user's.
func (u *User) killAll(t testing.TB) {
	t.Helper()
	uid := strconv.Itoa(u.UID)
	for _, flag := range []string{"-U", "-u"} {
		out, err := exec.Command("pkill", "-KILL", flag, uid).CombinedOutput()
		if err != nil && exitCode(err) != 1 { // 1: nothing matched
			t.Errorf("sshtest: pkill -KILL %s %s: %v: %s", flag, uid, err, bytes.TrimSpace(out))
		}
	}
}

// writeFile writes a file in the user's home as root without following a
// symlink the user may have planted, and gives it to the user. With
// appendTo it appends to an existing file, else it must not exist yet.
func (u *User) writeFile(path string, data []byte, mode os.FileMode, appendTo bool) error {
	flags := os.O_WRONLY | os.O_CREATE | syscall.O_NOFOLLOW
	if appendTo {
		flags |= os.O_APPEND
	} else {
		flags |= os.O_EXCL
	}
	f, err := os.OpenFile(path, flags, mode)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	// Chmod as well: the umask may have narrowed the create mode, and an
	// existing file keeps its old one.
	if err := f.Chown(u.UID, u.GID); err != nil {
		f.Close()
		return fmt.Errorf("chown %s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}

// exitCode returns the exit status in err, or -1.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// PublicDir returns a fresh directory directly under /tmp, so that every
// component of its path is traversable by other users (t.TempDir's parent
// is 0700), with mode and owned by owner (root when nil). It is removed at
// cleanup.
func PublicDir(t testing.TB, mode os.FileMode, owner *User) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "sshtest-pub-")
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	if owner != nil {
		if err := os.Chown(dir, owner.UID, owner.GID); err != nil {
			t.Fatalf("sshtest: %v", err)
		}
	}
	return dir
}

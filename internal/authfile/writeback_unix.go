//go:build unix

package authfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// LockSuffix names the lock file that WriteBack takes beside the file it
// writes: ~/.local/share/opencode/auth.json.lock for opencode's file.
// opencode (Auth.set: read, merge, write the whole file) and Codex (a
// truncating write) take no lock when they write their files, and Claude
// Code documents none, so there is no lock of theirs to share; this one
// serialises llm-agent's own writers, and any other tool that cares can
// take it too (flock(2), exclusive).
const LockSuffix = ".lock"

// lockWait bounds how long WriteBack waits for another holder of the lock.
const lockWait = 5 * time.Second

// errRaced: the file changed while it was being rewritten; try again.
var errRaced = errors.New("the file changed while it was being rewritten")

// WriteBack rewrites the credential file at path so that provider's OAuth
// entry holds the tokens of u (see ReplaceOAuth), keeping every other
// byte, the file's mode and its owner. A symbolic link is followed and
// its target rewritten. The new content goes to a temporary file in the
// same directory, which is synced and renamed over the file, and the
// directory is synced: a reader sees the old file or the new one, never a
// mix. Writers are serialised with an exclusive flock on path+LockSuffix;
// if the file changes between reading it and the rename (a tool that
// takes no lock wrote it), the rewrite starts over, at most three times.
// Errors name the file, never a value from it.
func WriteBack(path string, format Format, provider string, u Update) error {
	name := displayName(path)
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("%s: %w", name, unwrapPathError(err))
	}
	unlock, err := lockFile(real + LockSuffix)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer unlock()
	for attempt := 1; ; attempt++ {
		err := writeOnce(real, format, provider, u)
		if errors.Is(err, errRaced) && attempt < 3 {
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}
}

func writeOnce(path string, format Format, provider string, u Update) (err error) {
	before, err := os.Stat(path)
	if err != nil {
		return unwrapPathError(err)
	}
	data, err := readCapped(path, MaxFileSize)
	if err != nil {
		if inner := errors.Unwrap(err); inner != nil {
			return inner // readCapped names the file too
		}
		return err
	}
	defer clear(data)
	out, err := ReplaceOAuth(format, data, provider, u)
	if err != nil {
		return err
	}
	defer clear(out)

	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".llm-agent-*")
	if err != nil {
		return unwrapPathError(err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(before.Mode().Perm()); err != nil {
		return unwrapPathError(err)
	}
	if st, ok := before.Sys().(*syscall.Stat_t); ok {
		// A no-op for the file's owner; needs root for another owner.
		if err = tmp.Chown(int(st.Uid), int(st.Gid)); err != nil {
			return fmt.Errorf("cannot keep the file's owner %d:%d: %w", st.Uid, st.Gid, unwrapPathError(err))
		}
	}
	if _, err = tmp.Write(out); err != nil {
		return unwrapPathError(err)
	}
	if err = tmp.Sync(); err != nil {
		return unwrapPathError(err)
	}
	if err = tmp.Close(); err != nil {
		return unwrapPathError(err)
	}
	after, err := os.Stat(path)
	if err != nil {
		return unwrapPathError(err)
	}
	if !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) || after.Size() != before.Size() {
		err = errRaced
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return unwrapPathError(err)
	}
	// The rename is done; a failed directory sync (some file systems
	// refuse it) does not undo it.
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// lockFile takes an exclusive flock on path (created 0600 if missing),
// waiting at most lockWait, and returns the function that releases it.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock file: %w", unwrapPathError(err))
	}
	fd := int(f.Fd())
	deadline := time.Now().Add(lockWait)
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() {
				unix.Flock(fd, unix.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("%s is held by another writer for more than %v", path, lockWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

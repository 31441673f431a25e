package agent

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ListenTemp creates a fresh private directory under tmpdir (mode 0700,
// named like ssh-agent's: llm-XXXXXXXXXX) and listens on agent.<tag> (the
// use socket, LLM_AUTH_SOCK) and its admin socket in it. It returns both
// listeners, the use socket's path and the directory.
func ListenTemp(tmpdir string, tag int) (use, admin *net.UnixListener, path, dir string, err error) {
	if tmpdir == "" {
		tmpdir = "/tmp"
	}
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	for try := 0; try < 100; try++ {
		var r [10]byte
		if _, err := rand.Read(r[:]); err != nil {
			return nil, nil, "", "", err
		}
		for i := range r {
			r[i] = letters[int(r[i])%len(letters)]
		}
		dir = filepath.Join(tmpdir, "llm-"+string(r[:]))
		if err := os.Mkdir(dir, 0o700); err != nil {
			if errors.Is(err, os.ErrExist) {
				continue
			}
			return nil, nil, "", "", fmt.Errorf("creating socket directory: %w", err)
		}
		path = filepath.Join(dir, fmt.Sprintf("agent.%d", tag))
		use, admin, err = listenPair(path)
		if err != nil {
			os.Remove(dir)
			return nil, nil, "", "", err
		}
		return use, admin, path, dir, nil
	}
	return nil, nil, "", "", errors.New("creating socket directory: too many collisions")
}

// AdminSuffix names the management socket beside LLM_AUTH_SOCK.
const AdminSuffix = ".admin"

// AdminPath is the management socket of the agent whose use socket
// (LLM_AUTH_SOCK) is sock.
func AdminPath(sock string) string { return sock + AdminSuffix }

// listenPair listens on the admin socket beside path, then on path: a
// client that sees the use socket (LLM_AUTH_SOCK) appear finds the admin
// socket already there, rather than falling back to use-only rights. Stale
// sockets at either path are replaced; a live agent at either is an error.
func listenPair(path string) (use, admin *net.UnixListener, err error) {
	for _, p := range []string{AdminPath(path), path} {
		if err := clearStale(p); err != nil {
			return nil, nil, err
		}
	}
	if admin, err = listenPrivate(AdminPath(path)); err != nil {
		return nil, nil, err
	}
	if use, err = listenPrivate(path); err != nil {
		admin.Close()
		os.Remove(AdminPath(path))
		return nil, nil, err
	}
	return use, admin, nil
}

// ListenPath listens on a path the user chose (-a) and on its admin socket
// beside it. The parent directory must not be writable by group or others
// (else another user could swap the socket); an existing socket is replaced
// only if nothing answers on it.
func ListenPath(path string) (use, admin *net.UnixListener, err error) {
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("socket directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, nil, fmt.Errorf("socket directory %s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return nil, nil, fmt.Errorf("socket directory %s is writable by group or others (mode %o); use a private directory", dir, fi.Mode().Perm())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() && st.Uid != 0 {
		return nil, nil, fmt.Errorf("socket directory %s belongs to uid %d, not to you", dir, st.Uid)
	}
	return listenPair(path)
}

// clearStale removes a socket at path that nothing answers on; anything
// else there is an error.
func clearStale(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("an agent is already listening on %s", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("removing stale socket: %w", err)
	}
	return nil
}

// listenPrivate binds under umask 0177 so the socket is 0600 from the
// first instant, then chmods to be sure.
func listenPrivate(path string) (*net.UnixListener, error) {
	old := unix.Umask(0o177)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("chmod socket: %w", err)
	}
	return l, nil
}

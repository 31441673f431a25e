package guard

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Getsid returns the calling process's session id (its login's session
// leader before any setsid).
func Getsid() (int, error) { return getsid() }

func getsid() (int, error) {
	sid, err := unix.Getsid(0)
	if err != nil {
		return 0, fmt.Errorf("getsid: %w", err)
	}
	return sid, nil
}

// pidfdAlive reports whether the process behind a pidfd is still running.
func pidfdAlive(fd int) bool { return unix.PidfdSendSignal(fd, 0, nil, 0) == nil }

func closeFD(fd int) { unix.Close(fd) }

// waitExit waits until the process behind pidfd exits (true) or done is
// closed (false). A pidfd polls readable when its process exits.
func waitExit(pidfd int, done <-chan struct{}) bool {
	for {
		select {
		case <-done:
			return false
		default:
		}
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 200)
		if err != nil && err != unix.EINTR {
			return false
		}
		if n > 0 {
			return true
		}
	}
}

// harden keeps other processes of the same uid out of the guard's memory
// and environment, and disables core dumps.
func harden() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_DUMPABLE): %w", err)
	}
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{}); err != nil {
		return fmt.Errorf("disabling core dumps: %w", err)
	}
	return nil
}

// heldSocket is the forwarded socket's file, held open with O_PATH so that
// the guard can still dial it (through /proc/self/fd) after it unlinked the
// path. The guard is not dumpable, so no other process of the account can
// reach the descriptor through /proc/GUARD/fd.
type heldSocket struct {
	fd       int
	dev, ino uint64
}

// holdSocket opens the socket file at path with O_PATH and refuses one
// that is not a socket or not ours.
func holdSocket(path string) (*heldSocket, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("holding the forwarded socket %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("holding the forwarded socket %s: %w", path, err)
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFSOCK:
		unix.Close(fd)
		return nil, fmt.Errorf("the forwarded agent path %s is not a socket; refusing it", path)
	case st.Uid != uint32(os.Getuid()):
		unix.Close(fd)
		return nil, fmt.Errorf("the forwarded socket %s belongs to uid %d, not to you (uid %d); refusing it", path, st.Uid, os.Getuid())
	}
	return &heldSocket{fd: fd, dev: uint64(st.Dev), ino: st.Ino}, nil
}

// samePath refuses when path no longer names the held socket: it was
// replaced while the guard dialed it.
func (h *heldSocket) samePath(path string) error {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fmt.Errorf("the forwarded socket %s: %w", path, err)
	}
	if uint64(st.Dev) != h.dev || st.Ino != h.ino {
		return fmt.Errorf("the forwarded socket %s was replaced while the guard started; refusing it (log in again)", path)
	}
	return nil
}

// path is where the held socket can be dialed from this process only.
func (h *heldSocket) path() string { return fmt.Sprintf("/proc/self/fd/%d", h.fd) }

func (h *heldSocket) close() { unix.Close(h.fd) }

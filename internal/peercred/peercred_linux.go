package peercred

import (
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// FromConn asks the kernel who is connected on c: SO_PEERCRED for uid, gid
// and pid, and SO_PEERPIDFD (Linux 6.5+) for a pidfd of the peer. Kernels
// without SO_PEERPIDFD, or peers the kernel cannot hand out a pidfd for,
// yield a Peer without pidfd and no error. The caller must Close the Peer.
func FromConn(c *net.UnixConn) (*Peer, error) {
	if c == nil {
		return nil, errors.New("peercred: nil connection")
	}
	// SyscallConn rather than File: File dups the fd and switches the
	// socket to blocking mode.
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("peercred: raw connection: %w", err)
	}
	var (
		ucred    *unix.Ucred
		credErr  error
		pidfd    = -1
		pidfdErr error
	)
	ctrlErr := rc.Control(func(fd uintptr) {
		ucred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if credErr != nil {
			return
		}
		n, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PEERPIDFD)
		if err != nil {
			pidfdErr = err
			return
		}
		pidfd = n
	})
	if ctrlErr != nil {
		return nil, fmt.Errorf("peercred: raw connection: %w", ctrlErr)
	}
	if credErr != nil {
		return nil, fmt.Errorf("peercred: getsockopt SO_PEERCRED: %w", credErr)
	}
	switch {
	case pidfdErr == nil:
	case errors.Is(pidfdErr, unix.ENOPROTOOPT), // kernel < 6.5
		errors.Is(pidfdErr, unix.EINVAL), // peer already reaped (kernels before 6.16)
		errors.Is(pidfdErr, unix.ESRCH),
		errors.Is(pidfdErr, unix.ENODATA): // no peer pid recorded
		pidfd = -1
	default:
		return nil, fmt.Errorf("peercred: getsockopt SO_PEERPIDFD: %w", pidfdErr)
	}
	return &Peer{
		Cred:     Cred{UID: ucred.Uid, GID: ucred.Gid, PID: int(ucred.Pid)},
		pidfd:    pidfd,
		hasPidfd: pidfd >= 0,
	}, nil
}

// Close releases the pidfd. It is safe to call more than once.
func (p *Peer) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if !p.hasPidfd {
		return nil
	}
	p.hasPidfd = false
	if err := unix.Close(p.pidfd); err != nil {
		return fmt.Errorf("peercred: close pidfd: %w", err)
	}
	return nil
}

// Describe reads the peer's process description. With a pidfd it then
// proves that the process read is the one that connected and is still alive
// (Verified). A peer that has exited or whose pid was reused is not an
// error: the result then has Verified false and holds what could be read
// (at least PID and, from Cred, UID). Errors report real failures, such as
// an unreadable /proc or an unexpected pidfd error; the returned Process is
// usable even then.
func (p *Peer) Describe() (Process, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return p.credProcess(), errClosed
	}
	if p.PID <= 0 {
		// The peer is outside our pid namespace: nothing to read.
		return p.credProcess(), nil
	}

	pr := newProcess(p.PID)
	pr.UID = p.UID // replaced by the current euid if /proc says
	readErr := readProc(p.PID, &pr)
	if !p.hasPidfd {
		// Unverifiable; a vanished peer is not an error.
		if readErr != nil && !errors.Is(readErr, ErrNoProcess) {
			return pr, fmt.Errorf("peercred: describe peer: %w", readErr)
		}
		return pr, nil
	}
	alive, method, err := checkPidfd(p.pidfd, p.PID)
	pr.VerifiedBy = method
	switch {
	case err != nil:
		return pr, fmt.Errorf("peercred: verify peer pid %d: %w", p.PID, err)
	case !alive:
		// Gone: read errors are a consequence, not a failure.
		return pr, nil
	case readErr != nil:
		// Alive, yet /proc failed us (hidepid, a foreign /proc mount,
		// ...): a real failure, and an incomplete description.
		return pr, fmt.Errorf("peercred: describe live peer: %w", readErr)
	}
	pr.Verified = true
	return pr, nil
}

// PidfdOpen opens a pidfd for pid with pidfd_open(2) (Linux 5.3+). The fd
// is close-on-exec; the caller must close it.
func PidfdOpen(pid int) (int, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return -1, fmt.Errorf("peercred: pidfd_open %d: %w (%w)", pid, ErrNoProcess, err)
		}
		return -1, fmt.Errorf("peercred: pidfd_open %d: %w", pid, err)
	}
	return fd, nil
}

func pidfdAlive(fd int) bool { return unix.PidfdSendSignal(fd, 0, nil, 0) == nil }

func closePidfd(fd int) { unix.Close(fd) }

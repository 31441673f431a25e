package peercred

import (
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// xucredVersion is XUCRED_VERSION from <sys/ucred.h>, missing in x/sys.
const xucredVersion = 0

// FromConn asks the kernel who is connected on c: LOCAL_PEERCRED for the uid
// and first group, LOCAL_PEERPID for the pid. macOS has no pidfd, so the
// Peer cannot verify Describe's result.
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
		xu      *unix.Xucred
		credErr error
		pid     int
		pidErr  error
	)
	ctrlErr := rc.Control(func(fd uintptr) {
		xu, credErr = unix.GetsockoptXucred(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
		if credErr != nil {
			return
		}
		pid, pidErr = unix.GetsockoptInt(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERPID)
	})
	if ctrlErr != nil {
		return nil, fmt.Errorf("peercred: raw connection: %w", ctrlErr)
	}
	if credErr != nil {
		return nil, fmt.Errorf("peercred: getsockopt LOCAL_PEERCRED: %w", credErr)
	}
	if xu.Version != xucredVersion {
		return nil, fmt.Errorf("peercred: LOCAL_PEERCRED: unexpected xucred version %d", xu.Version)
	}
	if pidErr != nil {
		return nil, fmt.Errorf("peercred: getsockopt LOCAL_PEERPID: %w", pidErr)
	}
	cred := Cred{UID: xu.Uid, PID: pid}
	if xu.Ngroups > 0 {
		cred.GID = xu.Groups[0] // the effective gid comes first
	}
	return &Peer{Cred: cred}, nil
}

// Close marks the Peer closed; there is no pidfd to release on macOS.
func (p *Peer) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	return nil
}

// Describe reads the peer's process description with the kern.proc.pid
// sysctl. Verified is always false: nothing on macOS reachable from
// golang.org/x/sys pins the process. A vanished peer is not an error.
func (p *Peer) Describe() (Process, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return p.credProcess(), errClosed
	}
	if p.PID <= 0 {
		return p.credProcess(), nil
	}
	pr := p.credProcess()
	if err := readKinfo(p.PID, &pr); err != nil && !errors.Is(err, ErrNoProcess) {
		return pr, fmt.Errorf("peercred: describe peer: %w", err)
	}
	return pr, nil
}

// ProcessOf describes pid with the kern.proc.pid sysctl (best effort,
// Verified false). The error wraps ErrNoProcess when pid does not exist.
func ProcessOf(pid int) (Process, error) {
	if pid <= 0 {
		return newProcess(pid), fmt.Errorf("peercred: invalid pid %d", pid)
	}
	pr := newProcess(pid)
	if err := readKinfo(pid, &pr); err != nil {
		return pr, fmt.Errorf("peercred: describe pid %d: %w", pid, err)
	}
	return pr, nil
}

// readKinfo fills pr from one kinfo_proc snapshot, which is consistent in
// itself; Exe and Argv0 stay empty (see the package documentation).
func readKinfo(pid int, pr *Process) error {
	kp, err := unix.SysctlKinfoProc("kern.proc.pid", pid)
	if err != nil {
		// A missing pid yields a short (empty) answer, which x/sys
		// reports as EIO.
		if errors.Is(err, unix.EIO) || errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("kern.proc.pid %d: %w", pid, ErrNoProcess)
		}
		return fmt.Errorf("kern.proc.pid %d: %w", pid, err)
	}
	if int(kp.Proc.P_pid) != pid {
		return fmt.Errorf("kern.proc.pid %d: %w", pid, ErrNoProcess)
	}
	pr.UID = kp.Eproc.Ucred.Uid
	pr.PPID = int(kp.Eproc.Ppid)
	pr.Comm = cString(kp.Proc.P_comm[:])
	st := kp.Proc.P_starttime
	pr.StartTime = uint64(st.Sec)*1_000_000 + uint64(st.Usec)
	return nil
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// PidfdOpen is Linux-only.
func PidfdOpen(pid int) (int, error) {
	return -1, fmt.Errorf("peercred: pidfd_open %d: %w on darwin", pid, errors.ErrUnsupported)
}

func pidfdAlive(int) bool { return false }

func closePidfd(int) {}

package guard

import (
	"fmt"

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

package memsafe

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Harden makes the process hard to read from outside: no core dumps, no
// ptrace or /proc/PID/mem access by other processes of the same uid
// (PR_SET_DUMPABLE on Linux, PT_DENY_ATTACH on macOS), and RLIMIT_MEMLOCK
// raised to its hard limit. It returns the Budget for that limit.
func Harden() (*Budget, error) {
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{}); err != nil {
		return nil, fmt.Errorf("disabling core dumps: %w", err)
	}
	if err := denyAttach(); err != nil {
		return nil, err
	}
	return NewBudget(raiseMemlock()), nil
}

// raiseMemlock raises the soft RLIMIT_MEMLOCK to the hard one and returns
// the resulting limit in bytes (-1 for unlimited).
func raiseMemlock() int64 {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); err != nil {
		return 0
	}
	if lim.Cur < lim.Max {
		want := lim
		want.Cur = lim.Max
		if unix.Setrlimit(unix.RLIMIT_MEMLOCK, &want) == nil {
			lim = want
		}
	}
	if lim.Cur == unix.RLIM_INFINITY || lim.Cur > 1<<62 {
		return -1
	}
	return int64(lim.Cur)
}

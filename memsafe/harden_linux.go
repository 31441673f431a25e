package memsafe

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// denyAttach clears the dumpable flag: then only a process with
// CAP_SYS_PTRACE can ptrace us or read /proc/self/mem and environ.
func denyAttach() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_DUMPABLE): %w", err)
	}
	return nil
}

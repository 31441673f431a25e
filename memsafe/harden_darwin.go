package memsafe

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// denyAttach asks the kernel to refuse debuggers for this process.
func denyAttach() error {
	if err := unix.PtraceDenyAttach(); err != nil {
		return fmt.Errorf("ptrace(PT_DENY_ATTACH): %w", err)
	}
	return nil
}

package proctest

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

// Running reports whether pid is a live process: it exists and is not a
// zombie.
func Running(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// "pid (comm) state ...": the state follows the last ')'.
	i := strings.LastIndexByte(string(stat), ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// Gone waits up to limit for pid to stop running and reports whether it
// did.
func Gone(pid int, limit time.Duration) bool {
	for deadline := time.Now().Add(limit); Running(pid); {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

package memsafe_test

import (
	"fmt"
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/llm-agent/llm-agent/memsafe"
)

// TestHarden runs Harden in a child process (it changes process-wide
// state) and checks what it promises.
func TestHarden(t *testing.T) {
	if os.Getenv("MEMSAFE_HARDEN_CHILD") == "1" {
		hardenChild()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHarden$", "-test.count=1")
	cmd.Env = append(os.Environ(), "MEMSAFE_HARDEN_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func hardenChild() {
	fail := func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "harden: "+format+"\n", a...)
		os.Exit(1)
	}
	b, err := memsafe.Harden()
	if err != nil {
		fail("%v", err)
	}
	var core, mem unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_CORE, &core)
	unix.Getrlimit(unix.RLIMIT_MEMLOCK, &mem)
	if core.Cur != 0 {
		fail("RLIMIT_CORE soft limit %d", core.Cur)
	}
	if mem.Cur != mem.Max {
		fail("RLIMIT_MEMLOCK %d not raised to %d", mem.Cur, mem.Max)
	}
	if d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0); err != nil || d != 0 {
		fail("dumpable = %d, %v", d, err)
	}
	wantLimit := int64(-1)
	if mem.Cur != unix.RLIM_INFINITY {
		wantLimit = max(int64(mem.Cur)-3*int64(os.Getpagesize()), 0)
	}
	if b.Limit() != wantLimit {
		fail("budget limit %d, want %d", b.Limit(), wantLimit)
	}
}

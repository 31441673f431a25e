package proctest

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestRunning(t *testing.T) {
	if !Running(os.Getpid()) {
		t.Error("this process is not running")
	}
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if Gone(pid, 50*time.Millisecond) {
		t.Error("a sleeping child counts as gone")
	}
	cmd.Process.Kill()
	// Not yet reaped: a zombie, which is not running.
	if !Gone(pid, 5*time.Second) {
		t.Error("a killed child still runs")
	}
	cmd.Wait()
	if Running(pid) {
		t.Error("a reaped child runs")
	}
}

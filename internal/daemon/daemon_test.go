package daemon

import (
	"os"
	"strings"
	"testing"
	"time"
)

// The test binary is also the daemon: with daemonTestSay set, TestMain
// plays one and writes the variable's value on the ready pipe.
const daemonTestSay = "DAEMON_TEST_SAY"

func TestMain(m *testing.M) {
	if say, ok := os.LookupEnv(daemonTestSay); ok {
		ready := os.NewFile(4, "ready")
		switch say {
		case "hang":
			time.Sleep(time.Minute)
		case "exit":
		default:
			ready.WriteString(say)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestSpawn(t *testing.T) {
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	tests := []struct {
		say, detail, err string
		timeout          time.Duration
	}{
		{say: "ok\n"},
		{say: "ok /run/x/agent.sock\n", detail: "/run/x/agent.sock"},
		{say: "tester: cannot bind\n", err: "tester: cannot bind"},
		{say: "exit", err: "tester exited before it was ready"},
		{say: "hang", timeout: 200 * time.Millisecond, err: "tester did not become ready within 0 seconds"},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSpace(tt.say), func(t *testing.T) {
			t.Setenv(daemonTestSay, tt.say)
			if tt.timeout == 0 {
				tt.timeout = 10 * time.Second
			}
			pid, detail, err := Spawn(Spec{Name: "tester", Files: []*os.File{null}, ReadyFD: 4, Timeout: tt.timeout})
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("Spawn: err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || pid <= 0 || detail != tt.detail {
				t.Fatalf("Spawn: pid %d, detail %q, err %v; want detail %q", pid, detail, err, tt.detail)
			}
		})
	}
}

func TestSpawnReadyFDOutOfRange(t *testing.T) {
	if _, _, err := Spawn(Spec{Name: "tester", ReadyFD: 5}); err == nil {
		t.Fatal("Spawn put the ready pipe past its other files")
	}
}

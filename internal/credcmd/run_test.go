package credcmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/internal/proctest"
	"github.com/llm-agent/llm-agent/memsafe"
)

// alive reports whether the process whose pid is in file still runs a
// second after the run.
func alive(t *testing.T, file string) bool {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("the command wrote no pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return !proctest.Gone(pid, time.Second)
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	tests := []struct {
		name, command string
		timeout       time.Duration
		value, fail   string
		stderr        string
		max           time.Duration // the run ends within
		orphan        bool          // the command's background sleep must be gone
	}{
		{"plain", "echo sk-FAKE-1", 0, "sk-FAKE-1", "", "", 5 * time.Second, false},
		{"json", `printf '{"token":"t-FAKE","expiresAt":1893553445}'`, 0, "t-FAKE", "", "", 5 * time.Second, false},
		{"exit 1 with stderr", "echo 'op: not signed in' >&2; echo sk-FAKE-IGNORED; exit 1", 0, "", "exited with status 1", "op: not signed in", 5 * time.Second, false},
		{"first non-blank stderr line, cleaned", "printf '\\n  \\nwarn\\033[31m \\tred\\377\\r\\nsecond\\n' >&2; exit 3", 0, "", "exited with status 3", "warn?[31m  red?", 5 * time.Second, false},
		{"killed by a signal", "kill -TERM $$", 0, "", "was killed by signal 15 (terminated)", "", 5 * time.Second, false},
		{"printed nothing", "true", 0, "", "printed nothing", "", 5 * time.Second, false},
		{"too much", "head -c 70000 /dev/zero | tr '\\0' a", 0, "", "printed more than 65536 bytes", "", 5 * time.Second, false},
		{"hangs, with a grandchild holding stdout", "sleep 30 & echo $! >" + pidFile + "; wait", 300 * time.Millisecond, "", "did not finish within 300ms", "", 3 * time.Second, true},
		{"closes stdout and hangs", "exec >&-; sleep 30", 300 * time.Millisecond, "", "did not finish within 300ms", "", 3 * time.Second, false},
		{"leaves a sleep holding stdout", "sleep 30 & echo $! >" + pidFile + "; echo sk-FAKE-2", 10 * time.Second, "sk-FAKE-2", "", "", 3 * time.Second, true},
		{"leaves a session holding stdout", "setsid sh -c 'echo $$ >" + pidFile + "; exec sleep 2' & while [ ! -s " + pidFile + " ]; do sleep 0.01; done; echo sk-FAKE-3", 10 * time.Second, "", "exited, but a process it started outside its process group kept its output open", "", 1500 * time.Millisecond, false},
		{"cannot start", "", 0, "", "", "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(pidFile)
			r := &Runner{Budget: memsafe.NewBudget(-1), Limit: 64 << 10, Timeout: tt.timeout}
			if tt.name == "cannot start" {
				r.Dir = filepath.Join(dir, "absent")
				tt.fail = "could not be started: stat " + r.Dir + ": no such file or directory"
				tt.max = 5 * time.Second
			}
			var got string
			start := time.Now()
			rep, err := r.Run(context.Background(), tt.command, func(v []byte, _ time.Time) error {
				got = string(v)
				return nil
			})
			took := time.Since(start)
			var f *Failure
			switch {
			case tt.fail == "" && err != nil:
				t.Errorf("failed: %v", err)
			case tt.fail != "" && (!errors.As(err, &f) || f.Why != tt.fail):
				t.Errorf("got %v, want the failure %q", err, tt.fail)
			}
			if got != tt.value {
				t.Errorf("value %q, want %q", got, tt.value)
			}
			if rep.Stderr != tt.stderr {
				t.Errorf("stderr %q, want %q", rep.Stderr, tt.stderr)
			}
			if took > tt.max || rep.Took > took {
				t.Errorf("took %v (reported %v), want at most %v", took, rep.Took, tt.max)
			}
			if tt.orphan && alive(t, pidFile) {
				t.Errorf("the command's background sleep outlived the run")
			}
		})
	}
}

func TestRunEnvironment(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "seen")
	r := &Runner{Budget: memsafe.NewBudget(-1), Limit: 1024, Env: []string{"ONLY=this", "HOME=" + dir}}
	_, err := r.Run(context.Background(), `{ pwd; env; ls -l /proc/$$/fd/0; } >`+out+`; echo v`, func([]byte, time.Time) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out)
	seen := string(b)
	// Dir "" is $HOME of this process, not of Env.
	home, _ := os.UserHomeDir()
	for _, want := range []string{home + "\n", "ONLY=this\n", "/dev/null"} {
		if !strings.Contains(seen, want) {
			t.Errorf("the command saw no %q:\n%s", want, seen)
		}
	}
	// A $HOME that is no directory: the command runs in /.
	t.Setenv("HOME", filepath.Join(dir, "absent"))
	var pwd string
	if _, err := r.Run(context.Background(), "pwd", func(v []byte, _ time.Time) error { pwd = string(v); return nil }); err != nil || pwd != "/" {
		t.Errorf("without a home directory: ran in %q, %v", pwd, err)
	}
}

func TestRunStopped(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runner{Budget: memsafe.NewBudget(-1), Limit: 1024}
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	_, err := r.Run(ctx, "sleep 30 & echo $! >"+pidFile+"; wait", func([]byte, time.Time) error { return nil })
	var f *Failure
	if !errors.As(err, &f) || f.Why != "was stopped: the agent is shutting down" || time.Since(start) > 3*time.Second {
		t.Fatalf("got %v after %v", err, time.Since(start))
	}
	if alive(t, pidFile) {
		t.Error("the command's sleep outlived the cancelled run")
	}
	if _, err := r.Run(ctx, "echo x", func([]byte, time.Time) error { return nil }); !errors.As(err, &f) || !strings.Contains(f.Why, "stopped") {
		t.Errorf("a run after the end: %v", err)
	}
}

func TestRunUseError(t *testing.T) {
	r := &Runner{Budget: memsafe.NewBudget(-1), Limit: 1024}
	want := fmt.Errorf("sealing: %w", memsafe.ErrLockedMemory)
	_, err := r.Run(context.Background(), "echo v", func([]byte, time.Time) error { return want })
	if err != want {
		t.Errorf("got %v, want use's error as it is", err)
	}
}

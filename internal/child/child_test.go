package child

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
)

func TestWait(t *testing.T) {
	tests := []struct {
		name string
		argv []string
		send os.Signal // passed on once the command runs
		want int
	}{
		{"success", []string{"true"}, nil, 0},
		{"exit code", []string{"sh", "-c", "exit 3"}, nil, 3},
		{"killed by a signal", []string{"sh", "-c", "kill -TERM $$"}, nil, 128 + int(syscall.SIGTERM)},
		{"signal passed on", []string{"sleep", "30"}, syscall.SIGUSR1, 128 + int(syscall.SIGUSR1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(tt.argv[0], tt.argv[1:]...)
			if err := cmd.Start(); err != nil {
				t.Fatalf("%s: %v", tt.argv[0], err)
			}
			sigs := make(chan os.Signal, 1)
			if tt.send != nil {
				sigs <- tt.send
			}
			got, err := Wait(cmd, sigs)
			if err != nil || got != tt.want {
				t.Fatalf("Wait: %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestStatusOtherError(t *testing.T) {
	notRun := errors.New("not started")
	if code, err := Status(notRun); err != notRun || code != 0 {
		t.Fatalf("Status: %d, %v; want 0, %v", code, err, notRun)
	}
}

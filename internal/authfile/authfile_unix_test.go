//go:build unix

package authfile_test

import (
	"errors"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/internal/authfile"
)

// A FIFO with no writer would block a plain open(2) forever.
func TestReadFileFIFO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "auth.json")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Skip("mkfifo:", err)
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := authfile.ReadFile(p)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !errors.Is(err, authfile.ErrNotRegular) {
			t.Fatalf("got %v", err)
		}
		checkErr(t, err, p, "not a regular file (named pipe)")
	case <-time.After(5 * time.Second):
		t.Fatal("ReadFile blocked on a FIFO")
	}
}

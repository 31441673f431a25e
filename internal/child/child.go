package child

import (
	"errors"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/term"
)

// Wait waits for cmd, already started, and returns its exit status (see
// Status). Until then every signal from sigs is passed on to it, but for
// SIGINT and SIGQUIT when stdin is a terminal: those reach the command from
// the terminal itself (it is in our process group), and passing them on
// would deliver them twice. sigs may be nil.
func Wait(cmd *exec.Cmd, sigs <-chan os.Signal) (int, error) {
	fromTTY := term.IsTerminal(int(os.Stdin.Fd()))
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				if fromTTY && (s == syscall.SIGINT || s == syscall.SIGQUIT) {
					continue
				}
				cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	return Status(err)
}

// Status is the exit status a shell reports for a command whose Wait (or
// Run) returned err: 0, its exit code, or 128+N when signal N ended it. An
// err that is not the command's end (it could not be started or waited
// for) is returned as it is.
func Status(err error) (int, error) {
	if err == nil {
		return 0, nil
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return 0, err
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return ee.ExitCode(), nil
}

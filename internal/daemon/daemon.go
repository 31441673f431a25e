package daemon

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Spec says how to start the daemon.
type Spec struct {
	// Name names the daemon in errors ("daemon", "the guard").
	Name string
	// Args follow the program's own path on the command line.
	Args []string
	// Files are the daemon's file descriptors from 3 on, less the ready
	// pipe, which is put at ReadyFD among them.
	Files   []*os.File
	ReadyFD int
	// Attr detaches the daemon (Setsid) and sets what else it needs.
	Attr *syscall.SysProcAttr
	// Timeout bounds the wait for the ready line; a daemon that has not
	// written it by then gets SIGTERM.
	Timeout time.Duration
}

// Spawn starts this program again as described by s, in /, with stdin,
// stdout and stderr on /dev/null, and returns its pid once it has written
// "ok" on the ready pipe, with whatever followed "ok " on that line. Any
// other line is the error.
func Spawn(s Spec) (pid int, detail string, err error) {
	at := s.ReadyFD - 3
	if at < 0 || at > len(s.Files) {
		return 0, "", fmt.Errorf("starting %s: ready pipe at fd %d, beyond its %d other files", s.Name, s.ReadyFD, len(s.Files))
	}
	exe, err := os.Executable()
	if err != nil {
		return 0, "", fmt.Errorf("finding own executable: %w", err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return 0, "", err
	}
	defer pr.Close()
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		pw.Close()
		return 0, "", err
	}
	defer null.Close()
	cmd := exec.Command(exe, s.Args...)
	cmd.Dir = "/"
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, null, null
	cmd.ExtraFiles = slices.Insert(slices.Clone(s.Files), at, pw)
	cmd.SysProcAttr = s.Attr
	err = cmd.Start()
	// Only the daemon may hold the write end: its exit then ends our read.
	pw.Close()
	if err != nil {
		return 0, "", fmt.Errorf("starting %s: %w", s.Name, err)
	}
	pid = cmd.Process.Pid
	cmd.Process.Release()

	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(pr).ReadString('\n')
		lines <- line
	}()
	select {
	case line := <-lines:
		if line == "ok\n" {
			return pid, "", nil
		}
		if rest, ok := strings.CutPrefix(line, "ok "); ok {
			return pid, strings.TrimSpace(rest), nil
		}
		if line == "" {
			line = s.Name + " exited before it was ready"
		}
		return 0, "", errors.New(strings.TrimSpace(line))
	case <-time.After(s.Timeout):
		syscall.Kill(pid, syscall.SIGTERM)
		return 0, "", fmt.Errorf("%s did not become ready within %d seconds", s.Name, int(s.Timeout/time.Second))
	}
}

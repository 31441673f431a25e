package credcmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/llm-agent/llm-agent/memsafe"
)

// DefaultTimeout bounds a run when Runner.Timeout is zero: below the 30 s
// a client waits for a get, so that a get that runs the command can still
// be answered.
const DefaultTimeout = 20 * time.Second

// StderrMax is how much of the first line of stderr a Report keeps.
const StderrMax = 200

// afterExit is how long the output may stay open once the shell has
// exited and its process group has been killed: only a process that left
// the group (setsid) can still hold it, and nothing it writes is waited
// for.
const afterExit = 250 * time.Millisecond

// StderrWithheld stands for a first stderr line that holds part of the
// value (a command run under set -x, a wrapper that echoes what it read).
const StderrWithheld = "(withheld: it holds part of the value)"

// sharedRun is how many bytes of the value in a row make a stderr line
// withheld; a shorter value counts whole.
const sharedRun = 8

// Runner runs credential commands.
type Runner struct {
	Budget  *memsafe.Budget // locked memory for the output
	Limit   int             // bytes of output at most; more is a Failure
	Timeout time.Duration   // per run; DefaultTimeout when zero
	Dir     string          // working directory; "" means $HOME, or / when that is no directory
	Env     []string        // nil means this process's environment
}

// Report says how a run went, for the audit log. It never holds a byte of
// the command's stdout.
type Report struct {
	Took time.Duration
	// Stderr is the first non-blank line the command wrote to stderr, at
	// most StderrMax bytes, with control characters and invalid UTF-8
	// replaced; "" when it wrote none.
	Stderr string
}

// Run runs command and passes the value it printed (see Parse) and its
// expiry (zero: none) to use, in locked memory that is destroyed when use
// returns. It returns a *Failure when the command gave no value (it failed,
// overran, printed nothing usable or too much, or ctx ended), and use's
// error as it is.
func (r *Runner) Run(ctx context.Context, command string, use func(value []byte, expires time.Time) error) (rep Report, err error) {
	start := time.Now()
	defer func() { rep.Took = time.Since(start) }()
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ended := func() error {
		if parent.Err() != nil {
			return &Failure{Why: "was stopped: the agent is shutting down"}
		}
		return failf("did not finish within %v", timeout)
	}
	if ctx.Err() != nil {
		return rep, ended()
	}
	p, err := r.start(command)
	if err != nil {
		return rep, err
	}
	defer p.outR.Close()
	defer p.errR.Close()
	stderr := make(chan string, 1)
	go func() { stderr <- firstLine(p.errR) }()
	var errLine *string
	stderrLine := func() string {
		if errLine == nil {
			line := <-stderr
			errLine = &line
		}
		return *errLine
	}
	defer func() { rep.Stderr = stderrLine() }()
	// Whatever happens below, the run ends with its group killed and the
	// shell reaped.
	defer func() {
		select {
		case <-p.exited:
		default:
			p.kill()
			<-p.exited
		}
	}()
	watched := make(chan struct{})
	defer close(watched)
	go func() {
		select {
		case <-ctx.Done():
			p.timedOut.Store(true)
			p.kill()
			// A process that left the group may hold the pipes: stop
			// reading them all the same.
			now := time.Now()
			p.outR.SetReadDeadline(now)
			p.errR.SetReadDeadline(now)
		case <-watched:
		}
	}()
	var useErr error
	err = r.Budget.ReadLocked(p.outR, r.Limit, func(out []byte, more bool) error {
		if more {
			p.kill()
			return failf("printed more than %d bytes", r.Limit)
		}
		<-p.exited // the output is closed, so the shell has ended or is about to
		if p.timedOut.Load() {
			return ended()
		}
		if f := exitFailure(p.err); f != nil {
			return f
		}
		value, expires, err := Parse(out)
		if err != nil {
			return err
		}
		// The shell has exited: stderr ends now or at its deadline.
		if sharesRun(stderrLine(), value) {
			line := StderrWithheld
			errLine = &line
		}
		useErr = use(value, expires)
		return useErr
	})
	var f *Failure
	switch {
	case err == nil || err == useErr || errors.As(err, &f):
		return rep, err
	case p.timedOut.Load():
		return rep, ended()
	case errors.Is(err, os.ErrDeadlineExceeded):
		return rep, &Failure{Why: "exited, but a process it started outside its process group kept its output open"}
	case errors.Is(err, memsafe.ErrLockedMemory):
		return rep, err
	}
	return rep, failf("could not be read: %v", err)
}

// proc is a running command.
type proc struct {
	pgid       int
	outR, errR *os.File
	exited     chan struct{} // closed once the shell is reaped; err is then set
	err        error
	timedOut   atomic.Bool
}

// kill sends SIGKILL to the command's process group. The group's id stays
// the shell's pid while any member lives, so it names no other process.
func (p *proc) kill() { unix.Kill(-p.pgid, unix.SIGKILL) }

func (r *Runner) start(command string) (*proc, error) {
	dir := r.Dir
	if dir == "" {
		dir = "/"
		if home, err := os.UserHomeDir(); err == nil && isDir(home) {
			dir = home
		}
	}
	// exec would report a missing directory as a missing /bin/sh.
	if _, err := os.Stat(dir); err != nil {
		return nil, failf("could not be started: %v", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("running the command: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("running the command: %w", err)
	}
	cmd := exec.Command("/bin/sh", "-c", command)
	cmd.Dir, cmd.Env = dir, r.Env
	cmd.Stdout, cmd.Stderr = outW, errW // stdin: /dev/null
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, failf("could not be started: %v", err)
	}
	p := &proc{pgid: cmd.Process.Pid, outR: outR, errR: errR, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		// What the shell left in its group is killed with it; what left
		// the group gets a moment to close the output.
		p.kill()
		deadline := time.Now().Add(afterExit)
		outR.SetReadDeadline(deadline)
		errR.SetReadDeadline(deadline)
		close(p.exited)
	}()
	return p, nil
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// exitFailure describes a shell that did not exit with status 0.
func exitFailure(err error) *Failure {
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return failf("was killed by signal %d (%v)", int(ws.Signal()), ws.Signal())
		}
		return failf("exited with status %d", ee.ExitCode())
	}
	return failf("could not be waited for: %v", err)
}

// firstLine reads r to its end (or its deadline) and returns its first
// non-blank line, cleaned (see Report.Stderr).
func firstLine(r io.Reader) string {
	var (
		buf  [512]byte
		line []byte
		done bool // the first non-blank line is complete
		cut  bool
	)
	for {
		n, err := r.Read(buf[:])
		for _, c := range buf[:n] {
			if done {
				break
			}
			switch {
			case c == '\n':
				done = len(strings.TrimSpace(string(line))) > 0
				if !done {
					line, cut = line[:0], false
				}
			case len(line) < StderrMax+utf8.UTFMax:
				line = append(line, c)
			default:
				cut = true
			}
		}
		if err != nil {
			break
		}
	}
	return clean(line, cut)
}

// clean makes b one printable line of at most StderrMax bytes.
func clean(b []byte, cut bool) string {
	var sb strings.Builder
	s := strings.TrimRight(string(b), "\r")
	for i := 0; i < len(s); {
		c, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case c == utf8.RuneError && size <= 1, c < 0x20 && c != '\t', c == 0x7f, 0x80 <= c && c < 0xa0:
			c = '?'
		case c == '\t':
			c = ' '
		}
		if sb.Len()+utf8.RuneLen(c) > StderrMax {
			cut = true
			break
		}
		sb.WriteRune(c)
		i += size
	}
	out := strings.TrimSpace(sb.String())
	if cut {
		out += "..."
	}
	return out
}

// sharesRun reports whether line holds sharedRun bytes in a row of value
// (all of it when shorter), so that a line cut short, or escaped around
// it, is caught too. It never copies value.
func sharesRun(line string, value []byte) bool {
	k := min(sharedRun, len(value))
	if k == 0 {
		return false
	}
	for i := 0; i+k <= len(line); i++ {
		if bytes.Contains(value, []byte(line[i:i+k])) {
			return true
		}
	}
	return false
}

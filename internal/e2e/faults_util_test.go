package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/protocol"
)

// faultFast is how soon a client must fail once what it waits for is
// killed: the kernel closes the connection at once, so this is slack.
const faultFast = time.Second

// faultProbe is a well-behaved client that asks list@llm-agent on a fresh
// connection every 20 ms while a scenario runs, and keeps the slowest
// answer: the issue wants every answer within a second.
type faultProbe struct {
	sock string
	stop chan struct{}
	done chan struct{}

	mu    sync.Mutex
	n     int
	max   time.Duration
	slow  int      // answers that took 1 s or more
	fails []string // the first few failures
}

// faultStartProbe starts the probe on a's socket.
func faultStartProbe(a *Agent) *faultProbe {
	p := &faultProbe{sock: a.Sock, stop: make(chan struct{}), done: make(chan struct{})}
	go p.run()
	return p
}

func (p *faultProbe) run() {
	defer close(p.done)
	for {
		select {
		case <-p.stop:
			return
		case <-time.After(20 * time.Millisecond):
		}
		d, err := faultListOnce(p.sock)
		p.mu.Lock()
		p.n++
		p.max = max(p.max, d)
		if d >= time.Second {
			p.slow++
		}
		if err != nil && len(p.fails) < 5 {
			p.fails = append(p.fails, fmt.Sprintf("%v (after %v)", err, d.Round(time.Millisecond)))
		}
		p.mu.Unlock()
	}
}

// finish stops the probe, logs how it went and fails t if a list failed
// or took a second or more. It returns the slowest answer.
func (p *faultProbe) finish(t testing.TB, what string) time.Duration {
	t.Helper()
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	t.Logf("%s: a well-behaved client's list answered %d times, slowest in %v", what, p.n, p.max.Round(time.Microsecond))
	if p.n == 0 {
		t.Errorf("%s: the probe never listed", what)
	}
	for _, f := range p.fails {
		t.Errorf("%s: a well-behaved client's list failed: %s", what, f)
	}
	if p.slow > 0 {
		t.Errorf("%s: %d lists took 1 s or more (slowest %v), want each < 1 s", what, p.slow, p.max)
	}
	return p.max
}

// faultListOnce dials (retrying a full backlog, which counts as waiting)
// and lists once, with a 5 s bound.
func faultListOnce(sock string) (time.Duration, error) {
	start := time.Now()
	var nc net.Conn
	var err error
	for {
		nc, err = dialUnix(sock)
		if err == nil || !errors.Is(err, syscall.EAGAIN) || time.Since(start) > 5*time.Second {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err != nil {
		return time.Since(start), fmt.Errorf("dial: %w", err)
	}
	c := protocol.NewClient(nc)
	defer c.Close()
	c.Timeout = 5 * time.Second
	_, err = c.List()
	return time.Since(start), err
}

// faultSleepyAskpass writes an askpass program that records its pid in a
// fresh directory and sleeps: a get of a credential added with -c then
// stays in flight. It returns the program and the directory; the sleepers
// are killed, by pid, at cleanup.
func faultSleepyAskpass(t testing.TB) (prog, pids string) {
	t.Helper()
	dir := t.TempDir()
	pids = filepath.Join(dir, "pids")
	if err := os.Mkdir(pids, 0o700); err != nil {
		t.Fatal(err)
	}
	prog = writeScript(t, filepath.Join(dir, "askpass"), "touch "+pids+"/$$\nexec sleep 120\n")
	t.Cleanup(func() {
		for _, pid := range faultAskpassPIDs(pids) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return prog, pids
}

// faultAskpassPIDs lists the sleepy askpass programs started so far.
func faultAskpassPIDs(dir string) []int {
	ents, _ := os.ReadDir(dir)
	var out []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// faultWaitAskpass waits until the agent runs the sleepy askpass: a get
// is then in flight, waiting for the owner's answer.
func faultWaitAskpass(t testing.TB, dir string, limit time.Duration) {
	t.Helper()
	if took, ok := waitFor(limit, func() bool { return len(faultAskpassPIDs(dir)) > 0 }); !ok {
		t.Fatalf("the agent did not run the askpass program within %v", limit)
	} else {
		t.Logf("the agent runs the askpass program (%v): a get is in flight", took.Round(time.Millisecond))
	}
}

// faultProc is a client process started in the background.
type faultProc struct {
	cmd     *exec.Cmd
	out     bytes.Buffer
	errb    bytes.Buffer
	done    chan struct{}
	started time.Time
	ended   time.Time
}

// faultStart starts name args with env in the background; it is killed at
// cleanup if still running.
func faultStart(t testing.TB, env []string, name string, args ...string) *faultProc {
	t.Helper()
	p := &faultProc{cmd: exec.Command(name, args...), done: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.errb
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	p.started = time.Now()
	go func() {
		p.cmd.Wait()
		p.ended = time.Now()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// running reports whether the process has not exited yet.
func (p *faultProc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// wait waits at most limit for the process and returns its result; ok is
// false if it still runs.
func (p *faultProc) wait(limit time.Duration) (r Result, ok bool) {
	select {
	case <-p.done:
		return Result{Code: p.cmd.ProcessState.ExitCode(), Stdout: p.out.String(), Stderr: p.errb.String()}, true
	case <-time.After(limit):
		return Result{}, false
	}
}

// faultOneLine checks that stderr is one line starting with prefix, and
// returns it.
func faultOneLine(t testing.TB, what, stderr, prefix string) string {
	t.Helper()
	msg := strings.TrimRight(stderr, "\n")
	if msg == "" || strings.Contains(msg, "\n") || !strings.HasPrefix(msg, prefix) {
		t.Errorf("%s: want one line on stderr starting with %q, got %q", what, prefix, stderr)
	}
	return msg
}

// faultSession is an ssh session started in the background whose remote
// script printed "ready".
type faultSession struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
	done  chan struct{}
	errb  bytes.Buffer
}

// faultStartSession starts cmd and waits (30 s at most) for its "ready"
// line. The session is ended at cleanup.
func faultStartSession(t testing.TB, cmd *exec.Cmd) *faultSession {
	t.Helper()
	s := &faultSession{cmd: cmd, lines: make(chan string, 64), done: make(chan struct{})}
	var err error
	if s.in, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &s.errb
	if err := cmd.Start(); err != nil {
		t.Fatalf("start ssh: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case s.lines <- sc.Text():
			default: // nobody listens any more
			}
		}
		cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		syscall.Kill(cmd.Process.Pid, syscall.SIGCONT)
		s.in.Close()
		cmd.Process.Kill()
		<-s.done
	})
	select {
	case l := <-s.lines:
		if l != "ready" {
			t.Fatalf("ssh session: first line %q, want ready", l)
		}
	case <-s.done:
		t.Fatalf("ssh session ended before it was ready: %s", s.errb.String())
	case <-time.After(fwdSessionTimeout):
		t.Fatalf("ssh session not ready within %v", fwdSessionTimeout)
	}
	return s
}

// faultResult is what a remote script recorded about one get: its exit
// status, when it started and when it ended (date +%s.%N, the same clock
// as the test's: the server is this machine).
type faultResult struct {
	rc           int
	start, ended time.Time
}

// faultWaitResult waits until the file at path holds "rc start end" and
// parses it.
func faultWaitResult(t testing.TB, path string, limit time.Duration) faultResult {
	t.Helper()
	var f []string
	if _, ok := waitFor(limit, func() bool {
		b, err := os.ReadFile(path)
		f = strings.Fields(string(b))
		return err == nil && len(f) == 3
	}); !ok {
		t.Fatalf("no result in %s within %v", path, limit)
	}
	rc, err := strconv.Atoi(f[0])
	if err != nil {
		t.Fatalf("%s: bad exit status %q", path, f[0])
	}
	return faultResult{rc: rc, start: fwdParseTime(t, f[1]), ended: fwdParseTime(t, f[2])}
}

// faultTimedGet is a shell fragment that runs one get (with env, shell
// assignments) in the background and writes "rc start end" to result and
// its stderr to result.err, atomically.
func faultTimedGet(env, provider, result string) string {
	return fmt.Sprintf(`( s=$(date +%%s.%%N); %s "$C" get %s >/dev/null 2>'%s.err'; rc=$?
echo "$rc $s $(date +%%s.%%N)" > '%s.tmp'; mv '%s.tmp' '%s' ) </dev/null >/dev/null 2>&1 &`,
		env, provider, result, result, result, result)
}

// faultTimeoutEnv is the client time-out the time-out tests set, and how
// late past it a client may fail.
const (
	faultTimeout      = 3 * time.Second
	faultTimeoutSlack = time.Second
)

package agenttest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Bins are the built binaries.
type Bins struct {
	Dir    string // world-readable, so commands run as other users can execute them
	Agent  string
	Client string
}

// Build builds llm-agent and llm-agent-client from the module at root into
// a fresh directory, static (CGO_ENABLED=0) as the README and the release
// build them; the caller removes Bins.Dir when done.
func Build(root string) (Bins, error) {
	dir, err := os.MkdirTemp("", "llm-bin-")
	if err != nil {
		return Bins{}, err
	}
	os.Chmod(dir, 0o755)
	b := Bins{Dir: dir, Agent: filepath.Join(dir, "llm-agent"), Client: filepath.Join(dir, "llm-agent-client")}
	for pkg, out := range map[string]string{"./cmd/llm-agent": b.Agent, "./cmd/llm-agent-client": b.Client} {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			return Bins{}, fmt.Errorf("building %s: %v\n%s", pkg, err, out)
		}
	}
	return b, nil
}

// Agent is an llm-agent started by a test, in the foreground (-D or -d),
// with its output captured.
type Agent struct {
	Sock   string // LLM_AUTH_SOCK: use-only
	Admin  string // the management socket beside it (Sock + ".admin")
	PID    int
	Audit  string // audit log path ("" if none)
	Stderr string // path of the file holding its stderr
	cmd    *exec.Cmd
	client string
}

// Options configure Start.
type Options struct {
	Debug   bool     // -d instead of -D
	Audit   bool     // --audit-log in the test's temp dir
	Args    []string // more flags (-t, --upstream)
	Env     []string // extra environment (LLM_AGENT_ASKPASS...)
	Dir     string   // directory for the socket; default a fresh 0700 temp dir
	Cred    *syscall.Credential
	Rlimits string // shell ulimit options applied before exec, e.g. "-l 64"
}

// Start starts llm-agent -D (or -d) on a socket in a private
// directory and waits until it answers. It is stopped at cleanup.
func Start(t testing.TB, bins Bins, o Options) *Agent {
	t.Helper()
	dir := o.Dir
	if dir == "" {
		dir = t.TempDir()
		os.Chmod(dir, 0o700)
	}
	a := &Agent{Sock: filepath.Join(dir, "agent.sock"), Admin: filepath.Join(dir, "agent.sock.admin"), Stderr: filepath.Join(dir, "agent.stderr"), client: bins.Client}
	mode := "-D"
	if o.Debug {
		mode = "-d"
	}
	args := []string{mode, "-a", a.Sock}
	if o.Audit {
		a.Audit = filepath.Join(dir, "audit.jsonl")
		args = append(args, "--audit-log", a.Audit)
	}
	args = append(args, o.Args...)
	var cmd *exec.Cmd
	if o.Rlimits != "" {
		quoted := make([]string, len(args))
		for i, s := range args {
			quoted[i] = "'" + s + "'"
		}
		cmd = exec.Command("/bin/sh", "-c", "ulimit "+o.Rlimits+" && exec "+bins.Agent+" "+strings.Join(quoted, " "))
	} else {
		cmd = exec.Command(bins.Agent, args...)
	}
	cmd.Env = append(CleanEnv(), o.Env...)
	errf, err := os.Create(a.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	cmd.Stderr = errf
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if o.Cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: o.Cred}
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting llm-agent: %v", err)
	}
	a.cmd = cmd
	a.PID = cmd.Process.Pid
	t.Cleanup(func() { a.Stop(t) })
	// The eval lines come first; the last one names the pid.
	sc := bufio.NewScanner(out)
	lines := 0
	for sc.Scan() {
		lines++
		if strings.HasPrefix(sc.Text(), "echo Agent pid") {
			break
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	// Four lines when llm-agent also set SSH_AUTH_SOCK (no live ssh-agent).
	if lines != 3 && lines != 4 {
		b, _ := os.ReadFile(a.Stderr)
		t.Fatalf("llm-agent printed %d eval lines; stderr: %s", lines, b)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !serving(a.Sock) {
		if time.Now().After(deadline) {
			t.Fatalf("llm-agent does not answer on %s", a.Sock)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return a
}

// serving reports whether an agent serves on sock: it answers a request
// or closes the connection. A connect alone succeeds as soon as the socket
// listens, while the agent may still be starting its SSH-key child.
func serving(sock string) bool {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	// SSH_AGENTC_REQUEST_IDENTITIES
	if _, err := c.Write([]byte{0, 0, 0, 1, 11}); err != nil {
		return false
	}
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// Kill kills the agent with SIGKILL and waits for it, leaving its socket
// behind as a crash would.
func (a *Agent) Kill() {
	if a.cmd == nil || a.cmd.ProcessState != nil {
		return
	}
	a.cmd.Process.Kill()
	a.cmd.Wait()
}

// Stop sends SIGTERM and waits (at most 5 s, then SIGKILL).
func (a *Agent) Stop(t testing.TB) {
	if a.cmd == nil || a.cmd.ProcessState != nil {
		return
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { a.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		a.cmd.Process.Kill()
		<-done
		t.Errorf("llm-agent did not exit within 5 s of SIGTERM")
	}
}

// Env returns an environment pointing LLM_AUTH_SOCK (and, for ssh-add,
// SSH_AUTH_SOCK) at the agent.
func (a *Agent) Env(extra ...string) []string {
	return append(CleanEnv(), append([]string{"LLM_AUTH_SOCK=" + a.Sock, "SSH_AUTH_SOCK=" + a.Sock}, extra...)...)
}

// AdminEnv is Env with SSH_AUTH_SOCK at the admin socket, for ssh-add
// commands that manage the agent's keyring (add, remove); llm-agent-client
// finds the admin socket by itself.
func (a *Agent) AdminEnv(extra ...string) []string {
	return append(CleanEnv(), append([]string{"LLM_AUTH_SOCK=" + a.Sock, "SSH_AUTH_SOCK=" + a.Admin}, extra...)...)
}

// CleanEnv is the test's environment without any agent variables.
func CleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "LLM_AUTH_SOCK", "LLM_AGENT_PID", "SSH_AUTH_SOCK", "SSH_AGENT_PID", "SSH_ASKPASS", "LLM_AGENT_ASKPASS", "DISPLAY", "SSH_ASKPASS_REQUIRE":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// Result is the outcome of a command.
type Result struct {
	Code           int
	Stdout, Stderr string
}

// Run runs a command with env and stdin, and returns its exit code and
// output. It fails the test only if the command cannot be started or runs
// longer than 60 s.
func Run(t testing.TB, env []string, stdin string, name string, args ...string) Result {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = env
	return RunCmd(t, cmd, stdin, 60*time.Second)
}

// RunCmd runs a prepared command with stdin and returns its exit code and
// output; it fails t if the command cannot start or outlives limit (a
// hang), saying what it had printed by then.
func RunCmd(t testing.TB, cmd *exec.Cmd, stdin string, limit time.Duration) Result {
	t.Helper()
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", cmd.Path, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(limit):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s ran longer than %v (a hang); stdout %q stderr %q", strings.Join(cmd.Args, " "), limit, out.String(), errb.String())
	}
	return Result{Code: cmd.ProcessState.ExitCode(), Stdout: out.String(), Stderr: errb.String()}
}

// Client runs llm-agent-client against the agent.
func (a *Agent) Client(t testing.TB, stdin string, args ...string) Result {
	t.Helper()
	return Run(t, a.Env(), stdin, a.client, args...)
}

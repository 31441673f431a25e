package service

import (
	"bufio"
	"bytes"
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

	"github.com/llm-agent/llm-agent/internal/agenttest"
)

// The binaries, built once for the tests that run them.
var (
	buildOnce sync.Once
	built     agenttest.Bins
	buildErr  error
)

func bins(t *testing.T) agenttest.Bins {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs llm-agent; not with -short")
	}
	buildOnce.Do(func() { built, buildErr = agenttest.Build(repoRoot) })
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.Dir != "" {
		os.RemoveAll(built.Dir)
	}
	os.Exit(code)
}

// unitSpec is what the printed units say about starting the agent.
type unitSpec struct {
	argv       []string // ExecStart, %t expanded
	listen     []string // the .socket's ListenStream paths, %t expanded
	socketMode os.FileMode
	dirMode    os.FileMode
	fdName     string
	noNewPrivs bool   // NoNewPrivileges=yes
	umask      string // UMask=
}

// parseUnits reads the printed units as systemd would for the keys that
// start the agent, with %t (XDG_RUNTIME_DIR) as runtime.
func parseUnits(t *testing.T, serviceText, socketText, runtime string) unitSpec {
	t.Helper()
	expand := func(s string) string {
		s = strings.ReplaceAll(s, "%t", runtime)
		if strings.Contains(strings.ReplaceAll(s, "%%", ""), "%") {
			t.Fatalf("unexpected specifier in %q", s)
		}
		return strings.ReplaceAll(s, "%%", "%")
	}
	mode := func(s string) os.FileMode {
		n, err := strconv.ParseUint(s, 8, 32)
		if err != nil {
			t.Fatalf("mode %q: %v", s, err)
		}
		return os.FileMode(n)
	}
	var u unitSpec
	for _, line := range strings.Split(serviceText+socketText, "\n") {
		key, val, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		switch key {
		case "ExecStart":
			if u.argv != nil {
				t.Fatal("two ExecStart lines")
			}
			for _, w := range strings.Fields(val) {
				u.argv = append(u.argv, expand(w))
			}
		case "ListenStream":
			u.listen = append(u.listen, expand(val))
		case "SocketMode":
			u.socketMode = mode(val)
		case "DirectoryMode":
			u.dirMode = mode(val)
		case "FileDescriptorName":
			u.fdName = val
		case "NoNewPrivileges":
			u.noNewPrivs = val == "yes"
		case "UMask":
			u.umask = val
		case "Type", "Restart", "Requires", "After", "Also", "WantedBy", "Description", "Documentation", "RemoveOnStop":
		default:
			t.Fatalf("the test does not apply %s= as systemd would; teach parseUnits", key)
		}
	}
	if len(u.argv) == 0 || len(u.listen) == 0 {
		t.Fatalf("no ExecStart or ListenStream in the printed units:\n%s\n%s", serviceText, socketText)
	}
	return u
}

// listenAsSystemd creates the socket unit's sockets as systemd does: the
// directory with DirectoryMode, each socket with SocketMode from the
// start (under a umask that grants nothing more).
func listenAsSystemd(t *testing.T, u unitSpec) []*os.File {
	t.Helper()
	var files []*os.File
	for _, p := range u.listen {
		if err := os.MkdirAll(filepath.Dir(p), u.dirMode); err != nil {
			t.Fatal(err)
		}
		old := syscall.Umask(0o777 &^ int(u.socketMode))
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
		syscall.Umask(old)
		if err != nil {
			t.Fatal(err)
		}
		l.SetUnlinkOnClose(false)
		t.Cleanup(func() { l.Close() })
		f, err := l.File()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		files = append(files, f)
	}
	return files
}

// activated is the agent started with sockets passed to it.
type activated struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	lines  []string // its eval lines
}

// startPassed runs argv with files as fds 3 and on and LISTEN_FDS set; a
// shell sets LISTEN_PID to its own pid and execs argv, as the service
// manager sets it to the pid of the process it starts (pid is "$$" for
// that, or a number). umask, when not empty, is set first.
func startPassed(t *testing.T, argv []string, files []*os.File, env []string, pid, umask string) *activated {
	t.Helper()
	a := &activated{stderr: &bytes.Buffer{}}
	script := `LISTEN_PID=` + pid + `; export LISTEN_PID; exec "$@"`
	if umask != "" {
		script = "umask " + umask + "; " + script
	}
	a.cmd = exec.Command("/bin/sh", append([]string{"-c", script, "sh"}, argv...)...)
	a.cmd.ExtraFiles = files
	a.cmd.Env = append(agenttest.CleanEnv(), env...)
	a.cmd.Stderr = a.stderr
	out, err := a.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if a.cmd.ProcessState == nil {
			a.cmd.Process.Kill()
			a.cmd.Wait()
		}
	})
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		a.lines = append(a.lines, sc.Text())
		if strings.HasPrefix(sc.Text(), "echo Agent pid") {
			break
		}
	}
	go io.Copy(io.Discard, out)
	return a
}

// wait waits for the agent to exit (at most a minute: a hang) and returns
// its exit code.
func (a *activated) wait(t *testing.T) int {
	t.Helper()
	done := make(chan struct{})
	go func() { a.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		a.cmd.Process.Kill()
		<-done
		t.Fatalf("the agent did not exit; stderr %q", a.stderr.String())
	}
	return a.cmd.ProcessState.ExitCode()
}

// TestStartedAsTheUnitStartsIt starts the agent exactly as the printed
// units say: the sockets of llm-agent.socket, created as systemd does,
// passed as fds 3 and 4 with LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES, to
// ExecStart's command line. The client then works on the fixed path, and
// SIGTERM stops the agent cleanly, leaving the sockets to the socket unit.
func TestStartedAsTheUnitStartsIt(t *testing.T) {
	b := bins(t)
	print := func(kind string) string {
		r := agenttest.Run(t, agenttest.CleanEnv(), "", b.Agent, "--print-service", kind)
		if r.Code != 0 || r.Stderr != "" {
			t.Fatalf("--print-service %s: exit %d, %s", kind, r.Code, r.Stderr)
		}
		return r.Stdout
	}
	serviceText, socketText := print(KindSystemd), print(KindSystemdSocket)
	VerifyUnits(t, serviceText, socketText)

	rt := socketDir(t) // XDG_RUNTIME_DIR
	u := parseUnits(t, serviceText, socketText, rt)
	sock := filepath.Join(rt, "llm-agent", "agent.sock")
	if u.argv[0] != b.Agent || strings.Join(u.argv[1:], " ") != "-D -a "+sock {
		t.Fatalf("ExecStart %q, want %s -D -a %s", u.argv, b.Agent, sock)
	}
	if len(u.listen) != 2 || u.listen[0] != sock || u.listen[1] != sock+".admin" || u.socketMode != 0o600 || u.dirMode != 0o700 {
		t.Fatalf("socket unit: %+v", u)
	}
	files := listenAsSystemd(t, u)
	names := "LISTEN_FDNAMES=" + u.fdName + ":" + u.fdName
	env := []string{"LISTEN_FDS=2", names, "XDG_RUNTIME_DIR=" + rt}

	// The service's own settings, as far as they reach the process:
	// NoNewPrivileges through setpriv, which execs in place (the pid
	// stays LISTEN_PID), so Debian's setgid ssh-agent runs without its
	// group, as under systemd.
	argv := u.argv
	if u.noNewPrivs {
		setpriv := need(t, "setpriv", "util-linux")
		argv = append([]string{setpriv, "--no-new-privs"}, argv...)
	}
	a := startPassed(t, argv, files, env, "$$", u.umask)
	want := fmt.Sprintf("echo Agent pid %d;", a.cmd.Process.Pid)
	if len(a.lines) == 0 || a.lines[len(a.lines)-1] != want || a.lines[0] != "LLM_AUTH_SOCK="+sock+"; export LLM_AUTH_SOCK;" {
		a.cmd.Process.Kill()
		a.wait(t)
		t.Fatalf("eval lines %q, want LLM_AUTH_SOCK=%s ... %s; stderr %q", a.lines, sock, want, a.stderr.String())
	}

	cenv := append(agenttest.CleanEnv(), "LLM_AUTH_SOCK="+sock)
	client := func(stdin string, args ...string) agenttest.Result {
		t.Helper()
		r := agenttest.Run(t, cenv, stdin, b.Client, args...)
		if r.Code != 0 {
			t.Fatalf("llm-agent-client %s: exit %d, %s", strings.Join(args, " "), r.Code, r.Stderr)
		}
		return r
	}
	if r := client("", "status"); !strings.Contains(r.Stdout, sock) || !strings.Contains(r.Stdout, "use-only: no") {
		t.Errorf("status (through the admin socket the unit made): %q", r.Stdout)
	}
	const secret = "sk-service-test-0123456789"
	client(secret+"\n", "add", "openai")
	if r := client("", "list"); !strings.Contains(r.Stdout, "openai") {
		t.Errorf("list: %q", r.Stdout)
	}
	if r := client("", "get", "openai"); strings.TrimSpace(r.Stdout) != secret {
		t.Errorf("get: %q", r.Stdout)
	}
	noListenEnvInChildren(t, a.cmd.Process.Pid)
	if status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", a.cmd.Process.Pid)); u.noNewPrivs && (err != nil || !strings.Contains(string(status), "\nNoNewPrivs:\t1\n")) {
		t.Errorf("the agent does not run with no_new_privs, as the unit says: %v", err)
	}

	a.cmd.Process.Signal(syscall.SIGTERM)
	if code := a.wait(t); code != 0 || a.stderr.Len() != 0 {
		t.Fatalf("after SIGTERM: exit %d, stderr %q", code, a.stderr.String())
	}
	for _, p := range u.listen {
		if fi, err := os.Lstat(p); err != nil || fi.Mode().Type() != os.ModeSocket {
			t.Errorf("%s: %v; the socket unit's sockets must outlive the agent", p, err)
		}
	}

	// Started again on the same sockets, as the next connection makes
	// systemd do: a fresh, empty agent.
	a = startPassed(t, argv, files, env, "$$", u.umask)
	// list exits 1 with no credentials, as ssh-add -l with no keys.
	if r := agenttest.Run(t, cenv, "", b.Client, "list"); r.Code != 1 || strings.Contains(r.Stdout, "openai") {
		t.Errorf("list after a restart: exit %d, %q %q", r.Code, r.Stdout, r.Stderr)
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	if code := a.wait(t); code != 0 {
		t.Fatalf("second agent after SIGTERM: exit %d, stderr %q", code, a.stderr.String())
	}
}

// noListenEnvInChildren: the agent's children (its SSH-key ssh-agent)
// got no LISTEN_ variable.
func noListenEnvInChildren(t *testing.T, pid int) {
	t.Helper()
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	seen := 0
	for _, task := range tasks {
		b, _ := os.ReadFile(task)
		for _, child := range strings.Fields(string(b)) {
			env, err := os.ReadFile("/proc/" + child + "/environ")
			if err != nil {
				continue
			}
			seen++
			for _, kv := range bytes.Split(env, []byte{0}) {
				if bytes.HasPrefix(kv, []byte("LISTEN_")) {
					t.Errorf("child %s of the agent has %s", child, kv)
				}
			}
		}
	}
	t.Logf("%d children of the agent have no LISTEN_ variable", seen)
}

// TestPassedSocketsRefused: sockets passed to another pid, or not passed
// at all, or passed to the daemon mode, stop the agent with one line.
func TestPassedSocketsRefused(t *testing.T) {
	b := bins(t)
	rt := socketDir(t) // XDG_RUNTIME_DIR
	sock := filepath.Join(rt, "llm-agent", "agent.sock")
	u := unitSpec{listen: []string{sock, sock + ".admin"}, socketMode: 0o600, dirMode: 0o700}
	files := listenAsSystemd(t, u)
	names := "LISTEN_FDNAMES=" + FDName + ":" + FDName
	for _, tt := range []struct {
		name  string
		argv  []string
		files []*os.File
		env   []string
		pid   string
		want  string
	}{
		{"LISTEN_PID of another process", []string{b.Agent, "-D", "-a", sock}, files, []string{"LISTEN_FDS=2", names}, "1",
			"LISTEN_PID=1 names another process"},
		{"no fds", []string{b.Agent, "-D", "-a", sock}, nil, []string{"LISTEN_FDS=2", names}, "$$",
			"passed socket (fd 3)"},
		{"one fd", []string{b.Agent, "-D", "-a", sock}, files[:1], []string{"LISTEN_FDS=1", "LISTEN_FDNAMES=" + FDName}, "$$",
			"want 2 sockets"},
		{"-a elsewhere", []string{b.Agent, "-D", "-a", filepath.Join(rt, "other.sock")}, files, []string{"LISTEN_FDS=2", names}, "$$",
			"is not the passed socket"},
		{"a name of another unit", []string{b.Agent, "-D", "-a", sock}, files, []string{"LISTEN_FDS=2", "LISTEN_FDNAMES=" + FDName + ":other"}, "$$",
			`named "other"`},
		{"daemon mode", []string{b.Agent, "-a", sock}, files, []string{"LISTEN_FDS=2", names}, "$$",
			"need -D"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := startPassed(t, tt.argv, tt.files, tt.env, tt.pid, "")
			code := a.wait(t)
			msg := a.stderr.String()
			if code != 1 || strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "llm-agent: ") || !strings.Contains(msg, tt.want) {
				t.Fatalf("exit %d, stderr %q; want 1 and one line with %q", code, msg, tt.want)
			}
			if len(a.lines) != 0 {
				t.Errorf("printed %q before refusing", a.lines)
			}
		})
	}
	for _, p := range u.listen {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("a refusal removed %s: %v", p, err)
		}
	}
}

// TestSocketActivate runs the agent under systemd's own
// systemd-socket-activate, which makes the sockets, waits for the first
// connection and then execs ExecStart's command with LISTEN_ variables of
// its own making.
func TestSocketActivate(t *testing.T) {
	b := bins(t)
	activate := need(t, "systemd-socket-activate", "systemd")
	rt := socketDir(t) // XDG_RUNTIME_DIR
	sock := filepath.Join(rt, "llm-agent", "agent.sock")
	if err := os.Mkdir(filepath.Dir(sock), 0o700); err != nil {
		t.Fatal(err)
	}
	args := []string{"-l", sock, "-l", sock + ".admin", "--fdname=" + FDName + ":" + FDName, b.Agent, "-D", "-a", sock}
	cmd := exec.Command(activate, args...)
	cmd.Env = agenttest.CleanEnv()
	stderr := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = io.Discard, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &activated{cmd: cmd, stderr: stderr}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	// It binds with mode 0644 (no SocketMode= here); the agent would
	// refuse that, so make them 0600 before the first connection.
	for _, p := range []string{sock, sock + ".admin"} {
		for i := 0; ; i++ {
			if _, err := os.Lstat(p); err == nil {
				break
			}
			if i == 3000 || cmd.ProcessState != nil { // 30 s: a hang
				t.Fatalf("systemd-socket-activate made no %s: %s", p, stderr.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := os.Chmod(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cenv := append(agenttest.CleanEnv(), "LLM_AUTH_SOCK="+sock)
	if r := agenttest.Run(t, cenv, "", b.Client, "status"); r.Code != 0 || !strings.Contains(r.Stdout, "use-only: no") {
		t.Fatalf("status: exit %d %q %q; systemd-socket-activate: %s", r.Code, r.Stdout, r.Stderr, stderr.String())
	}
	if r := agenttest.Run(t, cenv, "sk-activate-test\n", b.Client, "add", "anthropic"); r.Code != 0 {
		t.Fatalf("add: exit %d %q", r.Code, r.Stderr)
	}
	if r := agenttest.Run(t, cenv, "", b.Client, "get", "anthropic"); strings.TrimSpace(r.Stdout) != "sk-activate-test" {
		t.Fatalf("get: %q %q", r.Stdout, r.Stderr)
	}
	cmd.Process.Signal(syscall.SIGTERM) // the agent: systemd-socket-activate execs it
	if code := a.wait(t); code != 0 {
		t.Fatalf("after SIGTERM: exit %d; %s", code, stderr.String())
	}
}

// TestInstallServiceCommand runs llm-agent --install-service into a
// temporary HOME and XDG_CONFIG_HOME: it writes what --print-service
// prints, says how to enable it, and keeps a different file unless
// --force.
func TestInstallServiceCommand(t *testing.T) {
	b := bins(t)
	home := t.TempDir()
	cfg := filepath.Join(home, "cfg")
	env := append(agenttest.CleanEnv(), "HOME="+home, "XDG_CONFIG_HOME="+cfg)
	run := func(args ...string) agenttest.Result {
		return agenttest.Run(t, env, "", b.Agent, args...)
	}
	dir := filepath.Join(cfg, "systemd", "user")
	r := run("--install-service")
	if r.Code != 0 || r.Stderr != "" {
		t.Fatalf("--install-service: exit %d %q", r.Code, r.Stderr)
	}
	for _, want := range []string{
		"wrote " + filepath.Join(dir, ServiceUnit) + "\n",
		"wrote " + filepath.Join(dir, SocketUnit) + "\n",
		"    systemctl --user enable --now llm-agent.socket\n",
		`    export LLM_AUTH_SOCK="$XDG_RUNTIME_DIR/llm-agent/agent.sock"` + "\n",
	} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.Stdout)
		}
	}
	for kind, name := range map[string]string{KindSystemd: ServiceUnit, KindSystemdSocket: SocketUnit} {
		printed := run("--print-service", kind)
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != printed.Stdout {
			t.Errorf("%s is not what --print-service %s prints: %v", name, kind, err)
		}
	}
	if r := run("--install-service"); r.Code != 0 || !strings.Contains(r.Stdout, "unchanged "+filepath.Join(dir, ServiceUnit)) {
		t.Errorf("again: exit %d %q %q", r.Code, r.Stdout, r.Stderr)
	}
	os.WriteFile(filepath.Join(dir, ServiceUnit), []byte("# mine\n"), 0o644)
	r = run("--install-service")
	if r.Code != 1 || strings.Count(r.Stderr, "\n") != 1 || !strings.Contains(r.Stderr, "--force") {
		t.Errorf("over a different file: exit %d %q", r.Code, r.Stderr)
	}
	if r := run("--install-service", "--force"); r.Code != 0 || !strings.Contains(r.Stdout, "wrote "+filepath.Join(dir, ServiceUnit)) {
		t.Errorf("--force: exit %d %q %q", r.Code, r.Stdout, r.Stderr)
	}
	r = run("--print-service", KindSystemd, "--service-program", PackagedProgram)
	if r.Code != 0 || !strings.Contains(r.Stdout, "\nExecStart=/usr/bin/llm-agent -D -a %t/llm-agent/agent.sock\n") {
		t.Errorf("--service-program: exit %d %q", r.Code, r.Stderr)
	}
	r = run("--print-service", KindLaunchd)
	if r.Code != 0 || !strings.Contains(r.Stdout, "<string>"+filepath.Join(home, ".llm-agent", "agent.sock")+"</string>") {
		t.Errorf("launchd: exit %d %q %q", r.Code, r.Stdout, r.Stderr)
	}
	for _, bad := range [][]string{
		{"--print-service", "upstart"},
		{"--print-service", KindSystemd, "-t", "1h"},
		{"--print-service", KindSystemd, "--install-service"},
		{"--print-service", KindSystemd, "--force"},
		{"--install-service", "bash"},
		{"--service-program", PackagedProgram},
		{"--print-service", KindSystemd, "--service-program", "bin/llm-agent"},
	} {
		if r := run(bad...); r.Code != 1 || !strings.HasPrefix(r.Stderr, "llm-agent: ") || r.Stdout != "" {
			t.Errorf("%q: exit %d stdout %q stderr %q", bad, r.Code, r.Stdout, r.Stderr)
		}
	}
}

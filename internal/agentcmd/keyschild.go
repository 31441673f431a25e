package agentcmd

import (
	"bufio"
	"bytes"
	"debug/buildinfo"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/llm-agent/llm-agent/internal/peercred"
)

// keysChild is the private OpenSSH ssh-agent that holds the SSH keys, so
// that they behave exactly as with OpenSSH (every key type, FIDO through
// its ssh-sk-helper, PKCS#11, -c, -t, -h with session-bind). Only this
// uid can reach its socket: it lives in the 0700 directory ssh-agent makes
// for it.
type keysChild struct {
	cmd *exec.Cmd
	// mu guards dir and sock, set once the child serves and read when it
	// exits.
	mu   sync.Mutex
	dir  string
	sock string
	done chan struct{} // closed when the child has exited
	// watch is the write end of the watcher's pipe (see startWatcher).
	watch *os.File
}

// keysChildEnv marks the environment of the SSH-key child. llm-agent
// started with it is its own child (a wrapper script named ssh-agent that
// runs llm-agent), and refuses to start another: two such wrappers, or two
// copies, early in PATH would start each other without end.
const keysChildEnv = "LLM_AGENT_SSH_KEYS_CHILD"

// llmAgentMain is the main package of llm-agent, as a Go binary records it.
const llmAgentMain = "github.com/llm-agent/llm-agent/cmd/llm-agent"

// findSSHAgent resolves --ssh-agent: "" means ssh-agent on PATH (or, with
// PATH unset, the system's default path, as execvp searches), skipping
// llm-agent itself (see isLLMAgent), so that a symlink or a copy named
// ssh-agent does not start llm-agent again; "none" means no child. It
// returns "" when there is none.
func findSSHAgent(flag string) (string, error) {
	switch {
	case flag == "none":
		return "", nil
	case flag != "":
		p, err := exec.LookPath(flag)
		if err != nil {
			return "", fmt.Errorf("--ssh-agent: %w", err)
		}
		if isLLMAgent(p) {
			return "", fmt.Errorf("--ssh-agent %s is llm-agent itself", flag)
		}
		return filepath.Abs(p)
	}
	path, ok := os.LookupEnv("PATH")
	if !ok {
		path = "/bin:/usr/bin"
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" || !filepath.IsAbs(dir) {
			continue // never a relative directory for a program we trust with keys
		}
		p := filepath.Join(dir, "ssh-agent")
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 || isLLMAgent(p) {
			continue
		}
		return p, nil
	}
	return "", nil
}

// isLLMAgent reports whether path is this executable (same device and
// inode) or another build of llm-agent (a copy, another version), by the
// main package its Go build information names.
func isLLMAgent(path string) bool {
	if self(path) {
		return true
	}
	bi, err := buildinfo.ReadFile(path)
	return err == nil && bi.Path == llmAgentMain
}

// self reports whether path is this process's own executable (same device
// and inode).
func self(path string) bool {
	exe, err := os.Executable()
	if err != nil {
		return false
	}
	a, err1 := os.Stat(exe)
	b, err2 := os.Stat(path)
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}

// startKeysChild starts path as `ssh-agent -D -s` (-d when debug) with
// ssh-agent's own options from o, reads the socket it made from its first
// line, and waits until it answers. ssh-agent makes the socket in a fresh
// 0700 directory of its own under TMPDIR and removes both when it gets
// SIGTERM, so nothing is left behind even when the agent is killed (the
// child then gets SIGTERM from Pdeathsig or, for a setgid ssh-agent, from
// its watcher). Its standard error goes to
// logger line by line (nil: nowhere).
func startKeysChild(path string, o *options, logger *log.Logger) (*keysChild, error) {
	k := &keysChild{done: make(chan struct{})}
	mode := "-D"
	if logger != nil {
		mode = "-d"
	}
	args := []string{mode, "-s"}
	args = append(args, o.childOptions("-E", "-P", "-O")...)
	if o.life != "" {
		args = append(args, "-t", o.life)
	}
	k.cmd = exec.Command(path, args...)
	k.cmd.Dir = "/"
	k.cmd.Env = append(os.Environ(), keysChildEnv+"=1")
	if ask := os.Getenv("LLM_AGENT_ASKPASS"); ask != "" {
		// One askpass confirms every use, SSH keys' (-c) included; ours
		// runs without a display, so the child's must too.
		k.cmd.Env = append(k.cmd.Env, "SSH_ASKPASS="+ask, "SSH_ASKPASS_REQUIRE=force")
	}
	k.cmd.SysProcAttr = childAttr()
	stdout, err := k.cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("ssh-agent child: %w", err)
	}
	pipesDone := []chan struct{}{make(chan struct{})}
	said := &firstLine{}
	if logger == nil {
		// Its first line of complaint, for our one-line error when it
		// fails to start.
		k.cmd.Stderr = said
	} else {
		r, err := k.cmd.StderrPipe()
		if err != nil {
			return nil, fmt.Errorf("ssh-agent child: %w", err)
		}
		logDone := make(chan struct{})
		pipesDone = append(pipesDone, logDone)
		go relayLog(r, logger, logDone)
	}
	if err := k.cmd.Start(); err != nil {
		return nil, fmt.Errorf("ssh-agent child: %w", err)
	}
	sockLine := make(chan string, 1)
	var named string
	go func() {
		defer close(pipesDone[0])
		br := bufio.NewReader(stdout)
		line, _ := br.ReadString('\n')
		sockLine <- line
		io.Copy(io.Discard, br)
	}()
	if err := k.startWatcher(); err != nil {
		k.cmd.Process.Kill()
		k.cmd.Wait()
		return nil, err
	}
	go func() {
		for _, d := range pipesDone {
			<-d // Wait closes the pipes: read them to the end first
		}
		k.cmd.Wait()
		// The child is gone: the watcher must not signal its pid, which
		// another process may get.
		io.WriteString(k.watch, "stop\n")
		k.watch.Close()
		// Killed (SIGKILL, the OOM killer), it leaves its socket and
		// directory behind; ssh-agent removes both itself on SIGTERM.
		k.removeSocket()
		close(k.done)
	}()
	timeout := time.After(10 * time.Second)
	select {
	case line := <-sockLine:
		sock, ok := strings.CutPrefix(line, "SSH_AUTH_SOCK=")
		sock, _, cut := strings.Cut(sock, ";")
		if !ok || !cut || !filepath.IsAbs(sock) {
			k.stop()
			return nil, fmt.Errorf("ssh-agent child %s printed %q, not its socket%s", path, line, said.quoted())
		}
		// k.sock and k.dir, which stop removes, are set once the child
		// is seen to serve there: a bogus line must not make us remove
		// someone else's socket.
		named = sock
	case <-timeout:
		k.stop()
		return nil, errors.New("ssh-agent child does not say where its socket is")
	}
	for ; ; time.Sleep(10 * time.Millisecond) {
		c, err := net.DialTimeout("unix", named, time.Second)
		if err == nil {
			err = k.servedByChild(c.(*net.UnixConn), named)
			c.Close()
			if err != nil {
				k.stop()
				return nil, fmt.Errorf("ssh-agent child %s: %w", path, err)
			}
			k.mu.Lock()
			k.sock, k.dir = named, filepath.Dir(named)
			k.mu.Unlock()
			select {
			case <-k.done:
				// It died before k.sock was set: nothing removed them.
				k.removeSocket()
			default:
			}
			return k, nil
		}
		select {
		case <-k.done:
			k.stop()
			return nil, fmt.Errorf("ssh-agent child %s exited before serving: %v%s", path, k.cmd.ProcessState, said.quoted())
		case <-timeout:
			k.stop()
			return nil, errors.New("ssh-agent child does not answer on its socket")
		default:
		}
	}
}

// watcherScript waits on fd 3 (the pipe whose only writer is this
// process) in a background subshell, so that the shell that starts it
// exits at once and the watcher is not our child; end of file means this
// process is gone, and the child gets SIGTERM; "stop" means the child
// ended first.
const watcherScript = `exec 3<&0; (read line <&3; [ "$line" = stop ] || kill -TERM "$1") </dev/null >/dev/null 2>&1 &`

// startWatcher starts a shell that sends the child SIGTERM when this
// process goes away in any way, SIGKILL included. Pdeathsig alone does
// not do it: the kernel clears it at the execve of a set-group-ID
// program, and Debian installs ssh-agent setgid _ssh; a killed llm-agent
// would leave its ssh-agent running, holding the keys, with its socket.
func (k *keysChild) startWatcher() error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("ssh-agent child: watcher: %w", err)
	}
	defer r.Close()
	cmd := exec.Command("/bin/sh", "-c", watcherScript, "sh", strconv.Itoa(k.cmd.Process.Pid))
	cmd.Stdin, cmd.Dir, cmd.Env = r, "/", []string{"PATH=/usr/bin:/bin"}
	if err := cmd.Run(); err != nil {
		w.Close()
		return fmt.Errorf("ssh-agent child: starting its watcher (/bin/sh): %w", err)
	}
	k.watch = w
	return nil
}

// servedByChild checks that the socket the child named is served by the
// child itself, not by another process (another user's agent, the owner's
// own ssh-agent) that a bogus first line points at: SSH keys and lock
// passphrases are about to go there.
func (k *keysChild) servedByChild(c *net.UnixConn, sock string) error {
	p, err := peercred.FromConn(c)
	if err != nil {
		return fmt.Errorf("checking who serves %s: %w", sock, err)
	}
	defer p.Close()
	if p.PID != k.cmd.Process.Pid || p.UID != uint32(os.Getuid()) {
		return fmt.Errorf("it names the socket %s, which pid %d (uid %d) serves, not the child (pid %d)",
			sock, p.PID, p.UID, k.cmd.Process.Pid)
	}
	return nil
}

// firstLine keeps the first line written to it (at most 200 bytes) and
// discards the rest.
type firstLine struct {
	mu   sync.Mutex
	line []byte
	done bool
}

// Write always reports all of p written: a short count would stop the
// copy from the child's stderr, whose pipe would then fill and block it.
func (f *firstLine) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.done {
		keep := p
		if i := bytes.IndexByte(keep, '\n'); i >= 0 {
			keep, f.done = keep[:i], true
		}
		f.line = append(f.line, keep[:min(len(keep), 200-len(f.line))]...)
		f.done = f.done || len(f.line) == 200
	}
	return len(p), nil
}

// quoted is ": " and the line, quoted, or "" when nothing was written.
func (f *firstLine) quoted() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.line) == 0 {
		return ""
	}
	return fmt.Sprintf(": it said %q", strings.TrimRight(string(f.line), "\r"))
}

// relayLog copies the child's log lines to logger, which carries
// llm-agent's prefix (ssh-agent -d ends them with CR LF).
func relayLog(r io.Reader, logger *log.Logger, done chan struct{}) {
	defer close(done)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		logger.Printf("ssh-agent: %s", strings.TrimRight(sc.Text(), "\r"))
	}
}

// stop ends the child and removes its socket and directory, if the child
// did not.
func (k *keysChild) stop() {
	if k.cmd.Process != nil {
		k.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-k.done:
		case <-time.After(5 * time.Second):
			k.cmd.Process.Kill()
			<-k.done
		}
	}
	k.removeSocket()
}

// removeSocket removes the child's socket and its directory, once it is
// known to be the child's (see startKeysChild), if they are still there.
// The directory goes only if it is empty.
func (k *keysChild) removeSocket() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.sock != "" {
		os.Remove(k.sock)
		os.Remove(k.dir)
	}
}

// childOptions are ssh-agent's -E, -P and -O as given, under the flag
// names hash, providers and opt: ssh-agent's own for the SSH-key child,
// hidden long ones for our re-executed daemon.
func (o *options) childOptions(hash, providers, opt string) []string {
	var args []string
	if o.hash != "" {
		args = append(args, hash, o.hash)
	}
	if o.providers != "" {
		args = append(args, providers, o.providers)
	}
	for _, v := range o.agentOpts {
		args = append(args, opt, v)
	}
	return args
}

package agentcmd

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// keysChild is the private OpenSSH ssh-agent that holds the SSH keys, so
// that they behave exactly as with OpenSSH (every key type, FIDO through
// its ssh-sk-helper, PKCS#11, -c, -t, -h with session-bind). Only this
// uid can reach its socket: it lives in the 0700 directory ssh-agent makes
// for it.
type keysChild struct {
	cmd  *exec.Cmd
	dir  string
	sock string
	done chan struct{} // closed when the child has exited
}

// findSSHAgent resolves --ssh-agent: "" means ssh-agent on PATH (or, with
// PATH unset, the system's default path, as execvp searches), skipping
// this very executable by device and inode, so that a symlink named
// ssh-agent to llm-agent does not start itself; "none" means no child. It
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
		if self(p) {
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
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 || self(p) {
			continue
		}
		return p, nil
	}
	return "", nil
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
// child then gets SIGTERM from Pdeathsig). Its standard error goes to
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
	if ask := os.Getenv("LLM_AGENT_ASKPASS"); ask != "" {
		// One askpass confirms every use, SSH keys' (-c) included; ours
		// runs without a display, so the child's must too.
		k.cmd.Env = append(os.Environ(), "SSH_ASKPASS="+ask, "SSH_ASKPASS_REQUIRE=force")
	}
	k.cmd.SysProcAttr = childAttr()
	stdout, err := k.cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("ssh-agent child: %w", err)
	}
	pipesDone := []chan struct{}{make(chan struct{})}
	if logger != nil {
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
	go func() {
		defer close(pipesDone[0])
		br := bufio.NewReader(stdout)
		line, _ := br.ReadString('\n')
		sockLine <- line
		io.Copy(io.Discard, br)
	}()
	go func() {
		for _, d := range pipesDone {
			<-d // Wait closes the pipes: read them to the end first
		}
		k.cmd.Wait()
		close(k.done)
	}()
	timeout := time.After(10 * time.Second)
	select {
	case line := <-sockLine:
		sock, ok := strings.CutPrefix(line, "SSH_AUTH_SOCK=")
		sock, _, cut := strings.Cut(sock, ";")
		if !ok || !cut || !filepath.IsAbs(sock) {
			k.stop()
			return nil, fmt.Errorf("ssh-agent child %s printed %q, not its socket", path, line)
		}
		k.sock, k.dir = sock, filepath.Dir(sock)
	case <-timeout:
		k.stop()
		return nil, errors.New("ssh-agent child does not say where its socket is")
	}
	for ; ; time.Sleep(10 * time.Millisecond) {
		c, err := net.DialTimeout("unix", k.sock, time.Second)
		if err == nil {
			c.Close()
			return k, nil
		}
		select {
		case <-k.done:
			k.stop()
			return nil, fmt.Errorf("ssh-agent child %s exited before serving: %v", path, k.cmd.ProcessState)
		case <-timeout:
			k.stop()
			return nil, errors.New("ssh-agent child does not answer on its socket")
		default:
		}
	}
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
	os.Remove(k.sock)
	os.Remove(k.dir)
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

package clientcmd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/llm-agent/llm-agent/internal/daemon"
	"github.com/llm-agent/llm-agent/internal/guard"
	"github.com/llm-agent/llm-agent/protocol"
)

// guardOptions are guard's flags.
type guardOptions struct {
	csh, sh, fg  bool
	allow        []string
	logFile, dir string
	keep, child  bool
	upstream     string
	leader       int
}

// guardFlags defines guard's flags into o.
func guardFlags(e *env, o *guardOptions) *pflag.FlagSet {
	fs := flagSet(e, "guard", "[-c | -s] [-D] [--allow-exe PATH]... [--log FILE] [--dir DIR] [--keep-forwarded-socket]")
	fs.BoolVarP(&o.csh, "csh", "c", false, "print C-shell commands")
	fs.BoolVarP(&o.sh, "sh", "s", false, "print Bourne shell commands")
	fs.BoolVarP(&o.fg, "foreground", "D", false, "stay in the foreground")
	fs.StringArrayVar(&o.allow, "allow-exe", nil, "also serve processes running `PATH`, whatever their login (repeatable)")
	fs.StringVar(&o.logFile, "log", "", "append refusals and events to `file` (default DIR/guard.log)")
	fs.StringVar(&o.dir, "dir", "", "base `directory` of the stable sockets (default $XDG_RUNTIME_DIR/llm-agent, else ~/.llm-agent)")
	fs.BoolVar(&o.keep, "keep-forwarded-socket", false, "leave the forwarded socket's path in place (other processes of the account can then use it)")
	fs.BoolVar(&o.child, "daemon-child", false, "")
	fs.StringVar(&o.upstream, "upstream", "", "")
	fs.IntVar(&o.leader, "login-leader", 0, "")
	fs.MarkHidden("daemon-child")
	fs.MarkHidden("upstream")
	fs.MarkHidden("login-leader")
	return fs
}

func runGuard(e *env, args []string) (err error) {
	var o guardOptions
	fs := guardFlags(e, &o)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.csh && o.sh {
		return errors.New("-c and -s are mutually exclusive")
	}
	if fs.NArg() != 0 {
		return errors.New("guard takes no arguments")
	}
	if o.dir == "" {
		if x := e.getenv("XDG_RUNTIME_DIR"); x != "" {
			o.dir = filepath.Join(x, "llm-agent")
		} else if home, err := os.UserHomeDir(); err == nil {
			o.dir = filepath.Join(home, ".llm-agent")
		} else {
			return errors.New("no $XDG_RUNTIME_DIR or home directory for the guard's socket; use --dir")
		}
	}
	if o.logFile == "" {
		o.logFile = filepath.Join(o.dir, "guard.log")
	}
	timeout, err := agentTimeout(e)
	if err != nil {
		return err
	}
	cfg := guard.Config{Dir: o.dir, AllowExe: o.allow, KeepUpstream: o.keep, Timeout: timeout}

	if o.child {
		cfg.Upstream, cfg.Leader = o.upstream, o.leader
		return guardChild(cfg, o.logFile)
	}

	upstream, viaSSH, err := guardUpstream(e, o.dir)
	if errors.Is(err, errNothingToGuard) {
		// A plain ssh-agent was forwarded: it holds no LLM credentials,
		// and the profile snippet must leave it alone.
		fmt.Fprintf(e.stderr, "llm-agent-client: guard: SSH_AUTH_SOCK is a plain ssh agent, not an llm-agent; nothing to guard\n")
		return nil
	}
	if err != nil {
		return err
	}
	cfg.Upstream = upstream
	// Fail closed: a guard that cannot start takes the forwarded socket
	// out of reach, so that no login goes on with it unguarded.
	defer func() {
		if err != nil && !o.keep {
			os.Remove(upstream)
		}
	}()
	cshStyle := o.csh || (!o.sh && strings.HasSuffix(e.getenv("SHELL"), "csh"))
	if o.fg {
		logw, err := openGuardLog(o.logFile, o.dir)
		if err != nil {
			return err
		}
		cfg.Log = multi{logw, e.stderr}
		var g *guard.Guard
		if g, err = guard.Start(cfg); err != nil {
			return err
		}
		printGuardEnv(e, cshStyle, g.Path, viaSSH, os.Getpid())
		return g.Serve()
	}
	var pid int
	var path string
	if pid, path, err = spawnGuard(args, upstream); err != nil {
		return err
	}
	printGuardEnv(e, cshStyle, path, viaSSH, pid)
	return nil
}

// guardUpstream finds the forwarded agent, as get does, and refuses to
// guard a guard.
func guardUpstream(e *env, dir string) (string, bool, error) {
	path, viaSSH := e.getenv("LLM_AUTH_SOCK"), false
	if path == "" {
		path, viaSSH = e.getenv("SSH_AUTH_SOCK"), true
	}
	if path == "" {
		return "", false, &noAgentError{errors.New("no forwarded agent: neither LLM_AUTH_SOCK nor SSH_AUTH_SOCK is set (on the laptop, connect with ssh -o ForwardAgent=$LLM_AUTH_SOCK, and check AllowAgentForwarding on the server)")}
	}
	// A guard's stable path is <dir>/<owner>/agent.sock; anything else
	// under dir (the README's -R recipe forwards to ~/.llm-agent/sock,
	// inside the default dir) is a forwarded socket to guard.
	if abs, err := filepath.Abs(path); err == nil && filepath.Base(abs) == "agent.sock" && filepath.Dir(filepath.Dir(abs)) == filepath.Clean(dir) {
		return "", false, errors.New("this shell already uses a guard (LLM_AUTH_SOCK is a guard's socket in " + dir + ")")
	}
	c, err := connect(e)
	if err != nil {
		return "", false, err
	}
	// The probe (see connect) needs a request to ride with.
	_, err = c.Status()
	c.Close()
	if errors.Is(err, protocol.ErrNotLLMAgent) {
		return "", false, errNothingToGuard
	}
	if err != nil {
		return "", false, err
	}
	return path, viaSSH, nil
}

var errNothingToGuard = errors.New("nothing to guard")

func printGuardEnv(e *env, csh bool, path string, viaSSH bool, pid int) {
	vars := [][2]string{{"LLM_AUTH_SOCK", path}}
	if viaSSH {
		// The forwarded socket is hidden now; nested ssh and ssh-add go
		// through the guard.
		vars = append(vars, [2]string{"SSH_AUTH_SOCK", path})
	}
	vars = append(vars, [2]string{"LLM_GUARD_PID", strconv.Itoa(pid)})
	for _, v := range vars {
		if csh {
			fmt.Fprintf(e.stdout, "setenv %s %s;\n", v[0], v[1])
		} else {
			fmt.Fprintf(e.stdout, "%s=%s; export %s;\n", v[0], v[1], v[0])
		}
	}
	fmt.Fprintf(e.stdout, "echo Guard pid %d;\n", pid)
}

// spawnGuard starts the guard as a daemon in its own session (it keeps the
// login's audit session id, which setsid does not change) and waits for it
// to report its socket.
func spawnGuard(args []string, upstream string) (int, string, error) {
	// The daemon leaves the login's session; tell it which one it guards.
	sid, err := guard.Getsid()
	if err != nil {
		return 0, "", err
	}
	return daemon.Spawn(daemon.Spec{
		Name:    "the guard",
		Args:    append([]string{"guard", "--daemon-child", "--upstream", upstream, "--login-leader", strconv.Itoa(sid)}, args...),
		ReadyFD: 3,
		Attr:    &syscall.SysProcAttr{Setsid: true},
		Timeout: 15 * time.Second,
	})
}

// guardChild is the daemon: it starts the guard, tells the parent on fd 3,
// and serves until the owner disconnects.
func guardChild(cfg guard.Config, logFile string) error {
	ready := os.NewFile(3, "ready")
	logw, err := openGuardLog(logFile, cfg.Dir)
	if err != nil {
		fmt.Fprintf(ready, "%v\n", err)
		return err
	}
	cfg.Log = logw
	g, err := guard.Start(cfg)
	if err != nil {
		fmt.Fprintf(ready, "%v\n", err)
		fmt.Fprintf(logw, "guard: %v\n", err)
		return err
	}
	fmt.Fprintf(logw, "guard: pid %d serving %s for owner %s\n", os.Getpid(), g.Path, g.Owner)
	fmt.Fprintf(ready, "ok %s\n", g.Path)
	ready.Close()
	return g.Serve()
}

func openGuardLog(path, dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("guard directory: %w", err)
	}
	// Refuse a base we would not serve from before writing the log there
	// (through a symlink, or into someone else's directory).
	if err := guard.CheckBase(dir); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("guard log: %w", err)
	}
	return f, nil
}

// multi writes to each writer, ignoring errors (log lines).
type multi []interface{ Write([]byte) (int, error) }

func (m multi) Write(p []byte) (int, error) {
	for _, w := range m {
		w.Write(p)
	}
	return len(p), nil
}

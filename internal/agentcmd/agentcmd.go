package agentcmd

import (
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/llm-agent/llm-agent/agent"
	"github.com/llm-agent/llm-agent/internal/child"
	"github.com/llm-agent/llm-agent/internal/completion"
	"github.com/llm-agent/llm-agent/internal/daemon"
	"github.com/llm-agent/llm-agent/internal/providers"
	"github.com/llm-agent/llm-agent/internal/service"
	"github.com/llm-agent/llm-agent/memsafe"
	"github.com/llm-agent/llm-agent/protocol"
)

const usage = `usage: llm-agent [-c | -s] [-Dd] [-a bind_address] [-t life] [-H known_hosts]
                 [--upstream path] [--ssh-agent path|none] [--audit-log file]
                 [--oauth-endpoint provider=url] [--command-timeout duration]
                 [--relay-upstream provider=url] [command [arg ...]]
       llm-agent [-c | -s] -k
       llm-agent --print-service systemd|systemd-socket|launchd [--service-program path]
       llm-agent --install-service [--force] [--service-program path]
`

// options are the parsed command line.
type options struct {
	bind      string
	csh, sh   bool
	fg, debug bool
	kill      bool
	life      string
	upstream  string
	sshAgent  string // --ssh-agent: the OpenSSH ssh-agent for SSH keys, or "none"
	auditLog  string
	known     []string
	endpoints []string // --oauth-endpoint PROVIDER=URL
	relayUps  []string // --relay-upstream PROVIDER=URL
	cmdTime   string   // --command-timeout
	command   []string

	// Starting at login (see service.go).
	printService   string // --print-service KIND
	installService bool   // --install-service
	force          bool   // --force: replace different unit files
	serviceProgram string // --service-program: the llm-agent the units run

	// names are the variables printed and read: llm-agent's, or
	// ssh-agent's under that name (see parseSSH).
	names names
	// ssh-agent's -E, -P and -O, passed on to the SSH-key child.
	hash      string
	providers string
	agentOpts []string

	// Internal: set on the re-executed daemon process.
	child     bool
	sshName   bool // the daemon of an agent invoked as ssh-agent
	parentPID int
	cleanDir  string
}

// Main runs llm-agent with args (without the program name) and returns
// the exit status. Invoked under the name ssh-agent (a symlink or a copy),
// it is a drop-in for OpenSSH's: see Named.
func Main(args []string) int { return Named(filepath.Base(os.Args[0]), args) }

// Named runs the agent as the program name: "ssh-agent" takes OpenSSH
// ssh-agent's command line and prints its variables, anything else is
// llm-agent's own interface.
func Named(name string, args []string) int {
	stderr := os.Stderr
	if name == "ssh-agent" {
		o, err := parseSSH(args)
		if err != nil {
			return sshParseFailure(err, stderr)
		}
		return run(o, stderr)
	}
	o, err := parse(args, stderr)
	if err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "llm-agent: %v\n", err)
		fmt.Fprint(stderr, usage)
		return 1
	}
	return run(o, stderr)
}

func run(o *options, stderr io.Writer) int {
	if os.Getenv(keysChildEnv) != "" && o.upstream == "" && o.sshAgent != "none" && !o.kill {
		// Started by another llm-agent as its SSH-key ssh-agent (through a
		// wrapper script): starting one more would loop.
		fmt.Fprintln(stderr, "llm-agent: started as the SSH-key ssh-agent of another llm-agent (an ssh-agent wrapper of llm-agent early in PATH?); give it OpenSSH's with --ssh-agent")
		return 1
	}
	if o.child {
		return runChild(o)
	}
	if o.kill {
		return kill(o, os.Stdout, stderr)
	}
	if o.printService != "" || o.installService {
		return serviceMain(o, os.Stdout, stderr)
	}
	return start(o, os.Stdout, stderr)
}

// Flags returns llm-agent's flag set, the one parse uses, for the shell
// completions of llm-agent-client: hidden flags stay hidden.
func Flags() *pflag.FlagSet { return flagSet(&options{}, io.Discard) }

// flagSet defines llm-agent's flags into o; usage goes to stderr.
func flagSet(o *options, stderr io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet("llm-agent", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SetInterspersed(false)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	fs.StringVarP(&o.bind, "bind-address", "a", "", "bind the agent to the Unix socket `path`")
	fs.BoolVarP(&o.csh, "csh", "c", false, "print C-shell commands")
	fs.BoolVarP(&o.sh, "sh", "s", false, "print Bourne shell commands")
	fs.BoolVarP(&o.fg, "foreground", "D", false, "stay in the foreground")
	fs.BoolVarP(&o.debug, "debug", "d", false, "debug mode: foreground, log requests to stderr")
	fs.BoolVarP(&o.kill, "kill", "k", false, "kill the agent named by LLM_AGENT_PID")
	fs.StringVarP(&o.life, "lifetime", "t", "", "default lifetime of credentials (90, 30m, 8h, 1h30m)")
	fs.StringVar(&o.upstream, "upstream", "", "serve SSH keys from the agent at `path` instead of an in-memory keyring")
	fs.StringVar(&o.sshAgent, "ssh-agent", "", "serve SSH keys with a private OpenSSH ssh-agent at `path` (default: ssh-agent on PATH), or none for the in-process keyring")
	fs.StringVar(&o.auditLog, "audit-log", "", "append JSON audit records to `file` (mode 0600)")
	fs.StringArrayVarP(&o.known, "known-hosts", "H", nil, "name hosts from known_hosts `file` (repeatable; default ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts)")
	fs.StringArrayVar(&o.relayUps, "relay-upstream", nil, "send relayed requests for `provider=url` to url (a gateway, a test server) instead of the provider's base URL; a name the table lacks gets an OpenAI-compatible route (repeatable)")
	fs.StringArrayVar(&o.endpoints, "oauth-endpoint", nil, "refresh `provider=url`'s OAuth tokens at url instead of the provider's token endpoint (repeatable)")
	fs.StringVar(&o.cmdTime, "command-timeout", "", "give a credential's command (add --from-command) at most `duration` (20s, 1m, 500ms; default 20s)")
	fs.StringVar(&o.printService, "print-service", "", "print the unit that starts the agent at login, `kind` systemd (the .service), systemd-socket (the .socket) or launchd (the LaunchAgent plist)")
	fs.BoolVar(&o.installService, "install-service", false, "write this system's units (systemd or launchd) into your directories and say how to enable them")
	fs.BoolVar(&o.force, "force", false, "with --install-service: replace unit files that differ")
	fs.StringVar(&o.serviceProgram, "service-program", "", "with --print-service or --install-service: the llm-agent `path` the units run (default: this executable)")
	completion.SetValues(fs, "print-service", service.Kinds...)
	fs.BoolVar(&o.child, "daemon-child", false, "")
	fs.BoolVar(&o.sshName, "ssh-name", false, "")
	fs.StringVar(&o.hash, "fingerprint-hash", "", "")
	fs.StringVar(&o.providers, "allowed-providers", "", "")
	fs.StringArrayVar(&o.agentOpts, "agent-option", nil, "")
	fs.IntVar(&o.parentPID, "parent-pid", 0, "")
	fs.StringVar(&o.cleanDir, "clean-dir", "", "")
	for _, n := range []string{"daemon-child", "parent-pid", "clean-dir", "ssh-name", "fingerprint-hash", "allowed-providers", "agent-option"} {
		fs.MarkHidden(n)
	}
	return fs
}

func parse(args []string, stderr io.Writer) (*options, error) {
	o := &options{names: llmNames}
	fs := flagSet(o, stderr)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	o.command = fs.Args()
	if err := checkServiceFlags(fs, o); err != nil {
		return nil, err
	}
	if o.sshName {
		o.names = sshNames
	}
	switch {
	case o.csh && o.sh:
		return nil, errors.New("-c and -s are mutually exclusive")
	case o.fg && o.debug:
		return nil, errors.New("-D and -d are mutually exclusive")
	case (o.fg || o.debug) && len(o.command) > 0:
		return nil, errors.New("a command cannot be run with -D or -d")
	case o.kill && (o.fg || o.debug || o.bind != "" || len(o.command) > 0 || o.life != ""):
		return nil, errors.New("-k takes no other options than -c or -s")
	}
	if o.life != "" {
		if _, err := protocol.ParseLifetime(o.life); err != nil {
			return nil, fmt.Errorf("invalid lifetime: %w", err)
		}
	}
	if _, err := oauthEndpoints(o.endpoints); err != nil {
		return nil, err
	}
	if _, err := relayRoutes(o.relayUps); err != nil {
		return nil, err
	}
	if _, err := commandTimeout(o.cmdTime); err != nil {
		return nil, err
	}
	return o, nil
}

// commandTimeout parses --command-timeout: ssh's time format or Go's
// (for fractions of a second); "" is the agent's default.
func commandTimeout(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := protocol.ParseLifetime(s)
	if err != nil {
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("--command-timeout %q: want a duration such as 20s, 1m or 500ms", s)
		}
	}
	if d <= 0 || d > 10*time.Minute {
		return 0, fmt.Errorf("--command-timeout %q: want more than 0 and at most 10m", s)
	}
	return d, nil
}

// oauthEndpoints checks and maps the --oauth-endpoint PROVIDER=URL values.
func oauthEndpoints(specs []string) (map[string]string, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(specs))
	for _, spec := range specs {
		provider, u, ok := strings.Cut(spec, "=")
		if !ok || provider == "" || u == "" {
			return nil, fmt.Errorf("--oauth-endpoint %q: want PROVIDER=URL", spec)
		}
		if p, known := providers.Lookup(provider); !known || p.OAuth == nil {
			return nil, fmt.Errorf("--oauth-endpoint: llm-agent does not refresh tokens of %q (it knows %s)", provider, strings.Join(providers.OAuthNames(), ", "))
		}
		if err := providers.CheckURL(u); err != nil {
			return nil, fmt.Errorf("--oauth-endpoint %s: %v", provider, err)
		}
		m[provider] = u
	}
	return m, nil
}

// relayRoutes checks --relay-upstream PROVIDER=URL and returns the
// routes of relayed requests.
func relayRoutes(specs []string) (providers.Routes, error) {
	m := make(map[string]string, len(specs))
	for _, spec := range specs {
		provider, u, ok := strings.Cut(spec, "=")
		if !ok || provider == "" || u == "" {
			return nil, fmt.Errorf("--relay-upstream %q: want PROVIDER=URL", spec)
		}
		m[provider] = u
	}
	return providers.NewRoutes(m, "--relay-upstream")
}

// cshStyle picks the output syntax as ssh-agent does: -c or -s, else by
// whether $SHELL ends in "csh".
func (o *options) cshStyle() bool {
	if o.csh || o.sh {
		return o.csh
	}
	return strings.HasSuffix(os.Getenv("SHELL"), "csh")
}

// printEnv prints the variables for eval, in ssh-agent's forms. sshSock,
// when true, adds SSH_AUTH_SOCK=sock after llm-agent's own socket variable:
// see needSSHAuthSock. pidVar false leaves out the pid variable, as
// ssh-agent -D and -d do.
func printEnv(w io.Writer, csh bool, n names, sock string, pid int, sshSock, pidVar bool) {
	set := func(name, val string) {
		if csh {
			fmt.Fprintf(w, "setenv %s %s;\n", name, val)
		} else {
			fmt.Fprintf(w, "%s=%s; export %s;\n", name, val, name)
		}
	}
	set(n.sock, sock)
	if sshSock && n.sock != sshNames.sock {
		set(sshNames.sock, sock)
	}
	if pidVar {
		set(n.pid, strconv.Itoa(pid))
	}
	fmt.Fprintf(w, "echo Agent pid %d;\n", pid)
}

// unsetEnv prints the commands that unset names, for -k.
func unsetEnv(w io.Writer, csh bool, names ...string) {
	for _, n := range names {
		if csh {
			fmt.Fprintf(w, "unsetenv %s;\n", n)
		} else {
			fmt.Fprintf(w, "unset %s;\n", n)
		}
	}
}

// needSSHAuthSock says whether to point SSH_AUTH_SOCK at our use socket:
// when it names no live SSH agent. OpenSSH (9.2) forwards the socket of
// ForwardAgent=PATH only when its own SSH_AUTH_SOCK reaches an agent, so
// without one `ssh -o ForwardAgent=$LLM_AUTH_SOCK` would silently forward
// nothing. The use socket is safe as ssh's agent and to forward: it is
// use-only, and its SSH-key side is our keyring or --upstream. A live
// agent (the user's ssh-agent) is left alone.
func needSSHAuthSock() bool {
	path := os.Getenv("SSH_AUTH_SOCK")
	return path == "" || !liveSSHAgent(path, 2*time.Second)
}

// liveSSHAgent says whether an SSH agent answers at path within timeout:
// it connects and asks for the identities (SSH_AGENTC_REQUEST_IDENTITIES,
// which every agent answers, with a list or a failure).
func liveSSHAgent(path string, timeout time.Duration) bool {
	c, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		return false
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return false
	}
	if _, err := c.Write(protocol.Frame([]byte{protocol.MsgRequestIdentities})); err != nil {
		return false
	}
	reply, err := protocol.ReadFrame(c, protocol.MaxReply)
	return err == nil && reply[0] != 0
}

// kill stops the agent named by the pid variable (-k). Under the name
// ssh-agent its messages are ssh-agent's, without our prefix.
func kill(o *options, stdout, stderr io.Writer) int {
	prefix := "llm-agent: "
	if o.names == sshNames {
		prefix = ""
	}
	s := os.Getenv(o.names.pid)
	if s == "" {
		fmt.Fprintf(stderr, "%s%s not set, cannot kill agent\n", prefix, o.names.pid)
		return 1
	}
	pid, err := strconv.Atoi(s)
	if err != nil || pid < 2 || pid > math.MaxInt32 {
		if o.names == sshNames {
			fmt.Fprintf(stderr, "%s=\"%s\", which is not a good PID: %s\n", o.names.pid, s, pidProblem(s))
		} else {
			fmt.Fprintf(stderr, "llm-agent: %s=\"%s\", which is not a good PID\n", o.names.pid, s)
		}
		return 1
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		fmt.Fprintf(stderr, "%skill: %s\n", prefix, errnoText(err))
		return 1
	}
	vars := []string{o.names.sock}
	// SSH_AUTH_SOCK goes too when it was ours (as ssh-agent -k unsets
	// its variables); a user's own ssh-agent stays.
	if o.names == llmNames && os.Getenv("SSH_AUTH_SOCK") != "" && os.Getenv("SSH_AUTH_SOCK") == os.Getenv("LLM_AUTH_SOCK") {
		vars = append(vars, "SSH_AUTH_SOCK")
	}
	unsetEnv(stdout, o.cshStyle(), append(vars, o.names.pid)...)
	fmt.Fprintf(stdout, "echo Agent pid %d killed;\n", pid)
	return 0
}

// pidProblem says what is wrong with a pid variable, in strtonum's words
// (as ssh-agent -k reports it).
func pidProblem(s string) string {
	n, err := strconv.ParseInt(s, 10, 64)
	switch {
	case err != nil && !errors.Is(err, strconv.ErrRange):
		return "invalid"
	case err != nil && strings.HasPrefix(s, "-"), n < 2:
		return "too small"
	default:
		return "too large"
	}
}

// errnoText is err as perror prints it: the C library's text, capitalised.
func errnoText(err error) string {
	msg := err.Error()
	if msg == "" {
		return msg
	}
	return strings.ToUpper(msg[:1]) + msg[1:]
}

// exportSSHAuthSock says whether llm-agent, under its own name, also
// points SSH_AUTH_SOCK at its socket; under the name ssh-agent that is the
// socket variable itself.
func (o *options) exportSSHAuthSock() bool {
	return o.names == llmNames && needSSHAuthSock()
}

// start creates the socket, then serves in the foreground (-D, -d) or
// starts the daemon and prints its environment, or runs a command.
func start(o *options, stdout, stderr io.Writer) int {
	var (
		l, admin  *net.UnixListener
		sock, dir string
		err       error
		budget    *memsafe.Budget
	)
	var sigs chan os.Signal
	if o.fg || o.debug {
		// Harden before the socket exists, so that nothing can connect to
		// (or read) a process that is not yet protected; and catch signals
		// before then too, so that a SIGINT or SIGTERM sent as soon as the
		// socket appears cleans up rather than killing the process.
		if budget, err = memsafe.Harden(); err != nil {
			fmt.Fprintf(stderr, "llm-agent: %v\n", err)
			return 1
		}
		sigs = notifySignals()
	}
	if o.bind != "" {
		if sock, err = filepath.Abs(o.bind); err != nil {
			fmt.Fprintf(stderr, "llm-agent: %v\n", err)
			return 1
		}
	}
	passed, err := passedSockets(o, sock)
	// owned is the socket path the agent removes when it exits: not one
	// the service manager made, which outlives the agent and starts it again.
	owned := sock
	switch {
	case err != nil:
	case passed != nil:
		l, admin, sock, owned = passed.Use, passed.Admin, passed.Path, ""
	case o.bind != "":
		l, admin, err = agent.ListenPath(sock)
	default:
		l, admin, sock, dir, err = agent.ListenTemp(os.Getenv("TMPDIR"), os.Getpid())
		owned = sock
	}
	if err != nil {
		fmt.Fprintf(stderr, "llm-agent: %v\n", err)
		return 1
	}
	// LLM_AUTH_SOCK (l) is use-only and is what users forward; admin, the
	// management socket beside it, is for the laptop's own clients.
	l.SetUnlinkOnClose(false)
	admin.SetUnlinkOnClose(false)
	if o.auditLog != "" {
		if o.auditLog, err = filepath.Abs(o.auditLog); err != nil {
			fmt.Fprintf(stderr, "llm-agent: %v\n", err)
			return 1
		}
	}
	cleanup := func() {
		l.Close()
		admin.Close()
		removeSocket(owned, dir)
	}

	if o.fg || o.debug {
		// ssh-agent -D/-d prints no pid variable; llm-agent always has.
		printEnv(stdout, o.cshStyle(), o.names, sock, os.Getpid(), o.exportSSHAuthSock(), o.names == llmNames)
		if f, ok := stdout.(*os.File); ok {
			f.Sync()
		}
		return serve(o, budget, l, admin, owned, dir, nil, stderr, sigs)
	}

	pid, err := spawn(o, l, admin, sock, dir)
	if err != nil {
		cleanup()
		fmt.Fprintf(stderr, "llm-agent: %v\n", err)
		return 1
	}
	l.Close() // the daemon holds its own copies
	admin.Close()
	sshSock := o.exportSSHAuthSock()
	if len(o.command) == 0 {
		printEnv(stdout, o.cshStyle(), o.names, sock, pid, sshSock, true)
		return 0
	}
	return runCommand(o.command, o.names, sock, pid, sshSock, stderr)
}

// spawn re-executes this program as the daemon: a new session, cwd /,
// stdio on /dev/null, the listening use socket and audit log as fds 3 and
// 4, a pipe on fd 5 on which it reports that it is ready (or why not), and
// the listening admin socket as fd 6.
func spawn(o *options, l, admin *net.UnixListener, sock, dir string) (int, error) {
	lf, err := l.File()
	if err != nil {
		return 0, fmt.Errorf("socket: %w", err)
	}
	defer lf.Close()
	af, err := admin.File()
	if err != nil {
		return 0, fmt.Errorf("admin socket: %w", err)
	}
	defer af.Close()
	audit, err := openAudit(o.auditLog)
	if err != nil {
		return 0, err
	}
	defer audit.Close()
	// Waiting for the daemon's word lets errors it meets while hardening
	// itself reach the user.
	pid, _, err := daemon.Spawn(daemon.Spec{
		Name:    "daemon",
		Args:    daemonArgs(o, sock, dir),
		Files:   []*os.File{lf, audit, af},
		ReadyFD: 5,
		Attr:    daemonAttr(len(o.command) > 0),
		Timeout: 10 * time.Second,
	})
	return pid, err
}

// daemonArgs is the daemon's command line: the options that shape the
// agent, with paths made absolute (the daemon runs in /).
func daemonArgs(o *options, sock, dir string) []string {
	args := []string{"--daemon-child", "-a", sock}
	if o.life != "" {
		args = append(args, "-t", o.life)
	}
	if o.upstream != "" {
		up, _ := filepath.Abs(o.upstream)
		args = append(args, "--upstream", up)
	}
	if o.sshAgent != "" {
		p := o.sshAgent
		if strings.ContainsRune(p, '/') {
			p, _ = filepath.Abs(p)
		}
		args = append(args, "--ssh-agent", p)
	}
	if o.names == sshNames {
		args = append(args, "--ssh-name")
	}
	args = append(args, o.childOptions("--fingerprint-hash", "--allowed-providers", "--agent-option")...)
	if o.auditLog != "" {
		args = append(args, "--audit-log", o.auditLog)
	}
	for _, k := range o.known {
		abs, _ := filepath.Abs(k)
		args = append(args, "-H", abs)
	}
	for _, e := range o.endpoints {
		args = append(args, "--oauth-endpoint", e)
	}
	for _, e := range o.relayUps {
		args = append(args, "--relay-upstream", e)
	}
	if o.cmdTime != "" {
		args = append(args, "--command-timeout", o.cmdTime)
	}
	if dir != "" {
		args = append(args, "--clean-dir", dir)
	}
	if len(o.command) > 0 {
		args = append(args, "--parent-pid", strconv.Itoa(os.Getpid()))
	}
	return args
}

func openAudit(path string) (*os.File, error) {
	if path == "" {
		return os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	}
	return agent.OpenAuditLog(path)
}

// runCommand runs the user's command with the agent's variables set, and
// stops the agent when the command exits, returning its status.
func runCommand(argv []string, n names, sock string, pid int, sshSock bool, stderr io.Writer) int {
	defer syscall.Kill(pid, syscall.SIGTERM)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), n.sock+"="+sock, n.pid+"="+strconv.Itoa(pid))
	if sshSock {
		cmd.Env = append(cmd.Env, "SSH_AUTH_SOCK="+sock)
	}
	// Let the command, not us, react to the terminal's signals.
	signal.Ignore(syscall.SIGINT, syscall.SIGQUIT)
	code, err := child.Status(cmd.Run())
	if err != nil {
		fmt.Fprintf(stderr, "llm-agent: %s: %v\n", argv[0], err)
		return 1
	}
	return code
}

// runChild is the daemon process started by spawn.
func runChild(o *options) int {
	// The fds spawn passed are not close-on-exec; the SSH-key child and
	// its watcher must not inherit the audit log or the ready pipe (the
	// listeners are duplicated with it set, and their fds closed).
	for fd := 3; fd <= 6; fd++ {
		syscall.CloseOnExec(fd)
	}
	ready := os.NewFile(5, "ready")
	budget, err := memsafe.Harden()
	if err != nil {
		fmt.Fprintf(ready, "llm-agent: %v\n", err)
		return 1
	}
	l, err := inheritListener(3, "listener")
	if err != nil {
		fmt.Fprintf(ready, "llm-agent: inheriting socket: %v\n", err)
		return 1
	}
	admin, err := inheritListener(6, "admin listener")
	if err != nil {
		fmt.Fprintf(ready, "llm-agent: inheriting admin socket: %v\n", err)
		return 1
	}
	audit := os.NewFile(4, "audit")
	if o.auditLog == "" {
		audit.Close()
		audit = nil
	}
	return serve(o, budget, l, admin, o.bind, o.cleanDir, ready, audit, notifySignals())
}

// inheritListener is the listening socket that spawn passed on fd. Its
// path stays when it closes: serve removes it, once, on the way out.
func inheritListener(fd uintptr, name string) (*net.UnixListener, error) {
	f := os.NewFile(fd, name)
	fl, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	l := fl.(*net.UnixListener)
	l.SetUnlinkOnClose(false)
	return l, nil
}

// removeSocket removes the use socket sock, the admin socket beside it,
// and dir, the temporary directory that held them ("" for -a's path).
// sock "" is a socket the agent does not own (passed by systemd).
func removeSocket(sock, dir string) {
	if sock == "" {
		return
	}
	os.Remove(sock)
	os.Remove(agent.AdminPath(sock))
	if dir != "" {
		os.Remove(dir)
	}
}

// notifySignals catches the signals the agent acts on.
func notifySignals() chan os.Signal {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGINT)
	return sigs
}

// serve runs the agent on l (use) and admin until a signal on sigs, and
// cleans up. ready, when not nil, is told "ok" once serving. out is where
// -d logs go, or (in the daemon) the audit file.
func serve(o *options, budget *memsafe.Budget, l, admin *net.UnixListener, sock, dir string, ready *os.File, out io.Writer, sigs chan os.Signal) int {
	fail := func(format string, a ...any) int {
		msg := fmt.Sprintf("llm-agent: "+format, a...)
		if ready != nil {
			fmt.Fprintln(ready, msg)
		} else {
			fmt.Fprintln(os.Stderr, msg)
		}
		l.Close()
		admin.Close()
		removeSocket(sock, dir)
		return 1
	}
	var childDone chan struct{} // the SSH-key ssh-agent exited
	var keysState func() *os.ProcessState
	cfg := agent.Config{Upstream: o.upstream, Budget: budget, Debug: log.New(io.Discard, "", 0), KnownHosts: o.known,
		SSHAgentRights: o.names == sshNames}
	cfg.OAuthEndpoints, _ = oauthEndpoints(o.endpoints) // checked by parse
	cfg.RelayRoutes, _ = relayRoutes(o.relayUps)        // checked by parse
	cfg.CommandTimeout, _ = commandTimeout(o.cmdTime)
	if o.life != "" {
		cfg.DefaultLifetime, _ = protocol.ParseLifetime(o.life)
	}
	cfg.Askpass = os.Getenv("LLM_AGENT_ASKPASS")
	if cfg.Askpass == "" {
		cfg.Askpass = os.Getenv("SSH_ASKPASS")
	}
	var auditW, debugW io.Writer
	if ready != nil {
		if f, ok := out.(*os.File); ok && f != nil {
			auditW = f
		}
	} else {
		if o.auditLog != "" {
			f, err := agent.OpenAuditLog(o.auditLog)
			if err != nil {
				return fail("%v", err)
			}
			defer f.Close()
			auditW = f
		}
		if o.debug {
			cfg.Debug = log.New(os.Stderr, fmt.Sprintf("llm-agent[%d]: ", os.Getpid()), 0)
			debugW = logWriter{cfg.Debug}
		}
	}
	// x/crypto/ssh/agent logs through the standard logger: under -d its
	// lines carry our prefix too; otherwise they go nowhere.
	log.SetOutput(cfg.Debug.Writer())
	log.SetPrefix(cfg.Debug.Prefix())
	log.SetFlags(0)
	if o.upstream == "" {
		path, err := findSSHAgent(o.sshAgent)
		if err != nil {
			return fail("%v", err)
		}
		if path != "" {
			var childLog *log.Logger
			if o.debug {
				childLog = cfg.Debug
			}
			keys, err := startKeysChild(path, o, childLog)
			if err != nil {
				return fail("%v", err)
			}
			defer keys.stop()
			childDone = keys.done
			keysState = func() *os.ProcessState { return keys.cmd.ProcessState }
			cfg.Upstream, cfg.UpstreamPrivate = keys.sock, true
			cfg.Debug.Printf("SSH keys are served by %s (pid %d) on %s", path, keys.cmd.Process.Pid, keys.sock)
		}
	}
	cfg.Audit = agent.NewAuditLog(auditW, debugW)
	a := agent.New(cfg)

	if !(o.fg || o.debug) {
		signal.Ignore(syscall.SIGINT)
	}
	served := make(chan error, 1)
	go func() { served <- a.Serve(l, admin) }()
	if ready != nil {
		fmt.Fprintln(ready, "ok")
		ready.Close()
	}
	var parentGone <-chan time.Time
	if o.parentPID > 0 {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		parentGone = t.C
	}
	status := 0
loop:
	for {
		select {
		case s := <-sigs:
			if s == syscall.SIGUSR1 {
				a.RemoveAll()
				continue
			}
			cfg.Debug.Printf("exiting on %v", s)
			break loop
		case err := <-served:
			if err != nil {
				cfg.Debug.Printf("%v", err)
				status = 1
			}
			break loop
		case <-childDone:
			// Credentials stay served; SSH-key requests fail from now on.
			cfg.Audit.Log(agent.Event{Op: "ssh-agent", Decision: "error",
				Reason: fmt.Sprintf("the SSH-key ssh-agent exited (%v); SSH-key requests fail until llm-agent is restarted", keysState())})
			childDone = nil
		case <-parentGone:
			// The command we were started for is gone (llm-agent cmd).
			if os.Getppid() != o.parentPID {
				break loop
			}
		}
	}
	a.Close()
	removeSocket(sock, dir)
	memsafe.Purge()
	return status
}

// logWriter writes each Write (one line, as the audit log's debug copy
// writes them) through a logger, so that it carries the agent's prefix.
type logWriter struct{ l *log.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.l.Print(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

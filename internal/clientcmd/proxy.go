package clientcmd

import (
	"context"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/llm-agent/llm-agent/internal/child"
	"github.com/llm-agent/llm-agent/internal/proxy"
	"github.com/llm-agent/llm-agent/memsafe"
	"github.com/llm-agent/llm-agent/protocol"
)

// osExit ends the process with the command's exit status after proxy --
// CMD (the command table's errors only know 0, 1 and 2).
var osExit = os.Exit

// proxyOptions are proxy's command line.
type proxyOptions struct {
	listen    string
	upstreams map[string]string // PROVIDER: URL
	debug     bool
	timeout   time.Duration
	serve     string
	relay     bool     // the laptop makes the calls (--relay)
	argv      []string // the tool to run, if any
	path      string   // argv[0] as found in PATH
}

// runProxy serves the proxy in three steps: it finds the agent (and
// registers with the guard, if a tool is to run), builds and starts the
// proxy, then either prints the tool's variables and serves until a signal
// or runs the tool under it.
func runProxy(e *env, args []string) error {
	o, err := parseProxy(e, args)
	if err != nil {
		return err
	}
	socket, names, follow, err := proxyAgent(e)
	if err != nil {
		return err
	}
	for n := range o.upstreams {
		names = append(names, n)
	}
	// Register with the guard before the tool starts and while the guard
	// can still see our executable (proxy_guard.go).
	var noGuard bool
	if len(o.argv) > 0 {
		if noGuard, err = registerEarly(socket); err != nil {
			return err
		}
	}
	var toolPID atomic.Int64
	p, pc, refused, err := newProxy(e, o, socket, follow, &toolPID)
	if err != nil {
		return err
	}
	if len(o.argv) > 0 && follow != nil {
		// A guard that starts after the owner reconnects learns of the
		// proxy within a second, not at the tool's next request: until it
		// does, it would serve the tool's processes.
		follow.OnNew = p.RegisterWithGuard
		watch, stopWatch := context.WithCancel(context.Background())
		defer stopWatch()
		go follow.Watch(watch, time.Second)
	}
	sv, err := newProxyServe(o.serve, o.argv, pc, refused)
	if err != nil {
		return err
	}
	defer sv.close()
	l, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	base := "http://" + l.Addr().String()
	vars, err := p.ToolEnv(base, names, e.getenv("OPENCODE_CONFIG_CONTENT"))
	if err != nil {
		l.Close()
		return err
	}
	vars = append(vars, sv.toolVars()...)
	served := make(chan error, 1)
	go func() { served <- p.Serve(l) }()

	if len(o.argv) == 0 {
		return proxyForeground(e, p, vars, served)
	}
	return proxyTool(e, o, p, sv, vars, socket, noGuard, &toolPID)
}

// proxyFlagValues are proxy's flags, as given.
type proxyFlagValues struct {
	listen, serve string
	ups           []string
	relay, debug  bool
	timeout       time.Duration
}

// proxyFlags defines proxy's flags into f; defTimeout is --timeout's
// default.
func proxyFlags(e *env, f *proxyFlagValues, defTimeout time.Duration) *pflag.FlagSet {
	fs := flagSet(e, "proxy", "[--listen ADDR] [--relay | --upstream PROVIDER=URL...] [--serve FRONT=API] [-d] [-- CMD [ARG...]]")
	fs.StringVar(&f.listen, "listen", "127.0.0.1:0", "listen on the loopback `ADDR` (port 0: a random one)")
	fs.StringArrayVar(&f.ups, "upstream", nil, "send `PROVIDER=URL`'s requests to URL, a gateway or a test server (https, or http to loopback; repeatable)")
	fs.BoolVar(&f.relay, "relay", false, "send each request through the agent, which adds the credential and calls the provider on the laptop: no credential reaches this machine")
	fs.BoolVarP(&f.debug, "debug", "d", false, "log each request on stderr (never a credential or key)")
	fs.DurationVar(&f.timeout, "timeout", defTimeout, "answer 503 when the agent does not answer within `DURATION` (default LLM_AGENT_TIMEOUT, else 30s)")
	fs.StringVar(&f.serve, "serve", "", "let only the owner reach the HTTP API the tool serves on `FRONT=API`: FRONT a socket path (for ssh -L PORT:PATH) or a loopback address, API the tool's loopback address (opencode serve --port)")
	fs.SetInterspersed(false)
	return fs
}

// parseProxy reads proxy's flags and checks them, and finds the tool.
func parseProxy(e *env, args []string) (*proxyOptions, error) {
	defTimeout, err := agentTimeout(e)
	if err != nil {
		return nil, err
	}
	var f proxyFlagValues
	fs := proxyFlags(e, &f, defTimeout)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	o := &proxyOptions{listen: f.listen, debug: f.debug, timeout: f.timeout, serve: f.serve, argv: fs.Args(), upstreams: map[string]string{}, relay: f.relay}
	if err := checkLoopback(o.listen); err != nil {
		return nil, err
	}
	for _, u := range f.ups {
		name, raw, ok := strings.Cut(u, "=")
		if !ok || name == "" || raw == "" {
			return nil, fmt.Errorf("--upstream %q: want PROVIDER=URL", u)
		}
		o.upstreams[name] = raw
	}
	if len(o.argv) > 0 {
		p, err := exec.LookPath(o.argv[0])
		if err != nil {
			return nil, fmt.Errorf("%s: %v", o.argv[0], unwrapExecErr(err))
		}
		o.path = p
	}
	return o, nil
}

// newProxy builds the proxy to the agent at socket, hardened, with its
// peer check (pc, nil where there is none) and the log of its refusals.
// The agent is told that requests come from the tool whose pid is in
// toolPID once it runs, else from the proxy itself.
func newProxy(e *env, o *proxyOptions, socket string, follow *proxy.Follower, toolPID *atomic.Int64) (*proxy.Proxy, *proxy.PeerCheck, *log.Logger, error) {
	// Every TCP connection's process is checked against the proxy's login
	// (Linux): the dummy key alone does not open the proxy to a co-tenant
	// of the account who read it from the tool's environment.
	pc, err := proxy.NewPeerCheck()
	if err != nil {
		return nil, nil, nil, err
	}
	// No core dumps, no ptrace by the same uid: credentials pass through
	// this process. (The command started below is dumpable again after
	// its execve; it never holds a credential.)
	if _, err := memsafe.Harden(); err != nil {
		return nil, nil, nil, err
	}
	cfg := proxy.Config{
		Socket:    socket,
		Dial:      follow.Dial,
		Upstreams: o.upstreams,
		Relay:     o.relay,
		Timeout:   o.timeout,
		Requester: func() *protocol.Requester {
			if pid := toolPID.Load(); pid > 0 {
				return requesterFor(int(pid))
			}
			return requesterFor(os.Getpid())
		},
	}
	if pc != nil {
		cfg.Peer = pc.Check
		pc.KnowOwnerSessions(func() ([]protocol.Session, error) {
			return ownerSessions(follow, o.timeout)
		})
	}
	cfg.Refused = log.New(e.stderr, "llm-agent-client: proxy: ", log.LstdFlags)
	if o.debug {
		cfg.Log = cfg.Refused
	}
	p, err := proxy.New(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	return p, pc, cfg.Refused, nil
}

// proxyTool runs proxy -- CMD: the tool, confined, with the proxy's
// variables and without the routes to the agent, the proxy's signals
// passed on to it; then it stops the proxy and exits as the tool did.
func proxyTool(e *env, o *proxyOptions, p *proxy.Proxy, sv *proxyServe, vars []proxy.Var, socket string, noGuard bool, toolPID *atomic.Int64) error {
	// Under the guard, nothing under the proxy may take a credential but
	// the proxy (proxy_guard.go): register, then keep the tool's
	// descendants in our tree.
	startConfine, stopConfine, err := proxyConfine(p, noGuard)
	if err != nil {
		p.Close(0)
		return err
	}
	defer stopConfine(time.Second)
	cmd := exec.Command(o.path, o.argv[1:]...)
	cmd.Args = o.argv
	environ := os.Environ()
	cmd.Env = withVars(environ, append(proxy.ScrubVars(), agentRoutes(e, environ, socket)...), vars)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, proxySignals(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)...)
	defer signal.Stop(sigs)
	if err := startNoNewPrivs(cmd); err != nil {
		p.Close(0)
		return fmt.Errorf("%s: %v", o.argv[0], err)
	}
	startConfine(cmd.Process.Pid)
	toolPID.Store(int64(cmd.Process.Pid))
	stopFront := sv.start()
	code, err := child.Wait(cmd, sigs)
	stopFront()
	stopConfine(time.Second)
	p.Close(time.Second)
	if err != nil {
		return err
	}
	osExit(code)
	return nil
}

// proxyAgent finds the agent as every subcommand does, lists the
// providers it holds credentials for (the tool is pointed at those), and
// learns its owner, to follow.
func proxyAgent(e *env) (string, []string, *proxy.Follower, error) {
	c, err := connect(e)
	if err != nil {
		return "", nil, nil, ownerNotConnected(err)
	}
	defer c.Close()
	socket := e.getenv("LLM_AUTH_SOCK")
	if socket == "" {
		socket = e.getenv("SSH_AUTH_SOCK")
	}
	entries, err := c.List()
	if err != nil {
		return "", nil, nil, err
	}
	var names []string
	for _, x := range entries {
		names = append(names, x.Provider)
	}
	return socket, names, proxyFollower(e, c, socket), nil
}

// ownerSessions asks the agent, through the socket the proxy follows,
// which audit login sessions on this boot are its owner's.
func ownerSessions(follow *proxy.Follower, timeout time.Duration) ([]protocol.Session, error) {
	ctx, cancel := context.WithTimeout(context.Background(), min(timeout, 5*time.Second))
	defer cancel()
	nc, err := follow.Dial(ctx)
	if err != nil {
		return nil, err
	}
	c := protocol.NewClient(nc)
	defer c.Close()
	c.Timeout = min(timeout, 5*time.Second)
	return c.Guard(&protocol.GuardRequest{Op: protocol.GuardSessions})
}

// agentRoutes lists the variables of environ that lead the tool of proxy
// -- CMD to the agent, beyond proxy.ScrubVars: the guard's and agent's
// pids, SSH_AUTH_SOCK when it is an llm-agent (the forwarded agent, or the
// guard that stands for it) or cannot be told apart from one, and any
// variable that names the proxy's own agent socket. A plain ssh-agent's
// SSH_AUTH_SOCK stays, so that git over ssh in the tool works.
func agentRoutes(e *env, environ []string, socket string) []string {
	drop := []string{"LLM_GUARD_PID", "LLM_AGENT_PID", "LLM_AGENT_PROXY_PID"}
	routes := []string{socket}
	if s := e.getenv("LLM_AUTH_SOCK"); s != "" {
		routes = append(routes, s)
	}
	if s := e.getenv("SSH_AUTH_SOCK"); s != "" && (sameSocket(s, routes) || !plainSSHAgent(s)) {
		drop = append(drop, "SSH_AUTH_SOCK")
	}
	for _, kv := range environ {
		if k, v, _ := strings.Cut(kv, "="); strings.HasPrefix(v, "/") && sameSocket(v, routes) {
			drop = append(drop, k)
		}
	}
	return drop
}

// sameSocket reports whether path is, or is another name for, one of
// routes.
func sameSocket(path string, routes []string) bool {
	fi, err := os.Stat(path)
	for _, r := range routes {
		if path == r {
			return true
		}
		if err != nil {
			continue
		}
		if ri, err := os.Stat(r); err == nil && os.SameFile(fi, ri) {
			return true
		}
	}
	return false
}

// plainSSHAgent reports whether the agent at path answers the llm-agent
// status extension with a plain SSH_AGENT_FAILURE, as an ssh-agent that
// knows no LLM extension does. Anything else (an llm-agent, a guard, no
// answer) is not known to be plain.
func plainSSHAgent(path string) bool {
	c, err := dial(path, 5*time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	reply, err := c.Call(protocol.SimpleExtension(protocol.ExtStatus))
	defer clear(reply)
	// An llm-agent's extension failure carries a code and a message.
	return err == nil && len(reply) == 1 && (reply[0] == protocol.MsgFailure || reply[0] == protocol.MsgExtensionFailure)
}

// checkLoopback refuses to listen beyond this machine: requests carry the
// dummy key in clear.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--listen %q: %v", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("--listen %q: the proxy listens on a loopback address only (127.0.0.1, ::1)", addr)
	}
	return nil
}

// proxyForeground prints the variables for eval and serves until a
// signal.
func proxyForeground(e *env, p *proxy.Proxy, vars []proxy.Var, served chan error) error {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, proxySignals(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)...)
	defer signal.Stop(sigs)
	sort.SliceStable(vars, func(i, j int) bool { return vars[i].Name < vars[j].Name })
	var b strings.Builder
	for _, v := range vars {
		fmt.Fprintf(&b, "%s=%s; export %s;\n", v.Name, shellQuote(v.Value), v.Name)
	}
	fmt.Fprintf(&b, "LLM_AGENT_PROXY_PID=%d; export LLM_AGENT_PROXY_PID;\n", os.Getpid())
	if _, err := e.stdout.Write([]byte(b.String())); err != nil {
		p.Close(0)
		return err
	}
	if f, ok := e.stdout.(*os.File); ok {
		f.Sync()
	}
	select {
	case <-sigs:
		p.Close(time.Second)
		return nil
	case err := <-served:
		return err
	}
}

// shellQuote quotes s for sh when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:@%+=,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

package clientcmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/llm-agent/llm-agent/internal/completion"
	"github.com/llm-agent/llm-agent/internal/peercred"
	"github.com/llm-agent/llm-agent/protocol"
)

// Exit statuses, as ssh-add's.
const (
	exitOK      = 0
	exitFailed  = 1
	exitNoAgent = 2
)

// env is what a subcommand runs with; tests can fill it by hand.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

type command struct {
	name    string
	args    string
	summary string
	run     func(e *env, args []string) error
	// flags builds the flag set run parses, for the shell completions.
	flags func(e *env) *pflag.FlagSet
	// operands say what the arguments after the flags are, for the same.
	operands completion.Operands
	hidden   bool // not in the usage nor offered
}

func commands() []command {
	provider := completion.Operands{Kind: completion.Providers}
	cmdLine := completion.Operands{Kind: completion.CommandLine}
	return []command{
		{"add", "[-c] [-t life] [-h host]... [--local-only] [--max-tokens-per-day N] [--json | --wellknown NAME] [--from-command COMMAND] PROVIDER", "add a credential; the secret is read from stdin or a prompt, or printed by COMMAND on the laptop", runAdd,
			func(e *env) *pflag.FlagSet { return addFlags(e, new(addOptions)) }, completion.Operands{Kind: completion.Known}, false},
		{"import", importArgs, "add the credentials of an opencode, Claude Code or Codex auth file, or Claude Code's macOS Keychain item", runImport,
			func(e *env) *pflag.FlagSet { return importFlags(e, new(importOptions)) }, completion.Operands{Kind: completion.Files}, false},
		{"list", "[--json | --names]", "list credentials: provider, kind, lifetime, constraints", runList,
			func(e *env) *pflag.FlagSet { return listFlags(e, new(listOptions)) }, completion.Operands{}, false},
		{"remove", "PROVIDER... | --all", "remove credentials", runRemove,
			func(e *env) *pflag.FlagSet { return removeFlags(e, new(bool)) }, completion.Operands{Kind: completion.Providers, Many: true}, false},
		{"lock", "", "lock the agent with a passphrase", runLock,
			func(e *env) *pflag.FlagSet { return flagSet(e, "lock", "") }, completion.Operands{}, false},
		{"unlock", "", "unlock the agent", runUnlock,
			func(e *env) *pflag.FlagSet { return flagSet(e, "unlock", "") }, completion.Operands{}, false},
		{"get", "[--format raw|json|opencode|header] PROVIDER", "print a credential for a tool", runGet,
			func(e *env) *pflag.FlagSet { return getFlags(e, new(string)) }, provider, false},
		{"exec", "[-p PROVIDER]... -- CMD [ARG...]", "run a command with credentials in the variables its tools read", runExec,
			func(e *env) *pflag.FlagSet { return execFlags(e, new([]string)) }, cmdLine, false},
		{"proxy", "[--listen ADDR] [--relay | --upstream PROVIDER=URL...] [-d] [-- CMD [ARG...]]", "serve an auth-injecting proxy (or, with --relay, one that sends requests through the laptop); run a command that holds only a dummy key", runProxy,
			func(e *env) *pflag.FlagSet { return proxyFlags(e, new(proxyFlagValues), protocol.DefaultTimeout) }, cmdLine, false},
		{"status", "", "say whether an agent is reachable, locked, use-only (forwarded or relayed)", runStatus,
			func(e *env) *pflag.FlagSet { return flagSet(e, "status", "") }, completion.Operands{}, false},
		{"usage", usageArgs, "sum the relayed requests and their tokens in the agent's audit log", runUsage,
			func(e *env) *pflag.FlagSet { return usageFlags(e, new(usageOptions)) }, completion.Operands{Kind: completion.Files, Many: true}, false},
		{"guard", "[-c | -s] [-D] [--allow-exe PATH]... [--log FILE]", "on a shared server account: serve the forwarded agent to the owner's processes only", runGuard,
			func(e *env) *pflag.FlagSet { return guardFlags(e, new(guardOptions)) }, completion.Operands{}, false},
		{"completion", completionArgs, "print the shell completion script for llm-agent and llm-agent-client", runCompletion,
			completionFlags, completion.Operands{Values: completion.Shells()}, false},
		{completeCommand, "PROGRAM WORD...", "complete a command line (the completion scripts' helper)", runComplete,
			func(e *env) *pflag.FlagSet { return flagSet(e, completeCommand, "") }, completion.Operands{}, true},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: llm-agent-client COMMAND [options] [args]")
	fmt.Fprintln(w, "commands:")
	for _, c := range commands() {
		if c.hidden {
			continue
		}
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "Run 'llm-agent-client COMMAND --help' for a command's options.")
}

// Main runs llm-agent-client with args (without the program name).
func Main(args []string) int {
	return run(&env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}, args)
}

func run(e *env, args []string) int {
	if len(args) == 0 {
		usage(e.stderr)
		return exitFailed
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(e.stdout)
		return exitOK
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(e, args[1:])
		if err == nil {
			return exitOK
		}
		if errors.Is(err, protocol.ErrNotLLMAgent) {
			// What connect's probe found, at the first request.
			err = &noAgentError{&plainAgentError{e.getenv("SSH_AUTH_SOCK")}}
			if c.name == "get" || c.name == "exec" || c.name == "proxy" {
				err = ownerNotConnected(err)
			}
		}
		if errors.Is(err, pflag.ErrHelp) {
			return exitOK
		}
		var r *reported
		var te *protocol.TransportError
		switch {
		case errors.As(err, &r):
		case errors.As(err, &te):
			// The connection broke mid-request: say what happened to it.
			name, path := agentPath(e)
			timeout, _ := agentTimeout(e)
			err := unreachable(name, path, te, timeout)
			if c.name == "get" || c.name == "exec" || c.name == "proxy" {
				err = ownerNotConnected(err) // the server's tools' words
			}
			fmt.Fprintf(e.stderr, "llm-agent-client: %s: %v\n", c.name, oneLine(err))
		default:
			fmt.Fprintf(e.stderr, "llm-agent-client: %s: %v\n", c.name, oneLine(err))
		}
		return exitCode(err)
	}
	fmt.Fprintf(e.stderr, "llm-agent-client: unknown command %q; run llm-agent-client --help\n", args[0])
	return exitFailed
}

func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", " ")
}

// noAgentError means no agent could be reached (exit 2).
type noAgentError struct{ err error }

func (e *noAgentError) Error() string { return e.err.Error() }
func (e *noAgentError) Unwrap() error { return e.err }

// reported wraps an error the command has already told the user about
// (each provider remove failed on, list's "holds no credentials"): run
// prints nothing more and exits with err's status (see exitCode).
type reported struct{ err error }

func (r *reported) Error() string { return r.err.Error() }
func (r *reported) Unwrap() error { return r.err }

func exitCode(err error) int {
	var na *noAgentError
	if errors.As(err, &na) {
		return exitNoAgent
	}
	var f *protocol.Failure
	if errors.As(err, &f) {
		if f.Code == protocol.CodeUnreachable {
			return exitNoAgent // the guard cannot reach the laptop
		}
		return exitFailed
	}
	if errors.Is(err, protocol.ErrLockFailed) {
		return exitFailed
	}
	// A connection that broke mid-request means the agent went away.
	var te *protocol.TransportError
	if errors.As(err, &te) {
		return exitNoAgent
	}
	return exitFailed
}

// flagSet returns a pflag set for a subcommand. pflag itself answers
// --help (and -h, unless the subcommand uses -h for hosts, as ssh-add does)
// by printing the usage and returning pflag.ErrHelp.
func flagSet(e *env, name, args string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stdout, "usage: llm-agent-client %s %s\n", name, args)
		fs.SetOutput(e.stdout)
		fs.PrintDefaults()
	}
	return fs
}

// connect finds the agent: LLM_AUTH_SOCK, else SSH_AUTH_SOCK when the agent
// there answers the llm-agent extensions (a socket forwarded with
// ForwardAgent). Failures to reach it are noAgentErrors that say what was
// found (see unreachable). The connect and every exchange on the client are
// bounded by LLM_AGENT_TIMEOUT.
func connect(e *env) (*protocol.Client, error) {
	timeout, err := agentTimeout(e)
	if err != nil {
		return nil, err
	}
	if path := e.getenv("LLM_AUTH_SOCK"); path != "" {
		c, err := dialAgent(path, timeout)
		if err != nil {
			return nil, unreachable("LLM_AUTH_SOCK", path, err, timeout)
		}
		return c, nil
	}
	path := e.getenv("SSH_AUTH_SOCK")
	if path == "" {
		return nil, &noAgentError{errors.New(noVarsMessage)}
	}
	c, err := dialAgent(path, timeout)
	if err != nil {
		return nil, unreachable("SSH_AUTH_SOCK", path, err, timeout)
	}
	// A plain ssh-agent answers SSH_AGENT_FAILURE to an unknown extension.
	// The probe rides with the first request (one round trip, not two,
	// through a forwarded socket); run turns its failure into
	// plainAgentError.
	c.Probe()
	return c, nil
}

// noVarsMessage: neither variable is set. On a server that means ssh
// forwarded nothing; on the laptop, that no agent was started here.
const noVarsMessage = `no agent: neither LLM_AUTH_SOCK nor SSH_AUTH_SOCK is set: this login has no forwarded agent (on the laptop, connect with ssh -o ForwardAgent=$LLM_AUTH_SOCK, and check AllowAgentForwarding on the server; to run an agent here: eval "$(llm-agent)")`

// plainAgentError: SSH_AUTH_SOCK is an SSH agent that does not speak the
// llm-agent extensions.
type plainAgentError struct{ path string }

func (e *plainAgentError) Error() string {
	return fmt.Sprintf("LLM_AUTH_SOCK is not set and SSH_AUTH_SOCK=%s is an ssh-agent without llm-agent's extensions: the laptop forwarded its ssh-agent, not llm-agent (connect with ssh -o ForwardAgent=$LLM_AUTH_SOCK)", e.path)
}

// unreachable turns a failure to dial, or to hear from, the agent at
// name=path into a noAgentError whose one line says what was found: no
// socket, a stale one, another user's, no answer within the time-out, or a
// hang-up.
func unreachable(name, path string, err error, timeout time.Duration) error {
	var na *noAgentError
	var owe *peercred.OwnerError
	switch {
	case errors.As(err, &na):
		return err
	case errors.As(err, &owe):
		return &noAgentError{owe}
	}
	at := name + "=" + path
	var ne net.Error
	var msg string
	switch {
	case errors.Is(err, os.ErrNotExist):
		msg = at + " does not exist: the ssh session that forwarded it has ended, or the agent stopped (reconnect with ssh -o ForwardAgent=$LLM_AUTH_SOCK)"
	case errors.Is(err, syscall.ECONNREFUSED):
		msg = "nothing is listening at " + at + " (a stale socket): the ssh session or the agent that served it has ended (reconnect with ssh -o ForwardAgent=$LLM_AUTH_SOCK)"
	case errors.Is(err, os.ErrPermission):
		msg = at + ": permission denied: the socket is not yours to use"
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		msg = fmt.Sprintf("the agent at %s did not answer within %v: the laptop may be asleep or the network gone (LLM_AGENT_TIMEOUT sets how long to wait)", at, timeout)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, protocol.ErrHungUp) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE):
		msg = "the agent at " + at + " hung up: the laptop disconnected or its agent stopped"
	default:
		msg = fmt.Sprintf("cannot reach the agent at %s: %v", at, protocol.DialReason(err))
	}
	return &noAgentError{errors.New(msg)}
}

// agentPath is the variable and socket a client uses: LLM_AUTH_SOCK, else
// SSH_AUTH_SOCK.
func agentPath(e *env) (string, string) {
	if p := e.getenv("LLM_AUTH_SOCK"); p != "" {
		return "LLM_AUTH_SOCK", p
	}
	return "SSH_AUTH_SOCK", e.getenv("SSH_AUTH_SOCK")
}

// dialAgent connects to the agent's admin socket beside path when there
// is one that belongs to the same agent (see dialAdmin), else to path,
// which is use-only.
func dialAgent(path string, timeout time.Duration) (*protocol.Client, error) {
	if c := dialAdmin(path, timeout); c != nil {
		return c, nil
	}
	return dial(path, timeout)
}

// dialAdmin returns a client on path+".admin" when it is a socket whose
// listener is the same process (pid and uid, as the kernel recorded them
// at listen time) as the one listening at path: then both are the same
// llm-agent, on the owner's laptop. On a server, path is the forwarded
// socket, whose listener is sshd or the guard, so a socket someone
// planted at path+".admin" is ignored. Any doubt returns nil.
func dialAdmin(path string, timeout time.Duration) *protocol.Client {
	admin := path + ".admin"
	if fi, err := os.Lstat(admin); err != nil || fi.Mode()&os.ModeSocket == 0 {
		return nil
	}
	d := min(timeout, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	// Both owner-checked: a pair planted by another user proves nothing.
	ac, err := peercred.DialOwned(ctx, admin)
	if err != nil {
		return nil
	}
	uc, err := peercred.DialOwned(ctx, path)
	if err != nil {
		ac.Close()
		return nil
	}
	defer uc.Close()
	same := false
	if ap, err := peercred.FromConn(ac); err == nil {
		if up, err := peercred.FromConn(uc); err == nil {
			same = ap.PID != 0 && ap.PID == up.PID && ap.UID == up.UID
			up.Close()
		}
		ap.Close()
	}
	if !same {
		ac.Close()
		return nil
	}
	c := protocol.NewClient(ac)
	c.Timeout = timeout
	return c
}

// dial connects within timeout (at most 5 s, as protocol.Dial), refuses a
// socket served by another user (protocol.DialOwned), and gives the client
// timeout as its bound for each exchange. A refused socket is a
// noAgentError whose text is the one line that names its owner.
func dial(path string, timeout time.Duration) (*protocol.Client, error) {
	c, err := protocol.DialOwned(path, timeout)
	if err != nil {
		var owe *peercred.OwnerError
		if errors.As(err, &owe) {
			return nil, &noAgentError{owe}
		}
		return nil, err
	}
	c.Timeout = timeout
	return c, nil
}

// agentTimeout is LLM_AGENT_TIMEOUT, a Go duration ("5s", "1m") or a
// number of seconds, else protocol.DefaultTimeout: how long a client waits
// for the agent (or a forwarded socket whose far end stopped answering).
func agentTimeout(e *env) (time.Duration, error) {
	v := strings.TrimSpace(e.getenv("LLM_AGENT_TIMEOUT"))
	if v == "" {
		return protocol.DefaultTimeout, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		secs, ferr := strconv.ParseFloat(v, 64)
		if ferr != nil || !(secs <= 1e6) { // NaN too
			return 0, fmt.Errorf("LLM_AGENT_TIMEOUT=%q: want a duration such as 5s or a number of seconds", v)
		}
		d = time.Duration(secs * float64(time.Second))
	}
	if d <= 0 {
		return 0, fmt.Errorf("LLM_AGENT_TIMEOUT=%q: want a positive time", v)
	}
	return d, nil
}

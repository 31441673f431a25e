package clientcmd

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/llm-agent/llm-agent/internal/guard"
	"github.com/llm-agent/llm-agent/internal/proxy"
	"github.com/llm-agent/llm-agent/protocol"
)

// proxyFollower learns the owner of the agent on c (its owner proof, as the
// guard does) and returns a dialer that follows that owner to the stable
// guard paths when socket is gone: a long-running proxy then resumes on its
// own when the owner reconnects. An agent that proves no owner is followed
// nowhere (a note on stderr says so).
func proxyFollower(e *env, c *protocol.Client, socket string) *proxy.Follower {
	key, err := guard.ProveOwner(c)
	if err != nil {
		fmt.Fprintf(e.stderr, "llm-agent-client: proxy: the agent proves no owner identity (%s); the proxy will use %s only, and not follow the owner's reconnects\n", oneLine(err), socket)
		return proxy.NewFollower(socket, "", nil)
	}
	// A guard that a later login of the owner starts must serve this
	// proxy, whose login may never have run one.
	if err := guard.RegisterLogin(c); err != nil {
		fmt.Fprintf(e.stderr, "llm-agent-client: proxy: registering this login with the agent: %s; a guard started in another login may refuse the proxy\n", oneLine(err))
	}
	var bases []string
	if x := e.getenv("XDG_RUNTIME_DIR"); x != "" {
		bases = append(bases, filepath.Join(x, "llm-agent"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		bases = append(bases, filepath.Join(home, ".llm-agent"))
	}
	return proxy.NewFollower(socket, guard.OwnerID(key), bases)
}

// proxySignals lists the signals that the proxy passes on to its command
// (or, without one, stops on), less those ignored when it started: under
// nohup SIGHUP stays ignored, in the proxy and in the command (which
// inherits the ignore), so both outlive the owner's logout. Catching it
// would undo what nohup did.
func proxySignals(sigs ...os.Signal) []os.Signal {
	var out []os.Signal
	for _, s := range sigs {
		if !signal.Ignored(s) {
			out = append(out, s)
		}
	}
	if signal.Ignored(syscall.SIGHUP) {
		// Detached: the login's stdout and stderr may be gone. A log line
		// to a closed pipe must fail, not kill the proxy (Go dies of
		// SIGPIPE on fds 1 and 2 unless it is notified of it). The command
		// gets the default SIGPIPE back at exec.
		signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	}
	return out
}

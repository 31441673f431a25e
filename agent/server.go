package agent

import (
	"container/list"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	sshagent "golang.org/x/crypto/ssh/agent"

	"github.com/llm-agent/llm-agent/internal/peercred"
	"github.com/llm-agent/llm-agent/internal/providers"
	"github.com/llm-agent/llm-agent/internal/relay"
	"github.com/llm-agent/llm-agent/memsafe"
	"github.com/llm-agent/llm-agent/protocol"
)

// Version is reported by status@llm-agent.
const Version = "0.1.0"

// Config configures an Agent. Zero values get defaults.
type Config struct {
	// DefaultLifetime applies to credentials and keys added without one
	// (llm-agent -t); zero means forever.
	DefaultLifetime time.Duration
	// CommandClients are the programs (paths) whose add requests may carry
	// a command (add --from-command). The agent runs that command on the
	// laptop, so it takes one only from a peer the kernel shows running
	// one of these very files (device and inode): a relay of the admin
	// socket (ssh -R, socat) runs something else, and must not make the
	// laptop run what a server asks. Nil means llm-agent-client beside the
	// agent's own executable and on its PATH.
	CommandClients []string
	// Upstream is the socket of an SSH agent that serves the SSH-key side;
	// empty means an in-memory keyring. SSH-key frames are relayed to it
	// raw, behind the agent's own lock and use-only rules, and so is every
	// session-bind, so that it enforces its keys' destination constraints.
	Upstream string
	// UpstreamPrivate says that Upstream is the agent's own private
	// ssh-agent, not the user's: lock and unlock reach it too, and -t is
	// its own (llm-agent passes it on).
	UpstreamPrivate bool
	// SSHAgentRights gives the use socket ssh-agent's own rule for SSH-key
	// requests (llm-agent invoked as ssh-agent, whose SSH_AUTH_SOCK any
	// local program may use to add keys): adding and removing keys are
	// allowed on a connection unless a session-bind said it is forwarded
	// or failed; lock and unlock there reach the private ssh-agent's keys
	// only, never the lock that guards the credentials (conn.keysLock).
	// Credential management stays on the admin socket.
	SSHAgentRights bool
	// Askpass is the program that confirms uses (LLM_AGENT_ASKPASS or
	// SSH_ASKPASS); empty means confirm-marked credentials are refused.
	Askpass string
	Audit   *AuditLog
	// KnownHosts name the hosts of verified session-binds in prompts and
	// the audit log; empty means hostkeys.DefaultFiles.
	KnownHosts []string
	// Debug gets one line per connection and request; nil is quiet.
	Debug *log.Logger
	// Budget accounts for locked memory; nil means unlimited.
	Budget *memsafe.Budget

	// OAuthEndpoints overrides OAuth providers' token endpoints by
	// provider name (llm-agent --oauth-endpoint).
	OAuthEndpoints map[string]string
	// RefreshMargin: an access token that expires within it is refreshed
	// before it is handed out; default 30 s.
	RefreshMargin time.Duration
	// RefreshTimeout bounds one refresh, retries included; default 15 s,
	// well below a client's 30 s.
	RefreshTimeout time.Duration
	// RefreshRetry: after a refresh failed (for another reason than a
	// refused refresh token), gets hand out the still valid access token
	// without trying again for this long; default 5 s.
	RefreshRetry time.Duration

	// CommandTimeout bounds one run of a credential's command (add
	// --from-command; llm-agent --command-timeout); default 20 s, below a
	// client's 30 s.
	CommandTimeout time.Duration
	// CommandRetry: after a credential's command gave no value, gets fail
	// at once with the same reason for this long before the next one runs
	// the command again; default 5 s.
	CommandRetry time.Duration

	MaxConns int // concurrent connections; default 1024
	// MaxUpstreamConns caps the connections to the upstream SSH agent
	// (one per client connection that made an SSH-key request); default
	// 256, well below the 1024 descriptors an ssh-agent usually has. At
	// the cap the longest-idle client connection that holds one is closed,
	// so that a flood cannot leave the upstream out of descriptors, with
	// new connections queued unaccepted and their requests hung.
	MaxUpstreamConns int
	MaxCredentials   int           // default 100000
	MaxStoreBytes    int           // field bytes of all credentials; default 64 MiB
	IdleTimeout      time.Duration // between requests; default 10 minutes
	FrameTimeout     time.Duration // to receive a frame once begun, and to write a reply; default 10 s
	// RelayRoutes are the providers' base URLs that relayed requests go
	// to (providers.NewRoutes with llm-agent --relay-upstream); nil means
	// the table's. RelayTransport makes the calls (nil: relay's
	// NewTransport); RelayMeter reads the usage of the answers (nil:
	// package usage's Meter); RelayLimits bound them.
	RelayRoutes    providers.Routes
	RelayTransport http.RoundTripper
	RelayMeter     func(contentType string) relay.Meter
	RelayLimits    relay.Limits
	// Now is the clock; tests may replace it.
	Now func() time.Time
}

// Agent is a running llm-agent.
type Agent struct {
	cfg     Config
	uid     int
	store   *store
	lock    locker
	confirm confirmer
	keyring sshagent.ExtendedAgent
	// keyConfirm marks keyring keys added with ssh-add -c.
	keyConfirm keyConfirm
	owner      *owner
	oauth      *refresher
	commands   *commands
	sessions   sessions
	relay      *relay.Server
	relays     relayRequests // in flight, to end when a credential goes
	tokens     tokenUse      // of relayed requests, today
	names      *hostNames
	// sshAdd identifies the local ssh-add programs (see sshAddIDs).
	sshAdd map[fileID]string
	// commandClients identifies the programs that may add a credential
	// from a command (Config.CommandClients).
	commandClients map[fileID]string

	mu        sync.Mutex
	upstreams int // open connections to cfg.Upstream (conn.upstreamOpen)
	conns     map[*conn]struct{}
	idle      *list.List // of *conn, least recently active first
	closed    bool
	listeners []net.Listener
	wg        sync.WaitGroup
	done      chan struct{}
}

// New returns an Agent for cfg.
func New(cfg Config) *Agent {
	if cfg.MaxConns == 0 {
		cfg.MaxConns = 1024
	}
	if cfg.MaxUpstreamConns == 0 {
		cfg.MaxUpstreamConns = 256
	}
	if cfg.MaxCredentials == 0 {
		cfg.MaxCredentials = 100000
	}
	if cfg.MaxStoreBytes == 0 {
		cfg.MaxStoreBytes = 64 << 20
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 10 * time.Minute
	}
	if cfg.FrameTimeout == 0 {
		cfg.FrameTimeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Budget == nil {
		cfg.Budget = memsafe.NewBudget(-1)
	}
	if cfg.CommandClients == nil {
		cfg.CommandClients = commandClientPaths()
	}
	if cfg.Debug == nil {
		cfg.Debug = log.New(io.Discard, "", 0)
	}
	a := &Agent{
		cfg:            cfg,
		uid:            os.Getuid(),
		store:          newStore(cfg.Budget, cfg.MaxCredentials, cfg.MaxStoreBytes),
		confirm:        confirmer{askpass: cfg.Askpass},
		keyring:        sshagent.NewKeyring().(sshagent.ExtendedAgent),
		conns:          make(map[*conn]struct{}),
		idle:           list.New(),
		names:          newHostNames(cfg.KnownHosts),
		sshAdd:         sshAddIDs(),
		commandClients: fileIDs(cfg.CommandClients),
		done:           make(chan struct{}),
	}
	if cfg.RelayRoutes == nil {
		cfg.RelayRoutes, _ = providers.NewRoutes(nil, "")
		a.cfg.RelayRoutes = cfg.RelayRoutes
	}
	a.relay = &relay.Server{Routes: cfg.RelayRoutes, Transport: cfg.RelayTransport, Meter: cfg.RelayMeter,
		Limits: cfg.RelayLimits}
	a.oauth = newRefresher(a)
	a.commands = newCommands(a)
	// Without an owner key the agent still serves; guards then refuse it.
	a.owner, _ = newOwner(cfg.Budget)
	return a
}

// Serve accepts connections until Close and returns nil after Close.
// use is the socket printed as LLM_AUTH_SOCK: every connection on it is
// use-only, whatever relays it (ssh under any name, socat, an IDE). admin
// is the management socket beside it (LLM_AUTH_SOCK + ".admin"), which is
// never forwarded: connections on it may manage the agent. Either may be
// nil, not both.
func (a *Agent) Serve(use, admin *net.UnixListener) error {
	type side struct {
		l   *net.UnixListener
		via string
	}
	var sides []side
	if use != nil {
		sides = append(sides, side{use, ViaUse})
	}
	if admin != nil {
		sides = append(sides, side{admin, ViaAdmin})
	}
	if len(sides) == 0 {
		return errors.New("no listener to serve")
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return errors.New("agent closed")
	}
	for _, s := range sides {
		a.listeners = append(a.listeners, s.l)
	}
	a.mu.Unlock()

	a.wg.Add(1)
	go a.reap()
	errs := make(chan error, len(sides))
	for _, s := range sides {
		go func() { errs <- a.acceptLoop(s.l, s.via) }()
	}
	var first error
	for range sides {
		if err := <-errs; err != nil && first == nil {
			first = err
			// One side failed for good: stop the other too, so that the
			// caller sees the error and exits rather than half serving.
			a.mu.Lock()
			for _, l := range a.listeners {
				l.Close()
			}
			a.mu.Unlock()
		}
	}
	select {
	case <-a.done:
		return nil
	default:
		return first
	}
}

// acceptLoop accepts connections on l, classed as via, until l is closed.
func (a *Agent) acceptLoop(l *net.UnixListener, via string) error {
	var delay time.Duration
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			select {
			case <-a.done:
				return nil
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) || isTemporary(err) {
				// Out of descriptors and the like: back off, keep serving.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				a.cfg.Debug.Printf("accept: %v; retrying in %v", err, delay)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("accept on the %s socket: %w", via, err)
		}
		delay = 0
		a.accept(c, via)
	}
}

func isTemporary(err error) bool {
	type temporary interface{ Temporary() bool }
	var t temporary
	return errors.As(err, &t) && t.Temporary()
}

// accept checks the peer's uid (SO_PEERCRED, cheap) and starts serving
// the connection; describing the peer process (/proc reads) happens in the
// connection's own goroutine so that a flood of connections does not slow
// the accept loop.
func (a *Agent) accept(nc *net.UnixConn, via string) {
	peer, err := peercred.FromConn(nc)
	if err != nil {
		a.cfg.Debug.Printf("peer credentials: %v", err)
		nc.Close()
		return
	}
	if int(peer.UID) != a.uid && peer.UID != 0 {
		proc, _ := peer.Describe()
		peer.Close()
		a.cfg.Audit.Log(Event{Op: "connect", Decision: "deny",
			Reason: fmt.Sprintf("uid %d is not the agent's uid %d", peer.UID, a.uid),
			Peer:   &PeerInfo{PID: proc.PID, UID: peer.UID, Exe: proc.Exe, Verified: proc.Verified},
			Via:    via, ViaReason: viaReason(via)})
		nc.Close()
		return
	}
	c := &conn{a: a, nc: nc, peer: &PeerInfo{PID: peer.PID, UID: peer.UID}, peerPID: peer.PID,
		frames: &protocol.FrameConn{Conn: nc, Max: protocol.MaxFrame, Idle: a.cfg.IdleTimeout, Frame: a.cfg.FrameTimeout}}
	c.classify(via)
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		peer.Close()
		nc.Close()
		return
	}
	if len(a.conns) >= a.cfg.MaxConns {
		a.evictLocked()
	}
	a.conns[c] = struct{}{}
	c.elem = a.idle.PushBack(c)
	a.wg.Add(1)
	a.mu.Unlock()
	go func() {
		defer a.wg.Done()
		proc, _ := peer.Describe()
		peer.Close()
		c.peer = &PeerInfo{PID: proc.PID, UID: peer.UID, Exe: proc.Exe, Verified: proc.Verified}
		if path, ok := a.isSSHAdd(proc); ok && via == ViaUse {
			c.manager(path)
		}
		c.commandClient, _ = runs(a.commandClients, proc)
		a.cfg.Debug.Printf("connection from pid %d uid %d exe %s on the %s socket", c.peer.PID, c.peer.UID, c.peer.Exe, via)
		c.serve()
		a.mu.Lock()
		a.dropLocked(c)
		a.mu.Unlock()
	}()
}

// evictLocked closes the connection that has been idle longest, so that a
// flood of idle connections cannot lock out a client with a request. The
// idle list is kept in order of last activity, so the victim is near its
// front.
func (a *Agent) evictLocked() {
	victim := a.goneLocked()
	if victim == nil {
		// The longest idle one. A request may sit unread in a socket
		// before its connection looks busy; such a connection is not idle.
		for e := a.idle.Front(); e != nil; e = e.Next() {
			if c := e.Value.(*conn); !c.busy.Load() && peek(c.nc) == peerIdle {
				victim = c
				break
			}
		}
	}
	if c := victim; c != nil {
		a.cfg.Debug.Printf("connection limit %d reached: closing the longest idle connection (pid %d)", a.cfg.MaxConns, c.pid())
		c.nc.Close()
		a.dropLocked(c)
	}
}

// goneLocked looks among the most recently active connections for one
// whose client has closed it before its goroutine noticed: a client that
// reconnects leaves one behind, at the back of the idle list.
func (a *Agent) goneLocked() *conn {
	const look = 16
	n := 0
	for e := a.idle.Back(); e != nil && n < look; e, n = e.Prev(), n+1 {
		if c := e.Value.(*conn); !c.busy.Load() && peek(c.nc) == peerGone {
			return c
		}
	}
	return nil
}

func (a *Agent) dropLocked(c *conn) {
	if _, ok := a.conns[c]; !ok {
		return
	}
	delete(a.conns, c)
	a.idle.Remove(c.elem)
}

// reserveUpstream counts a connection to the upstream agent that c is
// about to open; at the cap it first closes the longest-idle connection
// that holds one (its goroutine then closes that upstream connection).
func (a *Agent) reserveUpstream(c *conn) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.upstreams >= a.cfg.MaxUpstreamConns {
		for e := a.idle.Front(); e != nil; e = e.Next() {
			v := e.Value.(*conn)
			if v != c && v.upstreamOpen && !v.busy.Load() && peek(v.nc) != peerPending {
				a.cfg.Debug.Printf("upstream connection limit %d reached: closing the longest idle connection that holds one (pid %d)", a.cfg.MaxUpstreamConns, v.pid())
				v.nc.Close()
				a.dropLocked(v)
				break
			}
		}
	}
	a.upstreams++
	c.upstreamOpen = true
}

// releaseUpstream uncounts c's connection to the upstream agent.
func (a *Agent) releaseUpstream(c *conn) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c.upstreamOpen {
		a.upstreams--
		c.upstreamOpen = false
	}
}

// touch moves c to the back of the idle list after a request.
func (a *Agent) touch(c *conn) {
	a.mu.Lock()
	if _, ok := a.conns[c]; ok {
		a.idle.MoveToBack(c.elem)
	}
	a.mu.Unlock()
}

// reap drops credentials whose lifetime is over, once a second.
func (a *Agent) reap() {
	defer a.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-a.done:
			return
		case <-t.C:
			a.cfg.Audit.Flush()
			gone, forgotten := a.store.expire(a.cfg.Now())
			for _, p := range gone {
				a.relays.cancel(p, errRelayExpired)
				a.cfg.Audit.Log(Event{Op: "expire", Provider: p, Decision: "allow", Reason: "lifetime over"})
			}
			for _, p := range forgotten {
				a.commands.forgot(p)
			}
		}
	}
}

// RemoveAll drops every credential and SSH key (SIGUSR1).
func (a *Agent) RemoveAll() {
	n := a.store.removeAll()
	a.relays.cancel("", errRelayRemoved)
	a.keyring.RemoveAll()
	if a.cfg.UpstreamPrivate {
		// The private ssh-agent's keys are the agent's too (a user's
		// --upstream agent is left alone). While locked it refuses.
		u := &upstreamKeys{path: a.cfg.Upstream}
		reply, err := u.roundTrip([]byte{protocol.MsgRemoveAllIdentities})
		u.Close()
		if err == nil && reply[4] != protocol.MsgSuccess {
			err = errors.New("the SSH-key ssh-agent refused remove-all")
		}
		if err != nil {
			a.cfg.Audit.Log(Event{Op: "remove-all", Decision: "error", Reason: "signal: SSH keys: " + err.Error()})
		}
	}
	a.cfg.Audit.Log(Event{Op: "remove-all", Decision: "allow", Reason: fmt.Sprintf("signal: %d credentials removed", n)})
}

// Close stops serving, closes every connection and drops every credential.
func (a *Agent) Close() {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	a.closed = true
	close(a.done)
	for _, l := range a.listeners {
		l.Close()
	}
	for c := range a.conns {
		c.nc.Close()
	}
	a.mu.Unlock()
	// Runs of credential commands are killed: gets waiting on them end.
	a.commands.stop()
	// A connection may sit in a confirm prompt; do not wait on it for long.
	waited := make(chan struct{})
	go func() { a.wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(2 * time.Second):
	}
	a.store.removeAll()
	a.keyring.RemoveAll()
}

package guard

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"

	"github.com/llm-agent/llm-agent/internal/peercred"
	"github.com/llm-agent/llm-agent/protocol"
)

// Config configures a guard.
type Config struct {
	// Upstream is the forwarded agent socket.
	Upstream string
	// KeepUpstream leaves the forwarded socket's path in place; by default
	// the guard unlinks it once it holds its connections.
	KeepUpstream bool
	// Dir is where per-owner directories with the stable sockets live
	// ($XDG_RUNTIME_DIR/llm-agent or ~/.llm-agent).
	Dir string
	// AllowExe lists executables allowed whatever their login session.
	AllowExe []string
	// Log gets one line per refusal and event; never a secret.
	Log io.Writer
	// Leader is the login session leader whose descendants are the
	// owner's processes when the kernel keeps no audit session id; 0 means
	// the guard's own session. A daemonised guard passes its parent's.
	Leader int
	// Shared is how many upstream connections carry ordinary requests;
	// Reserve how many are kept for clients that send session-bind (nested
	// ssh hops), one each.
	Shared, Reserve int
	// Timeout is how long an upstream exchange may go unanswered before
	// the guard fails fast (see failfast.go); zero means
	// protocol.DefaultTimeout.
	Timeout time.Duration
	// MaxRelays bounds the relay@llm-agent connections carried at once
	// (relay.go); zero means 32.
	MaxRelays int
}

// Guard is a running guard.
type Guard struct {
	cfg    Config
	Path   string // the stable socket path
	Owner  string // owner id: the first 16 hex digits of SHA-256 of the owner key
	policy *policy
	// proxies registered with proxy@llm-agent (proxyreg.go)
	proxies proxies

	listener *net.UnixListener
	ino      uint64 // of our socket file, to remove only our own

	mu      sync.Mutex
	shared  []*upstream
	next    int
	reserve []*reserved
	watch   net.Conn
	relays  map[*relayLink]struct{} // relay connections, open or opening
	closed  bool
	done    chan struct{}
	stopped chan struct{} // closed when Close has finished

	// held is the forwarded socket, kept to dial relay connections after
	// its path is gone; heldMu keeps Close from closing the descriptor
	// (whose number could then be reused) under a dial.
	heldMu sync.RWMutex
	held   *heldSocket

	link linkState
}

type upstream struct {
	mu sync.Mutex
	c  *protocol.Client
}

// reserved is a reserve connection; its conn carries a relay stream once
// its client turns it into one.
type reserved struct {
	c    *protocol.Client
	conn net.Conn
}

// OwnerDir returns the directory of the stable socket for an owner id.
func OwnerDir(base, owner string) string { return filepath.Join(base, owner) }

// Start connects to the agent, proves its owner, opens the upstream
// connections, takes over the owner's stable path, and hides the forwarded
// socket. Serve then serves.
func Start(cfg Config) (*Guard, error) {
	if cfg.Shared == 0 {
		cfg.Shared = 4
	}
	if cfg.Reserve == 0 {
		cfg.Reserve = 4
	}
	if cfg.MaxRelays == 0 {
		cfg.MaxRelays = defaultMaxRelays
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if err := harden(); err != nil {
		return nil, err
	}
	me, err := readSelf(cfg.Leader)
	if err != nil {
		return nil, err
	}
	g := &Guard{cfg: cfg, done: make(chan struct{}), stopped: make(chan struct{})}
	fail := func(err error) (*Guard, error) {
		g.closeUpstreams()
		g.closeHeld()
		return nil, err
	}

	// Held before the first dial, and checked to be still at the path
	// after the last, so that every connection reached this socket.
	if g.held, err = holdSocket(cfg.Upstream); err != nil {
		return nil, err
	}
	first, err := dialAgent(cfg.Upstream)
	if err != nil {
		return fail(err)
	}
	g.shared = append(g.shared, &upstream{c: first})
	ownerKey, err := proveOwner(first)
	if err != nil {
		return fail(err)
	}
	g.Owner = OwnerID(ownerKey)

	g.policy = &policy{self: me, allowExe: map[string]bool{}, owners: map[uint32]bool{}}
	for _, e := range cfg.AllowExe {
		g.policy.allowExe[e] = true
	}
	g.policy.refresh = func() ([]protocol.Session, error) {
		if g.link.down.Load() {
			return nil, errors.New(g.failFastText())
		}
		var out []protocol.Session
		err := g.withShared(func(c *protocol.Client) error {
			var err error
			out, err = c.Guard(&protocol.GuardRequest{Op: protocol.GuardSessions})
			return err
		})
		return out, err
	}
	if me.sessionID != auditUnset {
		if _, err := first.Guard(&protocol.GuardRequest{Op: protocol.GuardRegister,
			Session: protocol.Session{BootID: me.bootID, SessionID: me.sessionID}}); err != nil {
			return fail(fmt.Errorf("registering the login session with the agent: %w", err))
		}
	}

	for len(g.shared) < cfg.Shared {
		c, err := dialAgent(cfg.Upstream)
		if err != nil {
			return fail(err)
		}
		g.shared = append(g.shared, &upstream{c: c})
	}
	for len(g.reserve) < cfg.Reserve {
		conn, err := dialConn(cfg.Upstream)
		if err != nil {
			return fail(err)
		}
		g.reserve = append(g.reserve, &reserved{c: protocol.NewClient(conn), conn: conn})
	}
	// An idle connection whose end tells us the owner disconnected.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	g.watch, err = peercred.DialOwned(ctx, cfg.Upstream)
	cancel()
	if err != nil {
		return fail(fmt.Errorf("connecting to the forwarded agent: %w", err))
	}
	if err := g.held.samePath(cfg.Upstream); err != nil {
		return fail(err)
	}

	if err := g.listen(ownerKey); err != nil {
		return fail(err)
	}
	g.boundShared()
	if !cfg.KeepUpstream {
		if err := os.Remove(cfg.Upstream); err != nil && !errors.Is(err, os.ErrNotExist) {
			g.Close()
			return nil, fmt.Errorf("hiding the forwarded socket: %w", err)
		}
	}
	return g, nil
}

func dialAgent(path string) (*protocol.Client, error) {
	conn, err := dialConn(path)
	if err != nil {
		return nil, err
	}
	return protocol.NewClient(conn), nil
}

// dialConn connects to the agent socket at path and checks who serves it,
// as protocol.DialOwned does.
func dialConn(path string) (*net.UnixConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := peercred.DialOwned(ctx, path)
	if err != nil {
		var owe *peercred.OwnerError
		if errors.As(err, &owe) {
			return nil, err
		}
		return nil, fmt.Errorf("connecting to the forwarded agent at %s: %w", path, err)
	}
	return conn, nil
}

// proveOwner asks the agent for its owner key and checks, by a signature
// over a fresh nonce, that it holds it.
func proveOwner(c *protocol.Client) (ssh.PublicKey, error) {
	nonce := make([]byte, 32)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	r, err := c.Owner(nonce)
	if err != nil {
		return nil, fmt.Errorf("asking the agent for its owner identity: %w", err)
	}
	key, err := ssh.ParsePublicKey(r.Key)
	if err != nil {
		return nil, fmt.Errorf("owner key: %w", err)
	}
	var sig ssh.Signature
	if err := ssh.Unmarshal(r.Signature, &sig); err != nil {
		return nil, fmt.Errorf("owner signature: %w", err)
	}
	ck, ok := key.(ssh.CryptoPublicKey)
	if !ok || key.Type() != ssh.KeyAlgoED25519 || sig.Format != ssh.KeyAlgoED25519 {
		return nil, errors.New("owner key: want ed25519")
	}
	pub, ok := ck.CryptoPublicKey().(ed25519.PublicKey)
	if !ok || !ed25519.Verify(pub, append([]byte(protocol.OwnerProofContext), nonce...), sig.Blob) {
		return nil, errors.New("the agent could not prove its owner identity")
	}
	return key, nil
}

// listen creates the owner's directory and socket and puts the socket at
// the stable path. The directory is keyed by the owner, so whatever is
// there already is replaced: an earlier guard of the same owner (taken
// over), or a squatter (a socket that proves another owner key, does not
// answer, or is served by another user), which is logged.
func (g *Guard) listen(owner ssh.PublicKey) error {
	if err := os.MkdirAll(g.cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("guard directory: %w", err)
	}
	if err := privateDir(g.cfg.Dir, 0o022); err != nil {
		return err
	}
	dir := OwnerDir(g.cfg.Dir, g.Owner)
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("guard directory: %w", err)
	}
	if err := privateDir(dir, 0o077); err != nil {
		return err
	}
	g.Path = StablePath(g.cfg.Dir, g.Owner)
	if _, err := os.Lstat(g.Path); err == nil {
		if why := squatter(g.Path, owner); why != "" {
			fmt.Fprintf(g.cfg.Log, "guard: replacing a squatter at %s: %s\n", g.Path, why)
		}
	}
	tmp := filepath.Join(dir, fmt.Sprintf(".agent.%d.sock", os.Getpid()))
	os.Remove(tmp)
	old := syscall.Umask(0o177)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	syscall.Umask(old)
	if err != nil {
		return fmt.Errorf("guard socket: %w", err)
	}
	l.SetUnlinkOnClose(false)
	if err := os.Rename(tmp, g.Path); err != nil {
		l.Close()
		os.Remove(tmp)
		return fmt.Errorf("guard socket: %w", err)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(g.Path, &st); err == nil {
		g.ino = st.Ino
	}
	g.listener = l
	return nil
}

// Serve accepts connections until the upstream goes away or Close.
func (g *Guard) Serve() error {
	go g.watchUpstream()
	go g.watchLogin()
	go g.keepAlive()
	for {
		c, err := g.listener.AcceptUnix()
		if err != nil {
			select {
			case <-g.done:
				// Let Close finish removing the socket before we return.
				<-g.stopped
				return nil
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		go g.serveConn(c)
	}
}

// watchUpstream returns when the forwarded agent is gone, and closes the
// guard. The agent never writes unasked, so a read on the idle watch
// connection returns only at its end; every minute it asks for the status
// instead, so that the agent's idle timeout does not end it.
func (g *Guard) watchUpstream() {
	defer g.Close()
	var b [1]byte
	for {
		g.watch.SetReadDeadline(time.Now().Add(time.Minute))
		_, err := g.watch.Read(b[:])
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			fmt.Fprintf(g.cfg.Log, "guard: the forwarded agent is gone; exiting\n")
			return
		}
		g.watch.SetWriteDeadline(time.Now().Add(frameTimeout))
		if _, err := g.watch.Write(protocol.SimpleExtension(protocol.ExtStatus)); err != nil {
			return
		}
		// A late answer is waited for (a dead link makes the guard fail
		// fast meanwhile), not cut short: see failfast.go.
		g.watch.SetReadDeadline(time.Now().Add(upstreamBound))
		t := time.AfterFunc(g.timeout(), g.linkSilent)
		_, err = protocol.ReadFrame(g.watch, protocol.MaxReply)
		t.Stop()
		if err != nil {
			return
		}
		g.linkAnswered()
	}
}

// watchLogin closes the guard when the owner's login shell (the session
// leader) exits: the ssh session would otherwise stay open for the guard's
// own agent channels, and the guard would serve on after the owner left.
func (g *Guard) watchLogin() {
	leader, at := g.policy.self.leader, g.policy.self.leaderAt
	if leader <= 1 || leader == os.Getpid() {
		return // a guard in its own session (-D from a script) has no login to watch
	}
	fd, err := peercred.PidfdOpen(leader)
	if err != nil {
		return
	}
	defer closeFD(fd)
	if p, err := peercred.ProcessOf(leader); err != nil || p.StartTime != at {
		g.Close() // already gone
		return
	}
	if waitExit(fd, g.done) {
		fmt.Fprintf(g.cfg.Log, "guard: the owner's login (pid %d) ended; exiting\n", leader)
		g.Close()
	}
}

// keepAlive asks for the status on every held connection every two
// minutes, well within the agent's idle timeout.
func (g *Guard) keepAlive() {
	t := time.NewTicker(2 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-g.done:
			return
		case <-t.C:
		}
		g.mu.Lock()
		shared := append([]*upstream(nil), g.shared...)
		reserve := append([]*reserved(nil), g.reserve...)
		g.mu.Unlock()
		for _, u := range shared {
			u.mu.Lock()
			u.c.Status()
			u.mu.Unlock()
		}
		for _, c := range reserve {
			// Reserve connections are idle until taken; taking one is
			// under g.mu, which a status call must not hold for long.
			g.mu.Lock()
			still := false
			for _, r := range g.reserve {
				still = still || r == c
			}
			if still {
				c.c.Status()
			}
			g.mu.Unlock()
		}
	}
}

// Done is closed when the guard stops.
func (g *Guard) Done() <-chan struct{} { return g.done }

// Close stops the guard, removes its socket if it is still ours, and
// drops its upstream connections.
func (g *Guard) Close() {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		<-g.stopped
		return
	}
	g.closed = true
	close(g.done)
	g.mu.Unlock()
	defer close(g.stopped)
	if g.listener != nil {
		g.listener.Close()
		var st syscall.Stat_t
		if syscall.Lstat(g.Path, &st) == nil && st.Ino == g.ino {
			os.Remove(g.Path)
		}
	}
	g.closeUpstreams()
	g.closeRelays()
	g.closeHeld()
}

func (g *Guard) closeUpstreams() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, u := range g.shared {
		u.c.Close()
	}
	for _, r := range g.reserve {
		r.c.Close()
	}
	g.shared, g.reserve = nil, nil
	if g.watch != nil {
		g.watch.Close()
	}
}

// withShared runs fn on the next shared upstream connection.
func (g *Guard) withShared(fn func(*protocol.Client) error) error {
	g.mu.Lock()
	if len(g.shared) == 0 {
		g.mu.Unlock()
		return errors.New("the guard is closed")
	}
	u := g.shared[g.next%len(g.shared)]
	g.next++
	g.mu.Unlock()
	u.mu.Lock()
	defer u.mu.Unlock()
	return fn(u.c)
}

func (g *Guard) takeReserve() *reserved {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.reserve) == 0 {
		return nil
	}
	c := g.reserve[len(g.reserve)-1]
	g.reserve = g.reserve[:len(g.reserve)-1]
	return c
}

// refuse logs a refusal here and in the laptop's audit log. The reason
// holds paths the peer chose (its executable's), so it is escaped and cut
// to a length the agent always accepts: a refusal the agent rejected would
// leave no record on the laptop.
func (g *Guard) refuse(why string) {
	why = refusalText(why)
	fmt.Fprintf(g.cfg.Log, "guard: refused: %s\n", why)
	go g.withShared(func(c *protocol.Client) error {
		_, err := c.Guard(&protocol.GuardRequest{Op: protocol.GuardRefused, Text: why})
		return err
	})
}

// maxRefusal bounds a refusal record, well within protocol.MaxTextLen
// even after the cut marker.
const maxRefusal = 1024

// refusalText escapes control characters, invalid UTF-8 and backslashes as
// \xNN (\\), so the text is one printable line, and cuts it to maxRefusal
// bytes, saying so.
func refusalText(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == utf8.RuneError || unicode.IsControl(r):
			for _, c := range []byte(s[i : i+n]) {
				fmt.Fprintf(&b, `\x%02x`, c)
			}
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	out := b.String()
	if len(out) <= maxRefusal {
		return out
	}
	cut := maxRefusal
	for cut > 0 && !utf8.RuneStart(out[cut]) {
		cut--
	}
	return out[:cut] + fmt.Sprintf(" ...[cut: %d bytes in all]", len(out))
}

const (
	idleTimeout  = 10 * time.Minute
	frameTimeout = 10 * time.Second
)

// serveConn checks the peer and relays its requests.
func (g *Guard) serveConn(nc *net.UnixConn) {
	defer nc.Close()
	peer, err := peercred.FromConn(nc)
	if err != nil {
		g.refuse(fmt.Sprintf("peer credentials: %v", err))
		return
	}
	proc, recheck, release := peer.Pinned()
	defer release()
	err = g.policy.allow(proc, peer.UID)
	refusal := "refused by the guard: this process is not one of the owner's (see the guard's log)"
	if err == nil {
		if err = g.checkUnderProxy(proc); err != nil {
			refusal = "refused by the guard: this process runs under llm-agent-client proxy; under the proxy only the proxy may take a credential"
		}
	}
	if err == nil && !recheck() {
		// The process we judged must still be the one connected.
		err = fmt.Errorf("pid %d changed during the check", proc.PID)
	}
	peer.Close()
	if err != nil {
		g.refuse(err.Error())
		// Answer the first request with the reason, so that the client
		// says why rather than that the connection broke.
		nc.SetDeadline(time.Now().Add(time.Second))
		if _, err := protocol.ReadFrame(nc, protocol.MaxFrame); err == nil {
			nc.Write(protocol.MarshalFailure(protocol.CodeNotPermitted, refusal))
		}
		return
	}
	g.serveFrames(nc, proc)
}

// serveFrames relays the requests of a checked client until it hangs up,
// breaks the protocol, or turns its connection into a relay stream.
func (g *Guard) serveFrames(nc net.Conn, proc peercred.Process) {
	var dedicated *reserved
	defer func() {
		if dedicated != nil {
			dedicated.c.Close()
		}
	}()
	frames := &protocol.FrameConn{Conn: nc, Max: protocol.MaxFrame, Idle: idleTimeout, Frame: frameTimeout}
	for {
		n, err := frames.ReadHeader()
		if err != nil {
			if protocol.HeaderRefused(err) {
				frames.Write(protocol.FailureFrame())
			}
			return
		}
		frame, err := frames.ReadBody(n)
		if err != nil {
			return
		}
		if !g.relay(frames, frame, proc, &dedicated) {
			return
		}
	}
}

// relay answers one request frame, or passes it to the agent and its reply
// back, and wipes it. It reports whether the connection may go on.
func (g *Guard) relay(frames *protocol.FrameConn, frame []byte, proc peercred.Process, dedicated **reserved) bool {
	defer clear(frame)
	name, payload, perr := protocol.ParseExtension(frame[4:])
	if perr != nil {
		name = "" // not an extension: relayed as it is
	}
	switch name {
	case protocol.ExtProxy:
		// Ours to answer: the agent must not be asked who is a proxy.
		return frames.Write(g.answerProxy(payload, proc)) == nil
	case protocol.ExtRelay:
		return g.relayStream(frames, frame, proc, *dedicated)
	}
	if *dedicated == nil && name == protocol.ExtSessionBind {
		// A nested ssh hop binds its session to the connection: give
		// it an upstream connection of its own.
		if *dedicated = g.takeReserve(); *dedicated == nil {
			fmt.Fprintf(g.cfg.Log, "guard: no upstream connection left for a nested ssh hop\n")
			frames.Write(protocol.FailureFrame())
			return false
		}
	}
	var reply []byte
	var err error
	if *dedicated != nil {
		reply, err = (*dedicated).c.Call(frame)
	} else if g.link.down.Load() {
		// The laptop stopped answering: say so at once.
		reply = g.failFastReply(frame)[4:]
	} else {
		reply, err = g.callShared(frame)
	}
	if err != nil {
		if *dedicated == nil {
			fmt.Fprintf(g.cfg.Log, "guard: upstream: %v; exiting\n", err)
			g.Close()
		}
		// Otherwise only this client's own upstream connection failed.
		return false
	}
	defer clear(reply)
	return frames.WriteBody(reply) == nil
}

// squatter says why the socket at path is not an earlier guard of owner,
// or "" when it is one.
func squatter(path string, owner ssh.PublicKey) string {
	c, err := protocol.DialOwned(path, 5*time.Second)
	if err != nil {
		return protocol.DialReason(err)
	}
	defer c.Close()
	c.Timeout = 5 * time.Second
	key, err := proveOwner(c)
	if err != nil {
		return oneLine(err.Error())
	}
	if !bytes.Equal(key.Marshal(), owner.Marshal()) {
		sum := sha256.Sum256(key.Marshal())
		return "it proves another owner key, " + hex.EncodeToString(sum[:8])
	}
	return ""
}

// CheckBase refuses a base directory of stable sockets that is a symlink,
// not ours, or writable by group or others, as Start does.
func CheckBase(dir string) error { return privateDir(dir, 0o022) }

// privateDir refuses a guard directory that is a symlink, not ours, or
// open to group or others beyond mask's bits (at least write: whoever can
// write there can plant the stable socket).
func privateDir(dir string, mask uint32) error {
	var st syscall.Stat_t
	if err := syscall.Lstat(dir, &st); err != nil {
		return fmt.Errorf("guard directory: %w", err)
	}
	switch {
	case st.Mode&syscall.S_IFMT == syscall.S_IFLNK:
		return fmt.Errorf("guard directory %s is a symlink; refusing it (remove it, or use --dir)", dir)
	case st.Mode&syscall.S_IFMT != syscall.S_IFDIR:
		return fmt.Errorf("guard directory %s is not a directory; refusing it", dir)
	case st.Uid != uint32(os.Getuid()):
		return fmt.Errorf("guard directory %s belongs to uid %d, not to you (uid %d); refusing it", dir, st.Uid, os.Getuid())
	case uint32(st.Mode)&mask != 0:
		return fmt.Errorf("guard directory %s is open to group or others (mode %#o); refusing it (chmod 700 it)", dir, st.Mode&0o777)
	}
	return nil
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

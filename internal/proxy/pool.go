package proxy

import (
	"context"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/llm-agent/llm-agent/protocol"
)

// Held agent connections. Over ssh a get on a connection the proxy already
// holds costs one laptop round trip; on a fresh connection to a forwarded
// socket it costs two, because sshd opens a channel to the laptop first and
// the get waits for it. So the proxy keeps the connections of finished
// requests open for the next ones, one request per connection at a time
// (a get held by a confirm prompt holds up no other request), and keeps a
// spare, dialled and answered ahead, so that the request after one that
// took the last held connection does not pay the channel either. Every
// request still asks the agent (a removed credential or a lock takes
// effect at the next request); every dial goes through Proxy.dial (the
// owner check).
//
// A held connection is used again only while
//
//   - the agent's end is open (the owner's disconnect closes it);
//   - the socket file it was dialled at is still in place, the same file
//     (a socket replaced or removed is dialled anew, or not at all);
//   - a login session of the ssh connection that serves the socket lives:
//     ssh waits for every open agent channel before it exits, so a held
//     one would keep the owner's ssh, and the agent, reachable after the
//     owner logged out. The proxy watches the child processes that the
//     socket's server (sshd, for a forwarded socket) had when the
//     connection was dialled, its login sessions (as the kernel lists
//     them in /proc/PID/task/TID/children; without that list nothing is
//     held), and closes the connections held for them when all have
//     ended, or the server has. A socket whose
//     server has no child process (the guard, whose own connections to
//     the laptop are held) costs no channel to dial, and its connections
//     are not held.
//
// Held connections are closed after IdleTime unused and when the proxy
// stops.

// Defaults of Config.MaxIdle and Config.IdleTime. A fresh forwarded
// connection costs the laptop a session-bind (measured here: ~3.5 ms of
// CPU, half of it in the agent's private ssh-agent), so a burst of up to 64
// requests finds its connections held after the first; a connection is
// held only once a request used it, and the least recently used go first.
// The agent and the guard close a connection idle for 10 minutes; the
// pool closes its own first.
const (
	defaultMaxIdle  = 64
	defaultIdleTime = 5 * time.Minute
)

// agentConn is a connection to the agent, and what decides whether it may
// be held.
type agentConn struct {
	net.Conn
	path  string        // the socket it was dialled at; "" not held
	file  fileID        // that socket file as it was then
	watch *sessionWatch // the login sessions it is held for; nil not held
	since time.Time     // when it was last given back
}

type agentPool struct {
	dial     func(context.Context) (net.Conn, error)
	timeout  time.Duration // bounds a spare's dial and first answer
	maxIdle  int           // 0: hold nothing
	idleTime time.Duration

	mu      sync.Mutex
	idle    []*agentConn // the longest held first
	watches map[int]*sessionWatch
	spare   bool // a spare is being dialled
	closed  bool
	timer   *time.Timer // closes connections held idleTime
	stop    context.Context
	cancel  context.CancelFunc
}

func newPool(dial func(context.Context) (net.Conn, error), timeout time.Duration, maxIdle int, idleTime time.Duration) *agentPool {
	stop, cancel := context.WithCancel(context.Background())
	return &agentPool{dial: dial, timeout: timeout, maxIdle: max(maxIdle, 0), idleTime: idleTime,
		watches: map[int]*sessionWatch{}, stop: stop, cancel: cancel}
}

// take returns a held connection that may serve again, or else a fresh
// one dialled within ctx; reused says which.
func (p *agentPool) take(ctx context.Context) (conn *agentConn, reused bool, err error) {
	for {
		c := p.pop()
		if c == nil {
			break
		}
		if p.holdable(c) && stillOpen(c.Conn) {
			p.keepSpare()
			return c, true, nil
		}
		c.Close()
	}
	c, err := p.dialNew(ctx)
	return c, false, err
}

// dialNew dials a fresh connection and notes what decides whether it may
// be held.
func (p *agentPool) dialNew(ctx context.Context) (*agentConn, error) {
	conn, err := p.dial(ctx)
	if err != nil {
		return nil, err
	}
	c := &agentConn{Conn: conn}
	if p.maxIdle == 0 {
		return c, nil
	}
	addr := conn.RemoteAddr()
	if addr == nil || addr.Network() != "unix" || addr.String() == "" {
		return c, nil
	}
	file, err := statID(addr.String())
	if err != nil {
		return c, nil
	}
	if c.watch = p.watchFor(conn); c.watch != nil {
		c.path, c.file = addr.String(), file
	}
	return c, nil
}

// holdable reports whether c may be held and used again: its login
// sessions live and its socket file is still the one it was dialled at.
func (p *agentPool) holdable(c *agentConn) bool {
	if c.path == "" || c.watch == nil || c.watch.over() {
		return false
	}
	file, err := statID(c.path)
	return err == nil && file == c.file
}

// pop takes the most recently held connection, if any.
func (p *agentPool) pop() *agentConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.idle)
	if n == 0 {
		return nil
	}
	c := p.idle[n-1]
	p.idle = p.idle[:n-1]
	return c
}

// put holds c for a later request if it may be held; past maxIdle the
// longest held goes.
func (p *agentPool) put(c *agentConn) {
	if !p.holdable(c) {
		c.Close()
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.maxIdle == 0 {
		c.Close()
		return
	}
	if len(p.idle) >= p.maxIdle {
		p.idle[0].Close()
		p.idle = p.idle[1:]
	}
	c.since = time.Now()
	p.idle = append(p.idle, c)
	if p.timer == nil {
		p.timer = time.AfterFunc(p.idleTime, p.expire)
	}
}

// expire closes the connections held idleTime or longer, and sets the
// timer for the next one.
func (p *agentPool) expire() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.timer = nil
	if p.closed {
		return
	}
	now := time.Now()
	for len(p.idle) > 0 && now.Sub(p.idle[0].since) >= p.idleTime {
		p.idle[0].Close()
		p.idle = p.idle[1:]
	}
	if len(p.idle) > 0 {
		p.timer = time.AfterFunc(p.idleTime-now.Sub(p.idle[0].since), p.expire)
	}
}

// release closes the connections held for w, whose sessions have ended.
func (p *agentPool) release(w *sessionWatch) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.watches[w.pid] == w {
		delete(p.watches, w.pid)
	}
	kept := p.idle[:0]
	for _, c := range p.idle {
		if c.watch == w {
			c.Close()
			continue
		}
		kept = append(kept, c)
	}
	clear(p.idle[len(kept):])
	p.idle = kept
}

// keepSpare dials a spare in the background when the pool has just given
// out its last held connection, if it can hold the spare beside it.
func (p *agentPool) keepSpare() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.spare || len(p.idle) > 0 || p.maxIdle < 2 {
		return
	}
	p.spare = true
	go p.dialSpare()
}

// dialSpare dials a connection and has it answer a status request (over
// ssh that waits for the channel to the laptop), then holds it.
func (p *agentPool) dialSpare() {
	defer func() {
		p.mu.Lock()
		p.spare = false
		p.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(p.stop, p.timeout)
	defer cancel()
	conn, err := p.dialNew(ctx)
	if err != nil {
		return
	}
	if conn.watch == nil {
		conn.Close() // it would not be held
		return
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	c := protocol.NewClient(conn.Conn)
	c.Timeout = p.timeout
	_, err = c.Status()
	if !stop() || !inStep(err) {
		conn.Close()
		return
	}
	p.put(conn)
}

// inStep reports whether a connection is fit for another request after an
// exchange that ended with err: an answer, even a refusal, leaves it in
// step; a broken or timed-out exchange does not.
func inStep(err error) bool {
	var f *protocol.Failure
	return err == nil || errors.As(err, &f)
}

// close closes every held connection and stops dialling spares and
// watching sessions; the connections in use are closed when their
// requests end.
func (p *agentPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	p.cancel()
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	for _, c := range p.idle {
		c.Close()
	}
	p.idle = nil
}

// watchFor returns the watch on the login sessions of the process that
// serves conn's socket, starting one if needed; nil when that process has
// none (or they cannot be seen), and conn is not to be held.
func (p *agentPool) watchFor(conn net.Conn) *sessionWatch {
	pid := peerPID(conn)
	if pid <= 0 {
		return nil
	}
	p.mu.Lock()
	if w := p.watches[pid]; w != nil && !w.over() {
		p.mu.Unlock()
		return w
	}
	p.mu.Unlock()
	w := watchSessions(pid)
	if w == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		w.stop()
		return nil
	}
	if old := p.watches[pid]; old != nil && !old.over() {
		w.stop() // another request started one meanwhile
		return old
	}
	p.watches[pid] = w
	go func() {
		if w.wait(p.stop) {
			p.release(w)
		}
	}()
	return w
}

// stillOpen reports whether the agent's end of c is still open and nothing
// waits unread (the agent never writes unasked, so anything there means
// the connection is out of step), without reading. A connection that
// cannot be looked at is taken as open: a failed write then says
// otherwise, before anything was sent.
func stillOpen(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	var b [1]byte
	var rerr error
	if err := rc.Control(func(fd uintptr) {
		_, _, rerr = unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	}); err != nil {
		return true
	}
	// Nothing to read is the one good answer: a byte is out of step, no
	// error is the end of the stream, and any other error a broken one.
	return rerr == unix.EAGAIN || rerr == unix.EWOULDBLOCK
}

// sentConn records whether any byte of a request was written, so that a
// request on a held connection that turns out dead is retried only when
// the agent cannot have seen it.
type sentConn struct {
	net.Conn
	sent bool
}

func (s *sentConn) Write(b []byte) (int, error) {
	n, err := s.Conn.Write(b)
	if n > 0 {
		s.sent = true
	}
	return n, err
}

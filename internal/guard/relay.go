package guard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/llm-agent/llm-agent/internal/peercred"
	"github.com/llm-agent/llm-agent/protocol"
)

// Relay connections (relay@llm-agent). Once the agent accepts the request,
// the connection stops carrying agent frames and carries an HTTP/2 stream,
// so it cannot be one of the shared connections, and the few reserve ones
// are kept for nested ssh hops: the guard dials a new connection to the
// forwarded socket, through the descriptor it held before it unlinked the
// path (sys_linux.go). A client that sent session-bind relays on its
// reserve connection instead. After SSH_AGENT_SUCCESS the guard copies
// bytes both ways, with no deadline (a stream may idle for minutes between
// requests), until either side ends; Close ends every relay at once.

// defaultMaxRelays bounds the relay connections of one guard when
// Config.MaxRelays is zero.
const defaultMaxRelays = 32

// relayLink is one relay connection, open or being opened: the client's
// end and, once dialled, the agent's; Close closes both.
type relayLink struct {
	client net.Conn
	up     net.Conn
}

func (g *Guard) maxRelays() int {
	if g.cfg.MaxRelays > 0 {
		return g.cfg.MaxRelays
	}
	return defaultMaxRelays
}

// acquireRelay takes one of the relay slots for client and returns it with
// the number now taken, or nil with the number taken when all are, or nil
// and -1 when the guard is closed.
func (g *Guard) acquireRelay(client net.Conn) (*relayLink, int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, -1
	}
	if len(g.relays) >= g.maxRelays() {
		return nil, len(g.relays)
	}
	if g.relays == nil {
		g.relays = map[*relayLink]struct{}{}
	}
	l := &relayLink{client: client}
	g.relays[l] = struct{}{}
	return l, len(g.relays)
}

func (g *Guard) releaseRelay(l *relayLink) {
	g.mu.Lock()
	delete(g.relays, l)
	g.mu.Unlock()
}

// attachRelay records the agent's end of l, so that Close closes it; false
// when the guard closed meanwhile.
func (g *Guard) attachRelay(l *relayLink, up net.Conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	l.up = up
	return true
}

// closeRelays ends every relay connection; Close calls it after it marked
// the guard closed, so none is added after.
func (g *Guard) closeRelays() {
	g.mu.Lock()
	var conns []net.Conn
	for l := range g.relays {
		conns = append(conns, l.client)
		if l.up != nil {
			conns = append(conns, l.up)
		}
	}
	g.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

func (g *Guard) closeHeld() {
	g.heldMu.Lock()
	defer g.heldMu.Unlock()
	if g.held != nil {
		g.held.close()
		g.held = nil
	}
}

// dialRelay opens a new connection to the forwarded agent through the held
// descriptor and checks who serves it, as every dial of an agent does.
func (g *Guard) dialRelay() (*net.UnixConn, error) {
	g.heldMu.RLock()
	defer g.heldMu.RUnlock()
	if g.held == nil {
		return nil, errors.New("the guard holds no forwarded socket")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return peercred.DialOwned(ctx, g.held.path())
}

// relayStream answers a relay@llm-agent frame: it passes it to the agent on
// a connection of the client's own and the reply back, and on success
// carries the stream until it ends. It reports whether the client's
// connection may go on carrying frames (after a failure reply).
func (g *Guard) relayStream(frames *protocol.FrameConn, frame []byte, proc peercred.Process, dedicated *reserved) bool {
	who := fmt.Sprintf("pid %d (%s)", proc.PID, refusalText(proc.Exe))
	logf := func(format string, args ...any) {
		fmt.Fprintf(g.cfg.Log, "guard: relay connection for %s %s\n", who, fmt.Sprintf(format, args...))
	}
	if dedicated == nil && g.link.down.Load() {
		logf("refused: the laptop does not answer")
		return frames.Write(g.failFastReply(frame)) == nil
	}
	l, n := g.acquireRelay(frames.Conn)
	if l == nil {
		if n < 0 {
			return false // closing
		}
		logf("refused: %d relay connections are open, the limit", n)
		return frames.Write(protocol.MarshalFailure(protocol.CodeResource,
			fmt.Sprintf("the guard carries at most %d relay connections at once; retry when one has ended", g.maxRelays()))) == nil
	}
	defer g.releaseRelay(l)

	var up net.Conn
	if dedicated != nil {
		up = dedicated.conn
	} else {
		c, err := g.dialRelay()
		if err != nil {
			logf("refused: connecting to the forwarded agent: %v", oneLine(err.Error()))
			return frames.Write(protocol.MarshalFailure(protocol.CodeUnreachable,
				"the guard could not connect to the forwarded agent ("+oneLine(protocol.DialReason(err))+"); log in again")) == nil
		}
		up = c
	}
	// closeUp drops a fresh connection; a dedicated one is the client's
	// and closes with it.
	closeUp := func() {
		if dedicated == nil {
			up.Close()
		}
	}
	if !g.attachRelay(l, up) {
		closeUp()
		return false
	}

	reply, err := g.relayExchange(up, frame)
	if err != nil {
		closeUp()
		if dedicated != nil {
			// Out of step now, and the client's own: drop the client.
			logf("failed: %v", err)
			return false
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			g.linkSilent()
			logf("refused: the laptop does not answer")
			return frames.Write(protocol.MarshalFailure(protocol.CodeUnreachable, g.failFastText())) == nil
		}
		logf("failed: %v", err)
		return frames.Write(protocol.MarshalFailure(protocol.CodeFailed,
			"the forwarded agent dropped the relay connection; retry")) == nil
	}
	defer clear(reply)
	if reply[0] != protocol.MsgSuccess {
		// Still an agent connection: a fresh one is not needed any more,
		// a dedicated one goes on serving the client's frames.
		closeUp()
		why := "the agent does not support it"
		if reply[0] == protocol.MsgExtensionFailure {
			why = refusalText(protocol.ParseFailure(reply[1:]).Message)
		}
		logf("refused by the agent: %s", why)
		return frames.WriteBody(reply) == nil
	}
	if err := frames.WriteBody(reply); err != nil {
		closeUp()
		return false
	}
	logf("opened (%d of at most %d)", n, g.maxRelays())
	// Neither FrameConn nor ReadFrame reads past a frame, so what the
	// client wrote after the relay frame, and what the agent wrote after
	// its reply, still waits in the sockets for the copy.
	splice(frames.Conn, up)
	return false
}

// relayExchange sends the relay frame on up and reads the agent's reply,
// within the time-out: a connection of the client's own may be dropped
// when the link is silent, unlike a shared one.
func (g *Guard) relayExchange(up net.Conn, frame []byte) ([]byte, error) {
	up.SetDeadline(time.Now().Add(g.timeout()))
	if _, err := up.Write(frame); err != nil {
		return nil, fmt.Errorf("writing the relay request: %w", err)
	}
	reply, err := protocol.ReadFrame(up, protocol.MaxReply)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = protocol.ErrHungUp
		}
		return nil, fmt.Errorf("reading the relay reply: %w", err)
	}
	g.linkAnswered()
	return reply, nil
}

// splice copies bytes both ways between a and b, without deadlines, until
// either side ends, then closes both.
func splice(a, b net.Conn) {
	a.SetDeadline(time.Time{})
	b.SetDeadline(time.Time{})
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		io.Copy(dst, src)
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	a.Close()
	b.Close()
	<-done
}

package guard

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llm-agent/llm-agent/protocol"
)

// Failing fast on a dead link. A laptop that stops answering (lid closed,
// Wi-Fi lost) leaves the forwarded socket open for as long as sshd keeps
// the connection (~16 minutes by default); without this every request would
// wait its full time-out, again and again. Once one exchange has gone
// unanswered for the time-out, the guard answers every request at once with
// a failure and a single probe waits for the laptop; the first answer, to
// the probe or to a request still in flight, clears the state.
//
// No upstream exchange is cut short at the time-out: a reply that comes
// late would desynchronise a held connection (the guard cannot redial the
// forwarded socket it hid). Exchanges are bounded by upstreamBound; a link
// silent that long is gone, and the guard exits.

// upstreamBound bounds one exchange on a held upstream connection.
const upstreamBound = idleTimeout

// probeEvery is how often the probe looks for a free connection to ask on.
const probeEvery = 2 * time.Second

// linkState is the guard's view of the laptop link.
type linkState struct {
	down    atomic.Bool // read on every request
	mu      sync.Mutex  // guards the writes of down, and probing
	probing bool
}

// timeout is how long an exchange may go unanswered before the guard
// fails fast.
func (g *Guard) timeout() time.Duration {
	if g.cfg.Timeout > 0 {
		return g.cfg.Timeout
	}
	return protocol.DefaultTimeout
}

// failFastText is the one line a client gets while the link is down.
func (g *Guard) failFastText() string {
	return fmt.Sprintf("the laptop did not answer for %v; failing fast until it answers (llm-agent-client guard)", g.timeout())
}

// failFastReply answers frame while the link is down: an extension failure
// with CodeUnreachable for llm-agent requests, a plain SSH_AGENT_FAILURE for
// everything else (ssh and ssh-add know no failure codes).
func (g *Guard) failFastReply(frame []byte) []byte {
	if len(frame) > 4 && frame[4] == protocol.MsgExtension {
		return protocol.MarshalFailure(protocol.CodeUnreachable, g.failFastText())
	}
	return protocol.FailureFrame()
}

// linkSilent records that an exchange went unanswered for the time-out,
// and starts the probe unless it runs.
func (g *Guard) linkSilent() {
	g.link.mu.Lock()
	defer g.link.mu.Unlock()
	if !g.link.down.Load() {
		g.link.down.Store(true)
		fmt.Fprintf(g.cfg.Log, "guard: %s\n", g.failFastText())
	}
	if !g.link.probing {
		g.link.probing = true
		go g.probe()
	}
}

// linkAnswered records an answer from the laptop.
func (g *Guard) linkAnswered() {
	if !g.link.down.Load() {
		return
	}
	g.link.mu.Lock()
	defer g.link.mu.Unlock()
	if g.link.down.Load() {
		g.link.down.Store(false)
		fmt.Fprintf(g.cfg.Log, "guard: the laptop answers again\n")
	}
}

// probe asks for the status on a free shared connection, one request at
// a time, until the laptop answers; it waits for that answer (up to
// upstreamBound) rather than giving up on it, so the state clears the
// moment the laptop answers.
func (g *Guard) probe() {
	for {
		g.link.mu.Lock()
		if !g.link.down.Load() {
			g.link.probing = false
			g.link.mu.Unlock()
			return
		}
		g.link.mu.Unlock()
		if u := g.freeShared(); u != nil {
			_, err := u.c.Status()
			u.mu.Unlock()
			if err != nil {
				fmt.Fprintf(g.cfg.Log, "guard: upstream: %v; exiting\n", err)
				g.link.mu.Lock()
				g.link.probing = false
				g.link.mu.Unlock()
				g.Close()
				return
			}
			g.linkAnswered()
			continue
		}
		// Every connection waits for an answer already; the first one
		// that comes clears the state.
		select {
		case <-g.done:
			g.link.mu.Lock()
			g.link.probing = false
			g.link.mu.Unlock()
			return
		case <-time.After(probeEvery):
		}
	}
}

// freeShared returns a shared connection that is not in use, locked, or
// nil.
func (g *Guard) freeShared() *upstream {
	g.mu.Lock()
	shared := append([]*upstream(nil), g.shared...)
	g.mu.Unlock()
	for _, u := range shared {
		if u.mu.TryLock() {
			return u
		}
	}
	return nil
}

// callShared relays frame on a shared connection. An exchange that takes
// longer than the time-out puts the guard in the fail-fast state, but is
// not cut short.
func (g *Guard) callShared(frame []byte) ([]byte, error) {
	var reply []byte
	err := g.withShared(func(c *protocol.Client) error {
		t := time.AfterFunc(g.timeout(), g.linkSilent)
		defer t.Stop()
		var err error
		reply, err = c.Call(frame)
		if err == nil {
			g.linkAnswered()
		}
		return err
	})
	return reply, err
}

// boundShared gives the held shared connections their long bound, once
// Start's own exchanges are done.
func (g *Guard) boundShared() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, u := range g.shared {
		u.mu.Lock()
		u.c.Timeout = upstreamBound
		u.mu.Unlock()
	}
}

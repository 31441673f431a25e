package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llm-agent/llm-agent/internal/peercred"
	"github.com/llm-agent/llm-agent/protocol"
)

// Failing fast on a dead link: once one request found the laptop silent
// for the whole time-out, the next ones are answered at once, and a single
// background probe (a status request every ~2 s, each with a short
// time-out) clears the state as soon as the laptop answers. Without it a
// tool's every request would hang the full time-out for as long as sshd
// keeps the dead forward (~16 minutes by default).

// probeEvery is how often the probe asks; probeTimeout bounds each ask.
const (
	probeEvery   = 2 * time.Second
	probeTimeout = 2 * time.Second
)

type linkState struct {
	down    atomic.Bool
	mu      sync.Mutex // guards the writes of down, and probing
	probing bool
	closed  chan struct{}
}

// dial connects to the agent: through Config.Dial when set, else to
// Config.Socket with the owner check.
func (p *Proxy) dial(ctx context.Context) (net.Conn, error) {
	if p.cfg.Dial != nil {
		return p.cfg.Dial(ctx)
	}
	return peercred.DialOwned(ctx, p.cfg.Socket)
}

// failFastText is the message of a request refused while the link is down.
func (p *Proxy) failFastText() string {
	return fmt.Sprintf("llm-agent: the owner is not connected: the laptop did not answer for %v; failing fast until it answers", p.cfg.Timeout)
}

// linkSilent records a request that went unanswered for the time-out and
// starts the probe unless it runs.
func (p *Proxy) linkSilent() {
	p.link.mu.Lock()
	defer p.link.mu.Unlock()
	if !p.link.down.Load() {
		p.link.down.Store(true)
		if p.cfg.Log != nil {
			p.cfg.Log.Printf("%s", p.failFastText())
		}
	}
	if !p.link.probing {
		p.link.probing = true
		go p.probe()
	}
}

// linkAnswered clears the fail-fast state.
func (p *Proxy) linkAnswered() {
	if !p.link.down.Load() {
		return
	}
	p.link.mu.Lock()
	defer p.link.mu.Unlock()
	if p.link.down.Load() {
		p.link.down.Store(false)
		if p.cfg.Log != nil {
			p.cfg.Log.Printf("llm-agent: the laptop answers again")
		}
	}
}

// probe asks for the status, one request at a time, every probeEvery,
// until an answer clears the state or the proxy closes.
func (p *Proxy) probe() {
	for {
		start := time.Now()
		if p.probeOnce() {
			p.linkAnswered()
		}
		p.link.mu.Lock()
		if !p.link.down.Load() {
			p.link.probing = false
			p.link.mu.Unlock()
			return
		}
		p.link.mu.Unlock()
		select {
		case <-p.link.closed:
			p.link.mu.Lock()
			p.link.probing = false
			p.link.mu.Unlock()
			return
		case <-time.After(probeEvery - min(time.Since(start), probeEvery)):
		}
	}
}

// probeOnce reports whether the link answered: the agent's status, or any
// definite answer that is not a time-out (a socket that is gone now, a
// refusal). The requests that follow then say what they find.
func (p *Proxy) probeOnce() bool {
	ctx, cancel := context.WithTimeout(context.Background(), min(probeTimeout, p.cfg.Timeout))
	defer cancel()
	conn, err := p.dial(ctx)
	if err != nil {
		return ctx.Err() == nil && !errors.Is(err, errTimeout)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	c := protocol.NewClient(conn)
	c.Timeout = min(probeTimeout, p.cfg.Timeout)
	_, err = c.Status()
	var f *protocol.Failure
	if errors.As(err, &f) {
		// A guard in front still failing fast has not heard the laptop.
		return f.Code != protocol.CodeUnreachable
	}
	return err == nil
}

package proxy

import (
	"context"
	"errors"
	"fmt"

	"github.com/llm-agent/llm-agent/internal/peercred"
	"github.com/llm-agent/llm-agent/protocol"
)

// RegisterWithGuard registers the calling process as a proxy with the
// guard behind c (proxy@llm-agent): from then on that guard refuses every
// process that runs under this one (the tool and all it starts) and serves
// only the proxy itself. Call it right after every successful dial of a
// guard the proxy has not registered with yet (before the tool starts, and
// after the owner reconnects and a new guard serves the stable path).
//
// A socket with no guard behind it (a plain forwarded socket, or a guard
// older than the request) is said once on the Refused log and is not an
// error: there is no per-process check to extend there, and the tool's
// environment already has no route to the agent. A guard's refusal is an
// error: the caller must not serve the tool through that guard.
func (p *Proxy) RegisterWithGuard(c *protocol.Client) error {
	err := c.RegisterProxy()
	if errors.Is(err, protocol.ErrNoGuard) {
		p.NoteNoGuard()
		return nil
	}
	if err != nil {
		return fmt.Errorf("registering with the guard at %s: %w", p.cfg.Socket, err)
	}
	return nil
}

// NoteNoGuard says, once, on the Refused log, that no guard serves the
// proxy's socket.
func (p *Proxy) NoteNoGuard() {
	p.noGuard.Do(func() {
		if l := p.refusedLog(); l != nil {
			l.Printf("no guard serves %s (a plain forwarded socket?): processes under this proxy are kept from the agent by their environment only; start the guard (llm-agent-client guard) to refuse them by process", p.cfg.Socket)
		}
	})
}

// Register dials the agent socket and registers with the guard behind it
// (RegisterWithGuard).
func (p *Proxy) Register(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	conn, err := peercred.DialOwned(ctx, p.cfg.Socket)
	if err != nil {
		return fmt.Errorf("registering with the guard at %s: %s", p.cfg.Socket, protocol.DialReason(err))
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	c := protocol.NewClient(conn)
	c.Timeout = p.cfg.Timeout
	return p.RegisterWithGuard(c)
}

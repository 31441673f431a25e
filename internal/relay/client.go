package relay

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/llm-agent/llm-agent/protocol"
)

// Upgrade sends relay@llm-agent on c, a fresh connection to the agent,
// and returns c once the agent has turned it into the HTTP/2 stream. A
// refusal is the agent's *protocol.Failure; on any error c is closed.
func Upgrade(ctx context.Context, c net.Conn, who *protocol.Requester, timeout time.Duration) (net.Conn, error) {
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	fail := func(err error) (net.Conn, error) {
		c.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	pc := protocol.NewClient(c)
	pc.Timeout = timeout
	if err := pc.Relay(who); err != nil {
		return fail(err)
	}
	if !stop() {
		return fail(ctx.Err())
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// NewClientTransport returns the server side's transport: HTTP/2 without
// TLS over connections that dial opens to the agent and Upgrade turns
// into relay streams. Requests to any http URL go to the agent; the path
// names the route (/anthropic/v1/messages). Past one connection's stream
// limit it opens another.
func NewClientTransport(dial func(ctx context.Context) (net.Conn, error)) *http.Transport {
	protos := new(http.Protocols)
	protos.SetUnencryptedHTTP2(true)
	return &http.Transport{
		Protocols: protos,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dial(ctx)
		},
		// The answer is the provider's, already decoded on the laptop.
		DisableCompression: true,
		HTTP2: &http.HTTP2Config{
			// A link that stopped answering ends the connection, and the
			// next request dials anew.
			SendPingTimeout: 30 * time.Second,
			PingTimeout:     15 * time.Second,
		},
	}
}

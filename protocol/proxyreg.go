package protocol

import (
	"errors"
	"fmt"
	"strings"
)

// ExtProxy is the request a guard answers itself, never relaying it:
// llm-agent-client proxy registers with the guard it talks to, and from
// then on the guard refuses every process that runs under that proxy
// (its descendants) while it serves the proxy itself. The request carries
// nothing but the operation: the guard learns who registers from the
// connection (SO_PEERCRED, pidfd) and checks the rest itself.
const ExtProxy = "proxy@llm-agent"

// Proxy operations.
const (
	ProxyRegister = "register" // register the connected process as a proxy
)

// ProxyRequest is the payload of proxy@llm-agent.
type ProxyRequest struct {
	Op string
}

// Marshal returns the extension frame.
func (r *ProxyRequest) Marshal() []byte {
	e := newExtension(ExtProxy)
	e.string(r.Op)
	return e.frame()
}

// ParseProxyRequest decodes the payload of proxy@llm-agent.
func ParseProxyRequest(payload []byte) (*ProxyRequest, error) {
	d := &decoder{b: payload}
	r := &ProxyRequest{Op: d.text("op", MaxNameLen)}
	if d.err == nil && r.Op != ProxyRegister {
		d.fail(fmt.Errorf("unknown proxy operation %q", r.Op))
	}
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("proxy request: %w", err)
	}
	return r, nil
}

// GuardRefusalPrefix starts every refusal a guard sends, so that a client
// can tell it from the agent's.
const GuardRefusalPrefix = "refused by the guard: "

// ErrNoGuard is returned by RegisterProxy when the socket's server does
// not know proxy@llm-agent: a laptop agent reached through a plain
// forwarded socket, or a guard older than the request.
var ErrNoGuard = errors.New("no guard answers proxy registration on this socket")

// RegisterProxy registers the calling process with the guard behind c as
// a proxy. It returns ErrNoGuard when no guard answers the request, and
// the guard's *Failure when it refuses.
func (c *Client) RegisterProxy() error {
	body, err := c.roundTrip((&ProxyRequest{Op: ProxyRegister}).Marshal())
	if err != nil {
		return err
	}
	switch body[0] {
	case MsgSuccess:
		return nil
	case MsgExtensionFailure:
		f := ParseFailure(body[1:])
		if strings.HasPrefix(f.Message, GuardRefusalPrefix) {
			return f
		}
		// An agent refuses an unknown @llm-agent extension on a
		// forwarded connection (code 5); only a guard says it refused.
		return ErrNoGuard
	case MsgFailure:
		// A plain SSH_AGENT_FAILURE: the extension is unknown there.
		return ErrNoGuard
	}
	return &TransportError{"reading reply", fmt.Errorf("unexpected reply message %d", body[0])}
}

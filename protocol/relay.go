package protocol

import (
	"errors"
	"fmt"
)

// ExtRelay turns the connection it is sent on into a byte stream that
// carries HTTP/2 without TLS (prior knowledge, RFC 9113 section 3.3), the
// server's side the client and the agent's side the server: each stream
// is one request to a provider, made by the agent with the credential,
// which never leaves the laptop. See PROTOCOL.md section 18.
const ExtRelay = "relay@llm-agent"

// RelayH2 is the one stream protocol defined for relay@llm-agent.
const RelayH2 = "h2"

// ConstraintTokensPerDay bounds the tokens the provider reports for the
// credential's relayed requests in one day of the laptop's clock.
const ConstraintTokensPerDay = "max-tokens-per-day@llm-agent"

// RelayRequest is the payload of relay@llm-agent.
type RelayRequest struct {
	// Protocol is what the stream carries after SSH_AGENT_SUCCESS:
	// RelayH2.
	Protocol  string
	Requester *Requester // optional: who runs the relaying proxy
}

// Marshal returns the extension frame for the request.
func (r *RelayRequest) Marshal() []byte {
	e := newExtension(ExtRelay)
	e.string(r.Protocol)
	if q := r.Requester; q != nil {
		e.requester(q)
	}
	return e.frame()
}

// ParseRelayRequest decodes the payload of relay@llm-agent.
func ParseRelayRequest(payload []byte) (*RelayRequest, error) {
	d := &decoder{b: payload}
	r := &RelayRequest{Protocol: d.text("protocol", MaxNameLen)}
	if !d.empty() {
		r.Requester = d.requester()
	}
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("relay request: %w", err)
	}
	if r.Protocol != RelayH2 {
		return nil, fmt.Errorf("relay request: stream protocol %q; this agent speaks %q", r.Protocol, RelayH2)
	}
	return r, nil
}

func (e *encoder) requester(q *Requester) {
	e.uint32(q.PID)
	e.uint32(q.UID)
	e.string(q.Exe)
	e.string(q.Argv0)
	e.string(q.Cwd)
	e.string(q.Hostname)
}

func (d *decoder) requester() *Requester {
	q := &Requester{}
	q.PID = d.uint32()
	q.UID = d.uint32()
	q.Exe = d.text("exe", MaxTextLen)
	q.Argv0 = d.text("argv0", MaxTextLen)
	q.Cwd = d.text("cwd", MaxTextLen)
	q.Hostname = d.text("hostname", MaxTextLen)
	return q
}

func (e *encoder) tokensPerDay(n uint64) {
	e.byte1(constrainExtension)
	e.string(ConstraintTokensPerDay)
	e.uint64(n)
}

func (d *decoder) tokensPerDay() uint64 {
	n := d.uint64()
	if d.err == nil && n == 0 {
		d.fail(errors.New("a daily token budget of zero"))
	}
	return n
}

// Relay sends relay@llm-agent. After it succeeds the connection carries
// the HTTP/2 stream and the Client must not be used again.
func (c *Client) Relay(who *Requester) error {
	_, err := c.call((&RelayRequest{Protocol: RelayH2, Requester: who}).Marshal())
	return err
}

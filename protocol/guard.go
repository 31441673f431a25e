package protocol

import (
	"errors"
	"fmt"
)

// Extensions for the server-side guard (llm-agent-client guard).
const (
	// ExtOwner proves the agent's owner identity: the agent signs a nonce
	// with its owner key. The guard keys its stable socket path by it.
	ExtOwner = "owner@llm-agent"
	// ExtGuard carries the guard's requests: register the owner's login
	// session on a host, fetch the registered ones, report a refusal.
	ExtGuard = "guard@llm-agent"
)

// OwnerProofContext is prefixed to the nonce before the owner key signs
// it, so that the signature cannot be replayed as anything else.
const OwnerProofContext = "llm-agent owner proof v1\x00"

// OwnerRequest is the payload of owner@llm-agent.
type OwnerRequest struct{ Nonce []byte }

// Marshal returns the extension frame.
func (r *OwnerRequest) Marshal() []byte {
	e := newExtension(ExtOwner)
	e.bytes(r.Nonce)
	return e.frame()
}

// ParseOwnerRequest decodes the payload of owner@llm-agent.
func ParseOwnerRequest(payload []byte) (*OwnerRequest, error) {
	d := &decoder{b: payload}
	r := &OwnerRequest{Nonce: d.bytes()}
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("owner request: %w", err)
	}
	if len(r.Nonce) < 16 || len(r.Nonce) > 64 {
		return nil, errors.New("owner request: nonce must be 16 to 64 bytes")
	}
	return r, nil
}

// OwnerReply is the reply to owner@llm-agent: the owner public key (SSH
// wire format) and its signature (SSH wire format) over
// OwnerProofContext || nonce.
type OwnerReply struct {
	Key       []byte
	Signature []byte
}

// MarshalOwnerReply returns the reply frame.
func MarshalOwnerReply(r *OwnerReply) []byte {
	e := &encoder{b: make([]byte, 4, 256)}
	e.byte1(MsgSuccess)
	e.bytes(r.Key)
	e.bytes(r.Signature)
	return e.frame()
}

// ParseOwnerReply decodes the body of an owner reply.
func ParseOwnerReply(body []byte) (*OwnerReply, error) {
	d := &decoder{b: body}
	r := &OwnerReply{Key: d.bytes(), Signature: d.bytes()}
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("owner reply: %w", err)
	}
	return r, nil
}

// Guard operations.
const (
	GuardRegister = "register" // remember an owner login session on this host
	GuardSessions = "sessions" // list the owner sessions remembered for this host
	GuardRefused  = "refused"  // record a refused connection in the audit log
)

// Session identifies a login session on a host: the kernel's boot id and
// audit session id.
type Session struct {
	BootID    string
	SessionID uint32
}

// GuardRequest is the payload of guard@llm-agent.
type GuardRequest struct {
	Op      string
	Session Session // register
	Text    string  // refused: what was refused, one line
}

// Marshal returns the extension frame.
func (r *GuardRequest) Marshal() []byte {
	e := newExtension(ExtGuard)
	e.string(r.Op)
	switch r.Op {
	case GuardRegister:
		e.string(r.Session.BootID)
		e.uint32(r.Session.SessionID)
	case GuardRefused:
		e.string(r.Text)
	}
	return e.frame()
}

// ParseGuardRequest decodes the payload of guard@llm-agent.
func ParseGuardRequest(payload []byte) (*GuardRequest, error) {
	d := &decoder{b: payload}
	r := &GuardRequest{Op: d.text("op", MaxNameLen)}
	switch r.Op {
	case GuardRegister:
		r.Session.BootID = d.text("boot id", MaxNameLen)
		r.Session.SessionID = d.uint32()
	case GuardSessions:
	case GuardRefused:
		r.Text = d.text("text", MaxTextLen)
	default:
		if d.err == nil {
			d.fail(fmt.Errorf("unknown guard operation %q", r.Op))
		}
	}
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("guard request: %w", err)
	}
	return r, nil
}

// MarshalSessionsReply returns the reply to a sessions request.
func MarshalSessionsReply(s []Session) []byte {
	e := &encoder{b: make([]byte, 4, 16+len(s)*48)}
	e.byte1(MsgSuccess)
	e.uint32(uint32(len(s)))
	for _, x := range s {
		e.string(x.BootID)
		e.uint32(x.SessionID)
	}
	return e.frame()
}

// ParseSessionsReply decodes the body of a sessions reply.
func ParseSessionsReply(body []byte) ([]Session, error) {
	d := &decoder{b: body}
	n := d.uint32()
	if d.err == nil && uint64(n)*8 > uint64(len(d.b)) {
		return nil, fmt.Errorf("sessions reply: %d sessions do not fit in %d bytes", n, len(d.b))
	}
	out := make([]Session, 0, n)
	for i := uint32(0); i < n && d.err == nil; i++ {
		out = append(out, Session{BootID: d.text("boot id", MaxNameLen), SessionID: d.uint32()})
	}
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("sessions reply: %w", err)
	}
	return out, nil
}

// Owner asks for the agent's owner proof over nonce.
func (c *Client) Owner(nonce []byte) (*OwnerReply, error) {
	body, err := c.call((&OwnerRequest{Nonce: nonce}).Marshal())
	if err != nil {
		return nil, err
	}
	return ParseOwnerReply(body)
}

// Guard sends a guard request; for GuardSessions it returns the sessions.
func (c *Client) Guard(r *GuardRequest) ([]Session, error) {
	body, err := c.call(r.Marshal())
	if err != nil {
		return nil, err
	}
	if r.Op == GuardSessions {
		return ParseSessionsReply(body)
	}
	return nil, nil
}

// Call sends a raw request frame and returns the raw reply frame body
// (message number included); the guard relays with it.
func (c *Client) Call(frame []byte) ([]byte, error) {
	return c.roundTripNoWipe(frame)
}

package agent

import (
	"bytes"
	"errors"
	"fmt"

	"golang.org/x/crypto/ssh"

	"github.com/llm-agent/llm-agent/protocol"
)

// maxBinds is how many session-binds one connection may record, as
// OpenSSH's AGENT_MAX_SESSION_IDS.
const maxBinds = 16

// hop is one verified session-bind: the host the connection passed through.
type hop struct {
	key        ssh.PublicKey
	blob       []byte
	sessionID  []byte
	forwarding bool
}

// errBindAfterAuth is a session-bind on a connection already bound for
// authentication; the connection is closed after the failure reply.
var errBindAfterAuth = errors.New("session-bind: connection already bound for authentication")

// bind verifies a session-bind@openssh.com payload (the host's signature
// over the session id) and records it on the connection, with OpenSSH's
// rules (ssh-agent.c, process_ext_session_bind): no more binds after one
// made for authentication, the same session id may not come back with
// another key, at most maxBinds. The caller marks the connection on any
// error: from then on it gets no destination-constrained credential.
//
// What this cannot tell: a signed bind proves that the host's sshd signed
// that session id once, not that this connection is that session. The
// first forwarding bind is trusted to come from the laptop's ssh, as
// OpenSSH's agent trusts it. Over ssh -R no bind comes from the laptop's
// ssh, so the remote side chooses the first one (see protocol/PROTOCOL.md).
func (c *conn) bind(payload []byte) error {
	b, err := protocol.ParseSessionBind(payload)
	if err != nil {
		return err
	}
	// The payload aliases the request frame, which is wiped after the
	// request; x/crypto's key types keep slices of their input.
	key, err := ssh.ParsePublicKey(bytes.Clone(b.HostKey))
	if err != nil {
		return fmt.Errorf("session-bind: host key: %w", err)
	}
	var sig ssh.Signature
	if err := ssh.Unmarshal(b.Signature, &sig); err != nil {
		return fmt.Errorf("session-bind: signature: %w", err)
	}
	if err := key.Verify(b.SessionID, &sig); err != nil {
		return fmt.Errorf("session-bind: signature does not verify: %w", err)
	}
	// OpenSSH's order: a bind for authentication ends the chain; a
	// repeated session id must come with the same key.
	for _, h := range c.hops {
		if !h.forwarding {
			return errBindAfterAuth
		}
		if bytes.Equal(h.sessionID, b.SessionID) {
			if bytes.Equal(h.blob, b.HostKey) {
				return nil // already bound to this session
			}
			return errors.New("session-bind: session id bound to another host key")
		}
	}
	if len(c.hops) >= maxBinds {
		return errors.New("session-bind: too many binds")
	}
	c.hops = append(c.hops, hop{
		key:        key,
		blob:       bytes.Clone(b.HostKey),
		sessionID:  bytes.Clone(b.SessionID),
		forwarding: b.Forwarding,
	})
	if b.Forwarding && !c.forwarded {
		// A forwarding bind on the admin socket: ssh forwarded it, so it
		// gets use-only rights too.
		c.forwarded = true
		c.why = whyAdminBound
	}
	return nil
}

// matches reports whether the connection's verified hops satisfy a
// destination chain, hop for hop.
func (c *conn) matches(ch protocol.Chain) bool {
	if len(c.hops) != len(ch) {
		return false
	}
	for i, h := range c.hops {
		ok := false
		for _, k := range ch[i].Keys {
			if bytes.Equal(k, h.blob) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

package protocol

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/llm-agent/llm-agent/internal/peercred"
)

// DefaultTimeout bounds one request/reply exchange, so that a client never
// hangs on an agent (or a forwarded socket) that stopped answering. It leaves
// room for a confirm prompt on the owner's laptop.
const DefaultTimeout = 30 * time.Second

// Client talks to an llm-agent (or any SSH agent) over one connection.
// It is not safe for concurrent use.
type Client struct {
	conn    net.Conn
	Timeout time.Duration // per exchange; DefaultTimeout when zero
	// probe: the next exchange first checks that the agent speaks
	// llm-agent (see Probe).
	probe bool
}

// ErrNotLLMAgent is the error of the first exchange after Probe when the
// agent answered the probe with a failure: an SSH agent without the
// llm-agent extensions.
var ErrNotLLMAgent = errors.New("the agent does not speak the llm-agent extensions")

// Probe makes the next exchange first ask for the agent's status, so that
// an SSH agent that is not llm-agent (SSH_AUTH_SOCK naming the owner's
// ssh-agent) is told apart: that exchange then fails with ErrNotLLMAgent.
// When the request is one of llm-agent's own extensions, which a plain
// SSH agent refuses without effect, the probe and the request go out back
// to back and cost one round trip, not two; any other request (lock, a
// standard extension) waits for the probe's answer.
func (c *Client) Probe() { c.probe = true }

// DialOwned connects to the agent socket at path within timeout (at most
// 5 s) and refuses, with a *peercred.OwnerError, a socket that is served
// by another user than ours or root. Every production dial of an agent
// socket goes through it.
func DialOwned(path string, timeout time.Duration) (*Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), min(timeout, 5*time.Second))
	defer cancel()
	conn, err := peercred.DialOwned(ctx, path)
	if err != nil {
		return nil, err
	}
	return NewClient(conn), nil
}

// Dial connects to the agent socket at path without checking who serves
// it: for tests and benchmarks that start the agent themselves. Clients
// of a socket named by the environment use DialOwned.
func Dial(path string) (*Client, error) {
	conn, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return NewClient(conn), nil
}

// NewClient wraps an established connection.
func NewClient(conn net.Conn) *Client { return &Client{conn: conn} }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// TransportError is a failure of the connection itself (the agent went
// away, stopped answering, or sent something unreadable), as opposed to a
// refusal by the agent.
type TransportError struct {
	Op  string
	Err error
}

// ErrHungUp is a TransportError's cause when the agent closed the
// connection before it replied.
var ErrHungUp = errors.New("the agent closed the connection")

func (e *TransportError) Error() string { return fmt.Sprintf("%s: %v", e.Op, e.Err) }
func (e *TransportError) Unwrap() error { return e.Err }

// roundTrip writes a request frame, wipes it, and reads the reply body (at
// most MaxReply bytes).
func (c *Client) roundTrip(req []byte) ([]byte, error) {
	defer clear(req)
	return c.roundTripNoWipe(req)
}

func (c *Client) roundTripNoWipe(req []byte) ([]byte, error) {
	t := c.Timeout
	if t == 0 {
		t = DefaultTimeout
	}
	if err := c.conn.SetDeadline(time.Now().Add(t)); err != nil {
		return nil, &TransportError{"setting deadline", err}
	}
	if c.probe {
		c.probe = false
		return c.probed(req)
	}
	if _, err := c.conn.Write(req); err != nil {
		return nil, &TransportError{"writing request", err}
	}
	return c.readReply()
}

// probed is the exchange of req after Probe: the status probe first, req
// right behind it when it is one of our extensions, else once the probe's
// answer says the agent is llm-agent.
func (c *Client) probed(req []byte) ([]byte, error) {
	pipelined := ownExtension(req)
	if _, err := c.conn.Write(SimpleExtension(ExtStatus)); err != nil {
		return nil, &TransportError{"writing request", err}
	}
	if pipelined {
		if _, err := c.conn.Write(req); err != nil {
			return nil, &TransportError{"writing request", err}
		}
	}
	body, err := c.readReply()
	if err != nil {
		return nil, err
	}
	ok := (body[0] == MsgSuccess || body[0] == MsgExtensionResponse) && validStatus(body[1:])
	clear(body)
	if !ok {
		if pipelined {
			// It answers req too, with a failure: read that, so that the
			// connection is left with nothing unread.
			if body, err := c.readReply(); err == nil {
				clear(body)
			}
		}
		return nil, ErrNotLLMAgent
	}
	if !pipelined {
		if _, err := c.conn.Write(req); err != nil {
			return nil, &TransportError{"writing request", err}
		}
	}
	return c.readReply()
}

func validStatus(b []byte) bool {
	_, err := ParseStatusReply(b)
	return err == nil
}

// ownExtension reports whether frame is an SSH_AGENTC_EXTENSION in
// llm-agent's namespace, which an agent without it refuses untouched.
func ownExtension(frame []byte) bool {
	if len(frame) < 9 || frame[4] != MsgExtension {
		return false
	}
	n := int(binary.BigEndian.Uint32(frame[5:9]))
	return n <= len(frame)-9 && strings.HasSuffix(string(frame[9:9+n]), "@llm-agent")
}

func (c *Client) readReply() ([]byte, error) {
	body, err := ReadFrame(c.conn, MaxReply)
	if err != nil {
		if err == io.EOF {
			err = ErrHungUp
		}
		return nil, &TransportError{"reading reply", err}
	}
	return body, nil
}

// call performs an extension exchange and returns the body after
// SSH_AGENT_SUCCESS, or a *Failure.
func (c *Client) call(req []byte) ([]byte, error) {
	body, err := c.roundTrip(req)
	if err != nil {
		return nil, err
	}
	switch body[0] {
	case MsgSuccess, MsgExtensionResponse:
		return body[1:], nil
	case MsgExtensionFailure:
		return nil, ParseFailure(body[1:])
	case MsgFailure:
		return nil, &Failure{Code: CodeFailed, Message: "the agent does not support this request"}
	}
	return nil, &TransportError{"reading reply", fmt.Errorf("unexpected reply message %d", body[0])}
}

// Add adds (or replaces) a credential.
func (c *Client) Add(r *AddRequest) error {
	_, err := c.call(r.Marshal())
	return err
}

// Get asks for a provider's credential. The caller wipes the result with
// Wipe as soon as it has been used; its values share one buffer.
func (c *Client) Get(provider string, who *Requester) (*Credential, error) {
	body, err := c.call((&GetRequest{Provider: provider, Requester: who}).Marshal())
	if err != nil {
		return nil, err
	}
	cred, err := ParseGetReply(body)
	if err != nil {
		clear(body)
		return nil, err
	}
	return cred, nil
}

// List returns the credentials' metadata.
func (c *Client) List() ([]Entry, error) {
	body, err := c.call(SimpleExtension(ExtList))
	if err != nil {
		return nil, err
	}
	return ParseListReply(body)
}

// Remove removes one provider's credential.
func (c *Client) Remove(provider string) error {
	_, err := c.call((&RemoveRequest{Provider: provider}).Marshal())
	return err
}

// RemoveAll removes every credential and returns how many there were.
func (c *Client) RemoveAll() (uint32, error) {
	body, err := c.call(SimpleExtension(ExtRemoveAll))
	if err != nil {
		return 0, err
	}
	return ParseCountReply(body)
}

// Status reports the agent's state as seen from this connection.
func (c *Client) Status() (*Status, error) {
	body, err := c.call(SimpleExtension(ExtStatus))
	if err != nil {
		return nil, err
	}
	return ParseStatusReply(body)
}

// Query lists the extensions the agent supports (the standard "query"
// extension). A plain SSH agent without it yields a *Failure.
func (c *Client) Query() ([]string, error) {
	body, err := c.call(SimpleExtension(ExtQuery))
	if err != nil {
		return nil, err
	}
	return ParseQueryReply(body)
}

// ErrLockFailed is returned when the agent refuses a lock or unlock (wrong
// passphrase, already locked, or not permitted); SSH agents do not say which.
var ErrLockFailed = errors.New("the agent refused")

// Lock locks the agent with passphrase (SSH_AGENTC_LOCK).
func (c *Client) Lock(passphrase []byte) error { return c.lock(MsgLock, passphrase) }

// Unlock unlocks the agent (SSH_AGENTC_UNLOCK).
func (c *Client) Unlock(passphrase []byte) error { return c.lock(MsgUnlock, passphrase) }

func (c *Client) lock(msg byte, passphrase []byte) error {
	e := &encoder{b: make([]byte, 4, 9+len(passphrase))}
	e.byte1(msg)
	e.bytes(passphrase)
	body, err := c.roundTrip(e.frame())
	if err != nil {
		return err
	}
	switch body[0] {
	case MsgSuccess:
		return nil
	case MsgFailure:
		return ErrLockFailed
	}
	return fmt.Errorf("unexpected reply message %d", body[0])
}

// DialReason says in plain words why an agent socket did not answer, for
// one-line errors: no socket, a stale one, no permission.
func DialReason(err error) string {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "no such socket"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "nothing is listening (a stale socket)"
	case errors.Is(err, os.ErrPermission):
		return "permission denied"
	}
	var owe *peercred.OwnerError
	if errors.As(err, &owe) {
		return owe.Error()
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return err.Error()
}

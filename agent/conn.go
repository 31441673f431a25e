package agent

import (
	"bytes"
	"container/list"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/llm-agent/llm-agent/memsafe"
	"github.com/llm-agent/llm-agent/protocol"
)

// conn is one client connection.
type conn struct {
	a      *Agent
	nc     *net.UnixConn
	frames *protocol.FrameConn // reads and writes on nc with the agent's limits
	peer   *PeerInfo

	// via is the socket the connection came in on (ViaUse, ViaAdmin).
	via string
	// forwarded means use-only rights: every connection on the use
	// socket, and one on the admin socket once a session-bind says it is
	// forwarded. why says which, for the audit log.
	forwarded bool
	why       string
	hops      []hop
	// bindFailed is set once any session-bind on the connection failed
	// (OpenSSH's session_bind_attempted): no -h credential is served then.
	bindFailed bool
	upstream   *upstreamKeys
	// upstreamOpen: counted in Agent.upstreams; guarded by Agent.mu.
	upstreamOpen bool

	busy    atomic.Bool
	elem    *list.Element // in Agent.idle; guarded by Agent.mu
	peerPID int           // set before the connection's goroutine starts
	// commandClient is the Config.CommandClients program the peer runs,
	// or "": only such a peer may add a credential from a command.
	commandClient string
}

// pid is the peer's pid, for log lines written from other goroutines.
func (c *conn) pid() int { return c.peerPID }

// The two sockets a connection can come in on.
const (
	ViaUse   = "use"
	ViaAdmin = "admin"
)

// Why a connection was classed as it was, for the audit log.
const (
	whyUse          = "connection on LLM_AUTH_SOCK, which is use-only whatever relays it"
	whyAdmin        = "connection on the admin socket"
	whyAdminBound   = "connection on the admin socket, but a session-bind says it is forwarded"
	useOnlyRefusal  = "%s is not permitted on LLM_AUTH_SOCK (use-only); manage the agent on the laptop, where llm-agent-client uses the admin socket beside it"
	fwdAdminRefusal = "%s is not permitted on a forwarded connection"
)

func viaReason(via string) string {
	if via == ViaAdmin {
		return whyAdmin
	}
	return whyUse
}

// classify sets the connection's rights from the socket it came in on.
// Nothing about the peer's name or pid changes them: unknown means
// use-only. The one exception is positive: a peer the kernel shows running
// the local ssh-add itself (see manager).
func (c *conn) classify(via string) {
	c.via = via
	c.why = viaReason(via)
	c.forwarded = via != ViaAdmin
}

// manager gives a use-socket connection management rights because its
// peer is positively the laptop's own ssh-add (path), identified by the
// kernel by device and inode; see sshAddIDs. Called before serve.
func (c *conn) manager(path string) {
	c.forwarded = false
	c.why = "connection on LLM_AUTH_SOCK from ssh-add (" + path + "), identified by its executable's device and inode: a management client that relays nothing"
}

// sshAgentRights reports whether SSH-key management is allowed on a
// use-socket connection by ssh-agent's rule (Config.SSHAgentRights): no
// session-bind on it failed or was for forwarding.
func (c *conn) sshAgentRights() bool {
	if !c.a.cfg.SSHAgentRights || c.via != ViaUse || c.bindFailed {
		return false
	}
	for _, h := range c.hops {
		if h.forwarding {
			return false
		}
	}
	return true
}

// refusal is the one-line answer to a management request on a use-only
// connection.
func (c *conn) refusal(op string) string {
	if c.via == ViaAdmin {
		return fmt.Sprintf(fwdAdminRefusal, op)
	}
	return fmt.Sprintf(useOnlyRefusal, op)
}

// serve reads frames until the peer goes away or misbehaves.
func (c *conn) serve() {
	defer c.nc.Close()
	defer func() {
		if c.upstream != nil {
			c.upstream.Close()
		}
	}()
	cfg := &c.a.cfg
	for {
		n, err := c.frames.ReadHeader()
		if err != nil {
			if err == io.EOF || errors.Is(err, net.ErrClosed) {
				return
			}
			cfg.Debug.Printf("pid %d: %v", c.peer.PID, err)
			if protocol.HeaderRefused(err) {
				// Answer, then hang up: the stream cannot be resynchronised
				// without reading what we refuse to read.
				c.frames.Write(protocol.FailureFrame())
			}
			return
		}
		c.busy.Store(true)
		frame, err := c.frames.ReadBody(n)
		if err != nil {
			cfg.Debug.Printf("pid %d: %v", c.peer.PID, err)
			return
		}
		err = c.handle(frame[4:])
		clear(frame)
		c.a.touch(c)
		c.busy.Store(false)
		if err != nil {
			cfg.Debug.Printf("pid %d: %v", c.peer.PID, err)
			return
		}
	}
}

// send writes one reply frame within the frame timeout.
func (c *conn) send(frame []byte) error { return c.frames.Write(frame) }

func (c *conn) fail(code uint32, msg string) error {
	return c.send(protocol.MarshalFailure(code, msg))
}

// event fills in the connection's side of an audit event.
func (c *conn) event(op, provider, decision, reason string) Event {
	e := Event{Op: op, Provider: provider, Decision: decision, Reason: reason, Peer: c.peer,
		Via: c.via, ViaReason: c.why, Forwarded: c.forwarded}
	e.Hops = c.hopNames()
	return e
}

func (c *conn) audit(e Event) { c.a.cfg.Audit.Log(e) }

// handle serves one request frame (body includes the message number).
func (c *conn) handle(body []byte) error {
	switch body[0] {
	case protocol.MsgExtension:
		return c.extension(body)
	case protocol.MsgLock, protocol.MsgUnlock:
		return c.lockRequest(body)
	case protocol.MsgRequestIdentities, protocol.MsgSignRequest:
		return c.keyFrame(body)
	default:
		// Adding or removing SSH keys, smartcard operations and anything
		// else the SSH-key side would serve: management only.
		if c.forwarded && !c.sshAgentRights() {
			op := fmt.Sprintf("ssh-key-op-%d", body[0])
			c.audit(c.event(op, "", "deny", c.refusal(op)))
			return c.send(protocol.FailureFrame())
		}
		return c.keyFrame(body)
	}
}

// keyFrame passes a frame to the SSH-key side: the upstream agent
// (relayed raw) or the in-process keyring.
func (c *conn) keyFrame(body []byte) error {
	if c.a.cfg.Upstream == "" {
		keys := &lockedKeys{backend: c.a.keyring, locked: c.a.lock.isLocked, lifetime: c.a.cfg.DefaultLifetime,
			confirm: &c.a.keyConfirm, ask: c.a.confirm.confirm}
		return c.send(serveKeyFrame(keys, body))
	}
	if c.a.lock.isLocked() {
		// As ssh-agent: a locked agent lists nothing and does nothing.
		if body[0] == protocol.MsgRequestIdentities {
			return c.send(identitiesNone())
		}
		return c.send(protocol.FailureFrame())
	}
	if !c.a.cfg.UpstreamPrivate {
		if b := withLifetime(body, uint32(c.a.cfg.DefaultLifetime/time.Second)); &b[0] != &body[0] {
			defer clear(b) // a copy of the added private key
			body = b
		}
	}
	reply, err := c.relay(body)
	if err != nil {
		return c.send(protocol.FailureFrame())
	}
	return c.send(reply)
}

// relay sends one frame to the upstream agent and returns its reply; an
// error is logged and audited, and the caller answers with a failure.
func (c *conn) relay(body []byte) ([]byte, error) {
	if c.upstream == nil {
		c.upstream = &upstreamKeys{path: c.a.cfg.Upstream,
			reserve: func() { c.a.reserveUpstream(c) }, release: func() { c.a.releaseUpstream(c) }}
	}
	reply, err := c.upstream.roundTrip(body)
	if err != nil {
		c.a.cfg.Debug.Printf("pid %d: %v", c.peer.PID, err)
		c.audit(c.event("upstream", "", "error", err.Error()))
	}
	return reply, err
}

func (c *conn) lockRequest(body []byte) error {
	op := "lock"
	if body[0] == protocol.MsgUnlock {
		op = "unlock"
	}
	if c.forwarded && !c.sshAgentRights() {
		c.audit(c.event(op, "", "deny", c.refusal(op)))
		return c.send(protocol.FailureFrame())
	}
	pass, err := protocol.ParseLock(body[1:])
	if err != nil {
		c.audit(c.event(op, "", "error", err.Error()))
		return c.send(protocol.FailureFrame())
	}
	if c.forwarded {
		// ssh-agent's rule only: the connection may be a relay from the
		// server (ssh -R, socat) that sent no session-bind.
		return c.keysLock(op, body)
	}
	// The private ssh-agent gets the request as it came: our lock wipes
	// the passphrase in place. (A malformed one never reaches it: ssh-agent
	// exits on a lock request it cannot parse.)
	var relayed []byte
	if c.a.cfg.UpstreamPrivate {
		relayed = bytes.Clone(body)
		defer clear(relayed)
	}
	var ok bool
	if op == "lock" {
		if ok = c.a.lock.lock(pass); ok {
			// Nothing is used while locked, not even by a request that
			// was streaming.
			c.a.relays.cancel("", errRelayLocked)
		}
	} else {
		ok = c.a.lock.unlock(pass)
	}
	if ok && c.a.cfg.UpstreamPrivate {
		// The private ssh-agent locks and unlocks with us, so that its
		// keys are locked where they live too.
		if reply, err := c.relay(relayed); err == nil && reply[4] != protocol.MsgSuccess {
			c.a.cfg.Debug.Printf("pid %d: the SSH-key ssh-agent refused %s", c.peer.PID, op)
		}
	}
	if !ok {
		reason := "already locked"
		if op == "unlock" {
			reason = "wrong passphrase or not locked"
		}
		c.audit(c.event(op, "", "deny", reason))
		return c.send(protocol.FailureFrame())
	}
	c.audit(c.event(op, "", "allow", ""))
	return c.send(protocol.SuccessFrame())
}

// keysLock serves lock or unlock under ssh-agent's rule alone: it locks or
// unlocks the private ssh-agent's SSH keys, never the agent's own lock,
// which guards the LLM credentials and was never managed from the use
// socket (a relay could otherwise unlock them, or lock the owner out with
// a passphrase of its own). While the owner's lock holds, it is refused.
func (c *conn) keysLock(op string, body []byte) error {
	deny := func(reason string) error {
		c.audit(c.event(op, "", "deny", reason))
		return c.send(protocol.FailureFrame())
	}
	switch {
	case !c.a.cfg.UpstreamPrivate:
		return deny(op + " on SSH_AUTH_SOCK needs the private ssh-agent (the agent's own lock guards the credentials); use ssh-add on the laptop")
	case c.a.lock.isLocked():
		return deny("the agent is locked by its owner; unlock it on the laptop")
	}
	reply, err := c.relay(body)
	if err != nil {
		return c.send(protocol.FailureFrame())
	}
	if reply[4] != protocol.MsgSuccess {
		return deny("the SSH-key ssh-agent refused " + op)
	}
	c.audit(c.event(op, "", "allow", "SSH keys only (the private ssh-agent); the credentials' lock is the owner's"))
	return c.send(protocol.SuccessFrame())
}

// remoteOK lists the extensions a forwarded connection may use.
var remoteOK = map[string]bool{
	protocol.ExtQuery:       true,
	protocol.ExtSessionBind: true,
	protocol.ExtGet:         true,
	protocol.ExtList:        true,
	protocol.ExtStatus:      true,
	protocol.ExtOwner:       true,
	protocol.ExtGuard:       true,
	protocol.ExtRelay:       true,
}

func (c *conn) extension(body []byte) error {
	name, payload, err := protocol.ParseExtension(body)
	if err != nil {
		return c.fail(protocol.CodeBadRequest, err.Error())
	}
	if c.forwarded && !remoteOK[name] && isOurs(name) {
		provider := ""
		if name == protocol.ExtRemove {
			if r, err := protocol.ParseRemoveRequest(payload); err == nil {
				provider = r.Provider
			}
		}
		msg := c.refusal(opName(name))
		c.audit(c.event(opName(name), provider, "deny", msg))
		return c.fail(protocol.CodeNotPermitted, msg)
	}
	switch name {
	case protocol.ExtQuery, protocol.ExtStatus, protocol.ExtList, protocol.ExtRemoveAll:
		if len(payload) != 0 {
			return c.fail(protocol.CodeBadRequest, fmt.Sprintf("%s takes no payload", name))
		}
	}
	switch name {
	case protocol.ExtQuery:
		return c.send(protocol.MarshalQueryReply(protocol.Extensions))
	case protocol.ExtSessionBind:
		if c.a.cfg.Upstream != "" {
			// The upstream enforces its own keys' -h constraints: it must
			// see the binds of this connection, and checks them itself.
			c.relay(body)
		}
		if err := c.bind(payload); err != nil {
			// From now on no -h credential is served on this connection.
			c.bindFailed = true
			c.audit(c.event("session-bind", "", "deny", err.Error()+"; no destination-constrained credential on this connection from now on"))
			if werr := c.send(protocol.FailureFrame()); werr != nil {
				return werr
			}
			if errors.Is(err, errBindAfterAuth) {
				return err // hang up, as the issue asks
			}
			return nil
		}
		h := c.hops[len(c.hops)-1]
		c.a.cfg.Debug.Printf("pid %d: session-bind to %s (%s), forwarding %v", c.peer.PID,
			c.a.names.name(h.key), ssh.FingerprintSHA256(h.key), h.forwarding)
		return c.send(protocol.SuccessFrame())
	case protocol.ExtStatus:
		return c.status()
	case protocol.ExtList:
		return c.list()
	case protocol.ExtGet:
		return c.get(payload)
	case protocol.ExtAdd:
		return c.add(payload)
	case protocol.ExtRemove:
		return c.remove(payload)
	case protocol.ExtRemoveAll:
		return c.removeAll()
	case protocol.ExtOwner:
		return c.ownerProof(payload)
	case protocol.ExtGuard:
		return c.guard(payload)
	case protocol.ExtRelay:
		return c.relayStream(payload)
	}
	// Not ours: the SSH-key side answers (SSH_AGENT_FAILURE for unknown).
	return c.keyFrame(body)
}

func isOurs(name string) bool { return strings.HasSuffix(name, "@llm-agent") }

func opName(ext string) string { return strings.TrimSuffix(ext, "@llm-agent") }

// hopNames names the verified hops, from the laptop outwards.
func (c *conn) hopNames() []string {
	var names []string
	for _, h := range c.hops {
		names = append(names, c.a.names.name(h.key))
	}
	return names
}

// visible reports whether the connection may see credential cr at all.
func (c *conn) visible(cr *credential) bool {
	return !(cr.cons.LocalOnly && c.forwarded)
}

func (c *conn) status() error {
	now := c.a.cfg.Now()
	var n uint32
	for _, cr := range c.a.store.snapshot(now) {
		if c.visible(cr) {
			n++
		}
	}
	return c.send(protocol.MarshalStatusReply(protocol.Status{
		Locked: c.a.lock.isLocked(), Count: n, Forwarded: c.forwarded, Version: Version,
	}))
}

func (c *conn) list() error {
	if c.a.lock.isLocked() {
		c.audit(c.event("list", "", "deny", errLocked.Error()))
		return c.fail(protocol.CodeLocked, errLocked.Error())
	}
	var entries []protocol.Entry
	now := c.a.cfg.Now()
	for _, cr := range c.a.store.snapshot(now) {
		if c.visible(cr) {
			e := cr.entry(now)
			if e.TokensPerDay = cr.cons.TokensPerDay; e.TokensPerDay != 0 {
				e.TokensToday = c.a.tokens.today(cr.provider, now)
			}
			entries = append(entries, e)
		}
	}
	return c.send(protocol.MarshalListReply(entries))
}

func (c *conn) add(payload []byte) error {
	if c.a.lock.isLocked() {
		c.audit(c.event("add", "", "deny", errLocked.Error()))
		return c.fail(protocol.CodeLocked, errLocked.Error())
	}
	req, err := protocol.ParseAddRequest(payload)
	if err != nil {
		c.audit(c.event("add", "", "error", err.Error()))
		return c.fail(protocol.CodeBadRequest, err.Error())
	}
	if req.Command != "" && c.commandClient == "" {
		req.Wipe()
		exe := "an unidentified program"
		if c.peer != nil && c.peer.Exe != "" {
			exe = c.peer.Exe
		}
		reason := fmt.Sprintf("a credential from a command is added only by llm-agent-client on the laptop, not by %s (a relay of the admin socket must not make the laptop run commands)", exe)
		c.audit(c.event("add", req.Provider, "deny", reason))
		return c.fail(protocol.CodeNotPermitted, reason)
	}
	lifetime := c.a.cfg.DefaultLifetime
	if req.Lifetime != 0 {
		lifetime = time.Duration(req.Lifetime) * time.Second
	}
	provider := req.Provider
	reason := ""
	if req.Command != "" {
		reason = fmt.Sprintf("from command %q, run when a get needs its value", req.Command)
	}
	if err := c.a.store.add(req, lifetime, c.a.cfg.Now()); err != nil {
		code := uint32(protocol.CodeBadRequest)
		if errors.Is(err, memsafe.ErrLockedMemory) || errors.Is(err, errStoreFull) {
			code = protocol.CodeResource
		}
		c.audit(c.event("add", provider, "error", err.Error()))
		return c.fail(code, err.Error())
	}
	c.audit(c.event("add", provider, "allow", reason))
	return c.send(protocol.SuccessFrame())
}

func (c *conn) remove(payload []byte) error {
	req, err := protocol.ParseRemoveRequest(payload)
	if err != nil {
		return c.fail(protocol.CodeBadRequest, err.Error())
	}
	if c.a.lock.isLocked() {
		c.audit(c.event("remove", req.Provider, "deny", errLocked.Error()))
		return c.fail(protocol.CodeLocked, errLocked.Error())
	}
	if !c.a.store.remove(req.Provider) {
		c.audit(c.event("remove", req.Provider, "deny", errNotFound.Error()))
		return c.fail(protocol.CodeNotFound, fmt.Sprintf("no credential for %q", req.Provider))
	}
	c.a.relays.cancel(req.Provider, errRelayRemoved)
	c.audit(c.event("remove", req.Provider, "allow", ""))
	return c.send(protocol.SuccessFrame())
}

func (c *conn) removeAll() error {
	if c.a.lock.isLocked() {
		c.audit(c.event("remove-all", "", "deny", errLocked.Error()))
		return c.fail(protocol.CodeLocked, errLocked.Error())
	}
	n := c.a.store.removeAll()
	c.a.relays.cancel("", errRelayRemoved)
	c.audit(c.event("remove-all", "", "allow", fmt.Sprintf("%d removed", n)))
	return c.send(protocol.MarshalCountReply(uint32(n)))
}

func (c *conn) get(payload []byte) error {
	req, err := protocol.ParseGetRequest(payload)
	if err != nil {
		return c.fail(protocol.CodeBadRequest, err.Error())
	}
	deny := func(code uint32, reason string) error {
		e := c.event("get", req.Provider, "deny", reason)
		e.Remote = req.Requester
		c.audit(e)
		return c.fail(code, reason)
	}
	cr, code, reason := c.permit(req.Provider, req.Requester, false)
	if cr == nil {
		return deny(code, reason)
	}
	err = c.a.store.reveal(cr, func(plain *protocol.Credential, buf []byte) error {
		frame := protocol.AppendGetReply(buf[:0], plain)
		if len(frame) == 0 || &frame[0] != &buf[0] {
			// The reply outgrew the locked buffer and was copied to the
			// Go heap: wipe it and fail rather than send from there.
			clear(frame)
			return errors.New("internal error: get reply larger than its buffer")
		}
		return c.send(frame)
	})
	if err != nil {
		if errors.Is(err, memsafe.ErrLockedMemory) {
			return deny(protocol.CodeResource, err.Error())
		}
		return err
	}
	e := c.event("get", req.Provider, "allow", "")
	e.Remote = req.Requester
	c.audit(e)
	return nil
}

// permit applies every check of a use of provider's credential (a get,
// or a relayed request when relayed is set): lock, presence, visibility,
// destination, OAuth and command state, confirm; then refreshes or runs
// the command if needed, and checks again that nothing changed while it
// waited. It returns the credential to reveal, or nil with a failure code
// and reason.
func (c *conn) permit(provider string, who *protocol.Requester, relayed bool) (*credential, uint32, string) {
	if c.a.lock.isLocked() {
		return nil, protocol.CodeLocked, errLocked.Error()
	}
	cr := c.a.store.lookup(provider, c.a.cfg.Now())
	if cr == nil || !c.visible(cr) {
		return nil, protocol.CodeNotFound, fmt.Sprintf("no credential for %q", provider)
	}
	if cr.cons.TokensPerDay != 0 && !relayed {
		return nil, protocol.CodeNotPermitted, fmt.Sprintf("the %q credential has a daily token budget, which only the relay can hold to, so no get hands it out; use llm-agent-client proxy --relay", provider)
	}
	if len(cr.cons.Destinations) > 0 {
		if ok, why := c.destinationOK(cr); !ok {
			return nil, protocol.CodeDestination, fmt.Sprintf("the %q credential is not allowed on this host path: %s", provider, why)
		}
	}
	if cr.kind == protocol.KindOAuth {
		if err := c.a.oauth.check(cr); err != nil {
			code, reason := failure(provider, err)
			return nil, code, reason
		}
	}
	if cr.cons.Command != "" {
		if err := c.a.commands.check(cr); err != nil {
			code, reason := failure(provider, err)
			return nil, code, reason
		}
	}
	if cr.cons.Confirm {
		ok, reason := c.a.confirm.confirm(c.prompt(provider, who, relayed))
		if !ok {
			return nil, protocol.CodeRefused, reason
		}
	}
	var err error
	if cr.kind == protocol.KindOAuth {
		// Refreshes first if the access token is missing or expiring.
		if cr, err = c.a.oauth.fresh(cr); err != nil {
			code, reason := failure(provider, err)
			return nil, code, reason
		}
	}
	if cr.cons.Command != "" {
		// Runs the command first if no value is held.
		if cr, err = c.a.commands.fresh(cr); err != nil {
			code, reason := failure(provider, err)
			return nil, code, reason
		}
	}
	what := "get"
	if relayed {
		what = "request"
	}
	if c.a.lock.isLocked() {
		// Locked while the use waited for a prompt, a refresh or a run:
		// nothing leaves a locked agent.
		return nil, protocol.CodeLocked, errLocked.Error() + " (while the " + what + " waited)"
	}
	if cur := c.a.store.lookup(provider, c.a.cfg.Now()); cur == nil || cur.gen != cr.gen {
		// Removed, replaced or expired meanwhile: what the owner took
		// away is not handed out, whatever the prompt said.
		return nil, protocol.CodeNotFound, fmt.Sprintf("the %q credential was removed or replaced while the %s waited", provider, what)
	}
	return cr, 0, ""
}

func (c *conn) ownerProof(payload []byte) error {
	req, err := protocol.ParseOwnerRequest(payload)
	if err != nil {
		return c.fail(protocol.CodeBadRequest, err.Error())
	}
	if c.a.owner == nil {
		return c.fail(protocol.CodeResource, "the agent has no owner key")
	}
	reply, err := c.a.owner.prove(c.a.cfg.Budget, req.Nonce)
	if err != nil {
		return c.fail(protocol.CodeResource, err.Error())
	}
	return c.send(protocol.MarshalOwnerReply(reply))
}

func (c *conn) guard(payload []byte) error {
	req, err := protocol.ParseGuardRequest(payload)
	if err != nil {
		return c.fail(protocol.CodeBadRequest, err.Error())
	}
	switch req.Op {
	case protocol.GuardRegister:
		if c.bindFailed {
			reason := "a session-bind on this connection failed, so its host is unknown"
			c.audit(c.event("guard-register", "", "deny", reason))
			return c.fail(protocol.CodeNotPermitted, reason)
		}
		c.a.sessions.register(c.sessionScope(), req.Session)
		c.audit(c.event("guard-register", "", "allow", fmt.Sprintf("boot %s session %d (reported by the guard)", req.Session.BootID, req.Session.SessionID)))
		return c.send(protocol.SuccessFrame())
	case protocol.GuardSessions:
		if c.bindFailed {
			return c.send(protocol.MarshalSessionsReply(nil))
		}
		return c.send(protocol.MarshalSessionsReply(c.a.sessions.all(c.sessionScope())))
	default: // GuardRefused
		c.audit(c.event("guard-refused", "", "deny", req.Text+" (reported by the guard)"))
		return c.send(protocol.SuccessFrame())
	}
}

// sessionScope names what the agent knows of where the connection comes
// from, for guard sessions: the socket and the verified host path (every
// hop's key and whether it was a forwarding bind). A guard on host B,
// reached with ForwardAgent, registers and reads under "B"; a relay on
// another host A can only add hops after A's, never stand for B alone.
// Unbound forwarded connections (ssh -R, or a relay that sent no bind)
// share one scope, as they share everything else.
func (c *conn) sessionScope() string {
	h := sha256.New()
	io.WriteString(h, c.via)
	for _, hp := range c.hops {
		var n [5]byte
		binary.BigEndian.PutUint32(n[:4], uint32(len(hp.blob)))
		if hp.forwarding {
			n[4] = 1
		}
		h.Write(n[:])
		h.Write(hp.blob)
	}
	return string(h.Sum(nil))
}

// destinationOK applies a credential's destination constraint, with
// OpenSSH's rules (ssh-agent.c, identity_permitted) for a use that is never
// an authentication: every recorded hop must be a forwarding bind and the
// chain must match hop by hop. A connection that no ssh bound matches no
// chain, except an unbound one on the admin socket, which may use it as a
// local ssh-add may use a destination-constrained key. After a failed
// session-bind, nothing matches. A hop whose host key is @revoked in
// known_hosts never matches.
func (c *conn) destinationOK(cr *credential) (bool, string) {
	if c.bindFailed {
		return false, "a session-bind on this connection failed"
	}
	if len(c.hops) == 0 {
		if !c.forwarded {
			return true, ""
		}
		return false, "no ssh bound this connection to a host (session-bind); use ssh -o ForwardAgent, not -R"
	}
	for _, h := range c.hops {
		if !h.forwarding {
			return false, "the connection is bound for authentication, not forwarding"
		}
		if revoked, err := c.a.names.revoked(h.key); err != nil {
			return false, fmt.Sprintf("cannot check known_hosts for revoked keys: %v", err)
		} else if revoked {
			return false, fmt.Sprintf("host key %s is @revoked in known_hosts", ssh.FingerprintSHA256(h.key))
		}
	}
	for _, ch := range cr.cons.Destinations {
		if c.matches(ch) {
			return true, ""
		}
	}
	return false, "the verified host path matches none of the credential's -h chains"
}

// prompt is the confirm question shown to the owner.
func (c *conn) prompt(provider string, who *protocol.Requester, relayed bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Allow use of the %q credential", provider)
	if relayed {
		b.WriteString(" for a request the laptop relays")
	}
	if len(c.hops) > 0 {
		fmt.Fprintf(&b, " on %s (verified host)", strings.Join(c.hopNames(), " > "))
	} else if c.forwarded {
		b.WriteString(" from a forwarded connection (host not verified)")
	}
	if q := who; q != nil && c.forwarded {
		// Only the remote side knows who asked there; say so.
		fmt.Fprintf(&b, " by %s (pid %d, uid %d", q.Exe, q.PID, q.UID)
		if q.Hostname != "" {
			fmt.Fprintf(&b, ", on %s", q.Hostname)
		}
		b.WriteString(", as reported by the requester)")
	} else if c.peer != nil && !c.forwarded {
		// Locally the kernel names the peer; the requester block is the
		// program that ran it, also worth showing.
		fmt.Fprintf(&b, " by %s (pid %d)", c.peer.Exe, c.peer.PID)
		if q := who; q != nil && q.Exe != "" {
			fmt.Fprintf(&b, " run by %s", q.Exe)
		}
	}
	b.WriteString("?")
	return b.String()
}

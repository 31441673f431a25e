package agent

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	sshagent "golang.org/x/crypto/ssh/agent"

	"github.com/llm-agent/llm-agent/internal/peercred"
	"github.com/llm-agent/llm-agent/protocol"
)

var errLocked = errors.New("agent is locked")

// lockedKeys puts the agent's lock in front of the SSH-key backend: while
// locked it lists no keys and refuses everything else, as ssh-agent does.
// Lock and unlock never reach it; the agent serves those frames itself.
type lockedKeys struct {
	backend  sshagent.ExtendedAgent
	locked   func() bool
	lifetime time.Duration // default for keys added without one (-t)
	// confirm holds the constraints of the keys added (ssh-add -c, which
	// x/crypto's keyring does not support itself, and -t); nil for an
	// upstream agent, which enforces its own constraints.
	confirm *keyConfirm
	ask     func(prompt string) (bool, string)
}

// keyConfirm holds the constraints that x/crypto's keyring cannot keep
// itself (confirm), and the lifetimes again, per private key: a
// certificate signs with the same private key as the plain key, and a
// signature made under the plain key's blob serves a certificate login as
// well (and the reverse), so a constraint given to any entry of a key
// binds every blob that key is offered and signs under. An entry's
// constraints end with the entry (removal, expiry, re-add without them).
type keyConfirm struct {
	mu      sync.Mutex
	entries map[string]keyEntry // by the blob the entry is listed under
}

type keyEntry struct {
	key     string    // the plain public key blob the entry signs with
	confirm bool      // added with ssh-add -c
	expire  time.Time // end of its lifetime (-t); zero for none
}

// plainBlob is the blob of the plain key behind blob: the certified key for
// a certificate, blob itself otherwise (also when it does not parse).
func plainBlob(blob []byte) string {
	pub, err := ssh.ParsePublicKey(blob)
	if err != nil {
		return string(blob)
	}
	if cert, ok := pub.(*ssh.Certificate); ok {
		return string(cert.Key.Marshal())
	}
	return string(blob)
}

// expireLocked removes from backend every entry of a private key one of
// whose entries reached the end of its lifetime.
func (k *keyConfirm) expireLocked(backend sshagent.Agent) {
	now := time.Now()
	gone := map[string]bool{}
	for _, e := range k.entries {
		if !e.expire.IsZero() && !now.Before(e.expire) {
			gone[e.key] = true
		}
	}
	if len(gone) == 0 {
		return
	}
	for blob, e := range k.entries {
		if !gone[e.key] {
			continue
		}
		if pub, err := ssh.ParsePublicKey([]byte(blob)); err == nil {
			backend.Remove(pub) // the keyring may have dropped it already
		}
		delete(k.entries, blob)
	}
}

// confirmNeededLocked reports whether a signature under blob needs the
// owner's confirmation: whether any live entry of the same private key was
// added with -c. Entries the backend no longer holds (SIGUSR1's remove-all)
// are forgotten. A failure to list fails closed.
func (k *keyConfirm) confirmNeededLocked(backend sshagent.Agent, blob []byte) bool {
	k.expireLocked(backend)
	list, err := backend.List()
	if err != nil {
		return true
	}
	live := map[string]bool{}
	for _, l := range list {
		live[string(l.Blob)] = true
	}
	want := plainBlob(blob)
	needed := false
	for b, e := range k.entries {
		if !live[b] {
			delete(k.entries, b)
			continue
		}
		if e.key == want && e.confirm {
			needed = true
		}
	}
	return needed
}

// confirmUse asks the owner before a signature with a key one of whose
// entries (the plain key or a certificate for it) was added with -c.
func (k *lockedKeys) confirmUse(key ssh.PublicKey) error {
	if k.confirm == nil {
		return nil
	}
	k.confirm.mu.Lock()
	needed := k.confirm.confirmNeededLocked(k.backend, key.Marshal())
	k.confirm.mu.Unlock()
	if !needed {
		return nil
	}
	// The prompt names the plain key, as ssh-agent's does for a
	// certificate too (x/crypto hands over a bare blob, not a *Certificate).
	fp := ssh.FingerprintSHA256(key)
	if plain, err := ssh.ParsePublicKey([]byte(plainBlob(key.Marshal()))); err == nil {
		fp = ssh.FingerprintSHA256(plain)
	}
	ok, reason := k.ask(fmt.Sprintf("Allow use of key %s?", fp))
	if !ok {
		return errors.New(reason)
	}
	return nil
}

func (k *lockedKeys) List() ([]*sshagent.Key, error) {
	if k.locked() {
		return nil, nil
	}
	if k.confirm != nil {
		k.confirm.mu.Lock()
		k.confirm.expireLocked(k.backend)
		k.confirm.mu.Unlock()
	}
	return k.backend.List()
}

func (k *lockedKeys) Sign(key ssh.PublicKey, data []byte) (*ssh.Signature, error) {
	if k.locked() {
		return nil, errLocked
	}
	if err := k.confirmUse(key); err != nil {
		return nil, err
	}
	return k.backend.Sign(key, data)
}

func (k *lockedKeys) SignWithFlags(key ssh.PublicKey, data []byte, flags sshagent.SignatureFlags) (*ssh.Signature, error) {
	if k.locked() {
		return nil, errLocked
	}
	if err := k.confirmUse(key); err != nil {
		return nil, err
	}
	return k.backend.SignWithFlags(key, data, flags)
}

func (k *lockedKeys) Add(key sshagent.AddedKey) error {
	if k.locked() {
		return errLocked
	}
	if key.LifetimeSecs == 0 && k.lifetime > 0 {
		key.LifetimeSecs = uint32(k.lifetime / time.Second)
	}
	if k.confirm == nil {
		return k.backend.Add(key)
	}
	signer, err := ssh.NewSignerFromKey(key.PrivateKey)
	if err != nil {
		return fmt.Errorf("ssh key: %w", err)
	}
	e := keyEntry{key: string(signer.PublicKey().Marshal()), confirm: key.ConfirmBeforeUse}
	blob := e.key
	if key.Certificate != nil {
		blob = string(key.Certificate.Marshal())
	}
	if key.LifetimeSecs > 0 {
		e.expire = time.Now().Add(time.Duration(key.LifetimeSecs) * time.Second)
	}
	key.ConfirmBeforeUse = false
	// The entry is recorded before the key can sign, under the same lock
	// as the check, so no signature slips in between without its prompt.
	k.confirm.mu.Lock()
	defer k.confirm.mu.Unlock()
	k.confirm.expireLocked(k.backend)
	if k.confirm.entries == nil {
		k.confirm.entries = map[string]keyEntry{}
	}
	old, had := k.confirm.entries[blob]
	k.confirm.entries[blob] = e
	if err := k.backend.Add(key); err != nil {
		if had {
			k.confirm.entries[blob] = old
		} else {
			delete(k.confirm.entries, blob)
		}
		return err
	}
	return nil
}

func (k *lockedKeys) Remove(key ssh.PublicKey) error {
	if k.locked() {
		return errLocked
	}
	if k.confirm == nil {
		return k.backend.Remove(key)
	}
	k.confirm.mu.Lock()
	defer k.confirm.mu.Unlock()
	if err := k.backend.Remove(key); err != nil {
		return err
	}
	delete(k.confirm.entries, string(key.Marshal()))
	return nil
}

func (k *lockedKeys) RemoveAll() error {
	if k.locked() {
		return errLocked
	}
	if k.confirm == nil {
		return k.backend.RemoveAll()
	}
	k.confirm.mu.Lock()
	defer k.confirm.mu.Unlock()
	if err := k.backend.RemoveAll(); err != nil {
		return err
	}
	k.confirm.entries = nil
	return nil
}

func (k *lockedKeys) Lock([]byte) error   { return errors.New("lock is handled by the agent") }
func (k *lockedKeys) Unlock([]byte) error { return errors.New("unlock is handled by the agent") }

func (k *lockedKeys) Signers() ([]ssh.Signer, error) {
	return nil, errors.New("signers are not exported")
}

func (k *lockedKeys) Extension(string, []byte) ([]byte, error) {
	return nil, sshagent.ErrExtensionUnsupported
}

// upstreamKeys relays SSH-agent frames raw to the upstream agent
// (--upstream, or llm-agent's private OpenSSH ssh-agent): one connection
// per client connection, dialled on first use, so that the upstream sees
// each client's session-binds on the connection its requests come in on.
// Frames are not parsed on the way: every key type and constraint the
// upstream knows works.
type upstreamKeys struct {
	path string
	conn net.Conn
	// reserve and release, when set, count the connection while it is
	// open (Agent.reserveUpstream).
	reserve, release func()
}

func (u *upstreamKeys) dial() error {
	if u.conn != nil {
		return nil
	}
	// The upstream path comes from the command line (often $SSH_AUTH_SOCK):
	// refuse one that another user serves, before any key request goes
	// there or a signature comes back from it.
	if u.reserve != nil {
		u.reserve()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	c, err := peercred.DialOwned(ctx, u.path)
	cancel()
	if err != nil {
		if u.release != nil {
			u.release()
		}
		return fmt.Errorf("upstream agent: %w", err)
	}
	u.conn = c
	return nil
}

// roundTrip sends the request body (message number included) and returns
// the upstream's reply frame, length included. There is no deadline on
// the reply: the upstream may be asking the owner (-c) or waiting for a
// touch on a security key. After an error the connection is dropped, as
// its stream can no longer be trusted to be in step.
func (u *upstreamKeys) roundTrip(body []byte) ([]byte, error) {
	if err := u.dial(); err != nil {
		return nil, err
	}
	reply, err := u.exchange(body)
	if err != nil {
		u.Close()
		return nil, fmt.Errorf("upstream agent: %w", err)
	}
	return reply, nil
}

func (u *upstreamKeys) exchange(body []byte) ([]byte, error) {
	req := protocol.Frame(body)
	defer clear(req) // an added key's private half
	fc := protocol.FrameConn{Conn: u.conn, Max: protocol.MaxFrame}
	if err := fc.Write(req); err != nil {
		return nil, err
	}
	return fc.ReadWhole()
}

func (u *upstreamKeys) Close() error {
	if u.conn == nil {
		return nil
	}
	err := u.conn.Close()
	u.conn = nil
	if u.release != nil {
		u.release()
	}
	return err
}

// withLifetime turns a plain SSH_AGENTC_ADD_IDENTITY into one constrained
// to secs (the agent's -t for a foreign --upstream, which has its own
// default). A request that already carries constraints is left as it is:
// finding a lifetime among them would mean parsing every key type.
func withLifetime(body []byte, secs uint32) []byte {
	if body[0] != protocol.MsgAddIdentity || secs == 0 {
		return body
	}
	out := make([]byte, 0, len(body)+5)
	out = append(out, protocol.MsgAddIDConstrained)
	out = append(out, body[1:]...)
	out = append(out, sshagentConstrainLifetime)
	return binary.BigEndian.AppendUint32(out, secs)
}

// sshagentConstrainLifetime is SSH_AGENT_CONSTRAIN_LIFETIME.
const sshagentConstrainLifetime = 1

// identitiesNone is SSH_AGENT_IDENTITIES_ANSWER with no keys: what a
// locked agent lists.
func identitiesNone() []byte {
	return []byte{0, 0, 0, 5, protocol.MsgIdentitiesAnswer, 0, 0, 0, 0}
}

// serveKeyFrame hands one frame (message number included) to
// x/crypto/ssh/agent and returns its reply frame. ServeAgent reads exactly
// one frame from the reader, writes the reply, and stops at io.EOF.
func serveKeyFrame(keys sshagent.Agent, body []byte) []byte {
	in := protocol.Frame(body)
	defer clear(in)
	rw := &oneFrame{in: bytes.NewReader(in)}
	if err := sshagent.ServeAgent(keys, rw); err != nil && err != io.EOF {
		return protocol.FailureFrame()
	}
	if rw.out.Len() == 0 {
		return protocol.FailureFrame()
	}
	return rw.out.Bytes()
}

type oneFrame struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func (f *oneFrame) Read(p []byte) (int, error)  { return f.in.Read(p) }
func (f *oneFrame) Write(p []byte) (int, error) { return f.out.Write(p) }

package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	sshagent "golang.org/x/crypto/ssh/agent"

	"github.com/llm-agent/llm-agent/peercred"
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
	// confirm holds the keys added with ssh-add -c, which x/crypto's
	// keyring does not support itself; nil for an upstream agent, which
	// enforces its own constraints.
	confirm *keyConfirm
	ask     func(prompt string) (bool, string)
}

// keyConfirm is the set of SSH keys whose every use the owner confirms.
type keyConfirm struct {
	mu   sync.Mutex
	keys map[string]bool // by public key blob
}

func (k *keyConfirm) set(blob []byte, on bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.keys == nil {
		k.keys = map[string]bool{}
	}
	if on {
		k.keys[string(blob)] = true
	} else {
		delete(k.keys, string(blob))
	}
}

func (k *keyConfirm) needed(blob []byte) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.keys[string(blob)]
}

// confirmUse asks the owner before a signature with a key added with -c.
func (k *lockedKeys) confirmUse(key ssh.PublicKey) error {
	if k.confirm == nil || !k.confirm.needed(key.Marshal()) {
		return nil
	}
	ok, reason := k.ask(fmt.Sprintf("Allow use of key %s?", ssh.FingerprintSHA256(key)))
	if !ok {
		return errors.New(reason)
	}
	return nil
}

func (k *lockedKeys) List() ([]*sshagent.Key, error) {
	if k.locked() {
		return nil, nil
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
	if k.confirm != nil {
		signer, err := ssh.NewSignerFromKey(key.PrivateKey)
		if err != nil {
			return err
		}
		confirm := key.ConfirmBeforeUse
		key.ConfirmBeforeUse = false
		if err := k.backend.Add(key); err != nil {
			return err
		}
		k.confirm.set(signer.PublicKey().Marshal(), confirm)
		return nil
	}
	return k.backend.Add(key)
}

func (k *lockedKeys) Remove(key ssh.PublicKey) error {
	if k.locked() {
		return errLocked
	}
	return k.backend.Remove(key)
}

func (k *lockedKeys) RemoveAll() error {
	if k.locked() {
		return errLocked
	}
	return k.backend.RemoveAll()
}

func (k *lockedKeys) Lock([]byte) error   { return errors.New("lock is handled by the agent") }
func (k *lockedKeys) Unlock([]byte) error { return errors.New("unlock is handled by the agent") }

func (k *lockedKeys) Signers() ([]ssh.Signer, error) {
	return nil, errors.New("signers are not exported")
}

func (k *lockedKeys) Extension(string, []byte) ([]byte, error) {
	return nil, sshagent.ErrExtensionUnsupported
}

// upstreamKeys is a connection to the --upstream agent, dialled on first
// use by each client connection.
type upstreamKeys struct {
	path string
	conn net.Conn
	sshagent.ExtendedAgent
}

func (u *upstreamKeys) dial() error {
	if u.ExtendedAgent != nil {
		return nil
	}
	// The upstream path comes from the command line (often $SSH_AUTH_SOCK):
	// refuse one that another user serves, before any key request goes
	// there or a signature comes back from it.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	c, err := peercred.DialOwned(ctx, u.path)
	cancel()
	if err != nil {
		return fmt.Errorf("upstream agent: %w", err)
	}
	u.conn = c
	u.ExtendedAgent = sshagent.NewClient(c)
	return nil
}

func (u *upstreamKeys) Close() error {
	if u.conn != nil {
		return u.conn.Close()
	}
	return nil
}

// serveKeyFrame hands one frame (message number included) to
// x/crypto/ssh/agent and returns its reply frame. ServeAgent reads exactly
// one frame from the reader, writes the reply, and stops at io.EOF.
func serveKeyFrame(keys sshagent.Agent, body []byte) []byte {
	in := make([]byte, 4+len(body))
	in[0], in[1], in[2], in[3] = byte(len(body)>>24), byte(len(body)>>16), byte(len(body)>>8), byte(len(body))
	copy(in[4:], body)
	defer protocol.Wipe(in)
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

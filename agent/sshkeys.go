package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"golang.org/x/crypto/ssh"
	sshagent "golang.org/x/crypto/ssh/agent"

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
	return k.backend.Sign(key, data)
}

func (k *lockedKeys) SignWithFlags(key ssh.PublicKey, data []byte, flags sshagent.SignatureFlags) (*ssh.Signature, error) {
	if k.locked() {
		return nil, errLocked
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
	c, err := net.DialTimeout("unix", u.path, 5*time.Second)
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

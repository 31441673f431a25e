package agent

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"sync"

	"golang.org/x/crypto/ssh"

	"github.com/llm-agent/llm-agent/memsafe"
	"github.com/llm-agent/llm-agent/protocol"
)

// owner is the agent's owner identity: an ed25519 key made when the agent
// starts. Server-side guards key their stable socket path by its public
// key and check, by a signature over a fresh nonce, that their upstream
// really holds it, so a guard of another owner cannot serve on that path.
type owner struct {
	pub  ssh.PublicKey
	seed *memsafe.Secret
}

func newOwner(budget *memsafe.Budget) (*owner, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("owner key: %w", err)
	}
	defer memsafe.Wipe(priv)
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("owner key: %w", err)
	}
	seed, err := budget.Seal(append([]byte(nil), priv.Seed()...))
	if err != nil {
		return nil, fmt.Errorf("owner key: %w", err)
	}
	return &owner{pub: sshPub, seed: seed}, nil
}

// prove signs OwnerProofContext || nonce with the owner key.
func (o *owner) prove(budget *memsafe.Budget, nonce []byte) (*protocol.OwnerReply, error) {
	var sig []byte
	err := budget.Open(o.seed, func(seed []byte) error {
		priv := ed25519.NewKeyFromSeed(seed)
		defer memsafe.Wipe(priv)
		msg := append([]byte(protocol.OwnerProofContext), nonce...)
		sig = ed25519.Sign(priv, msg)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &protocol.OwnerReply{
		Key:       o.pub.Marshal(),
		Signature: ssh.Marshal(ssh.Signature{Format: ssh.KeyAlgoED25519, Blob: sig}),
	}, nil
}

// maxSessions bounds the guard sessions the agent remembers.
const maxSessions = 256

// sessions are the owner's login sessions that guards registered, so that
// a later guard on the same host also serves processes of earlier logins
// (a tool left running in tmux). The laptop keeps the list because the
// server's disk and memory are shared with the co-tenants it guards
// against. Each session is kept under the scope of the connection that
// registered it (its verified host path, see conn.sessionScope) and only
// shown to connections of the same scope: otherwise whoever holds a relay
// on one host could register, for another host's boot id (readable by
// every user there), the session of a co-tenant of that host, whom the
// guard there would then serve.
type sessions struct {
	mu   sync.Mutex
	list []scopedSession // oldest first
}

type scopedSession struct {
	scope string
	s     protocol.Session
}

func (s *sessions) register(scope string, x protocol.Session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, y := range s.list {
		if y.scope == scope && y.s == x {
			return
		}
	}
	if len(s.list) >= maxSessions {
		s.list = s.list[1:]
	}
	s.list = append(s.list, scopedSession{scope, x})
}

// all returns the sessions registered under scope.
func (s *sessions) all(scope string) []protocol.Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []protocol.Session
	for _, y := range s.list {
		if y.scope == scope {
			out = append(out, y.s)
		}
	}
	return out
}

package agent

import (
	"crypto/rand"
	"crypto/subtle"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/llm-agent/llm-agent/memsafe"
)

// locker implements SSH_AGENTC_LOCK/UNLOCK. Only a salted argon2id hash of
// the passphrase is kept, compared in constant time; each failed unlock
// makes the next one wait longer, as ssh-agent does.
type locker struct {
	mu       sync.Mutex
	locked   bool
	salt     [16]byte
	hash     []byte
	failures int
}

const (
	maxUnlockDelay  = 10 * time.Second
	unlockDelayStep = 100 * time.Millisecond
)

func hashPassphrase(pass []byte, salt []byte) []byte {
	return argon2.IDKey(pass, salt, 2, 19*1024, 1, 32)
}

func (l *locker) isLocked() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.locked
}

// lock locks with pass; it fails when already locked.
func (l *locker) lock(pass []byte) bool {
	defer memsafe.Wipe(pass)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.locked {
		return false
	}
	if _, err := rand.Read(l.salt[:]); err != nil {
		return false
	}
	l.hash = hashPassphrase(pass, l.salt[:])
	l.locked = true
	l.failures = 0
	return true
}

// unlock unlocks when pass matches. The delay for earlier failures is
// served before the check, outside the mutex, so a guessing client only
// slows itself and other unlockers, never the rest of the agent.
func (l *locker) unlock(pass []byte) bool {
	defer memsafe.Wipe(pass)
	l.mu.Lock()
	if !l.locked {
		l.mu.Unlock()
		return false
	}
	delay := time.Duration(l.failures) * unlockDelayStep
	salt := l.salt
	l.mu.Unlock()
	if delay > maxUnlockDelay {
		delay = maxUnlockDelay
	}
	time.Sleep(delay)

	h := hashPassphrase(pass, salt[:])
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.locked || subtle.ConstantTimeCompare(h, l.hash) != 1 {
		l.failures++
		return false
	}
	l.locked = false
	memsafe.Wipe(l.hash)
	l.hash = nil
	l.failures = 0
	return true
}

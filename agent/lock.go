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
	// attempt serialises unlock attempts: it is held across the delay,
	// the Argon2 hash and the check, so that N connections get one guess
	// per delay between them, and at most one Argon2 (19 MiB) runs at a
	// time. mu alone guards the state and is never held while waiting.
	attempt  sync.Mutex
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

// hashUnlock is the hash unlock uses; tests wrap it to count how many run
// at once.
var hashUnlock = hashPassphrase

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

// unlock unlocks when pass matches. Attempts queue on l.attempt: each
// serves the delay that earlier failures earned, then hashes and checks,
// one at a time. Only unlockers wait; the rest of the agent reads the
// state under l.mu, which is never held across the delay or the hash.
func (l *locker) unlock(pass []byte) bool {
	defer memsafe.Wipe(pass)
	l.attempt.Lock()
	defer l.attempt.Unlock()
	l.mu.Lock()
	if !l.locked {
		l.mu.Unlock()
		return false
	}
	delay := min(time.Duration(l.failures)*unlockDelayStep, maxUnlockDelay)
	salt := l.salt
	l.mu.Unlock()
	time.Sleep(delay)

	h := hashUnlock(pass, salt[:])
	defer memsafe.Wipe(h)
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

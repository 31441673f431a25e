package agent

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestUnlockSerialised: many connections guessing at once get one Argon2
// at a time and one guess per delay between them, and the owner's
// passphrase still unlocks afterwards.
func TestUnlockSerialised(t *testing.T) {
	const guessers = 8
	var running, most, calls atomic.Int32
	hashUnlock = func(pass, salt []byte) []byte {
		n := running.Add(1)
		defer running.Add(-1)
		calls.Add(1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		return hashPassphrase(pass, salt)
	}
	t.Cleanup(func() { hashUnlock = hashPassphrase })

	var l locker
	if !l.lock([]byte("right")) {
		t.Fatal("lock failed")
	}
	start := time.Now()
	var wg sync.WaitGroup
	var unlocked atomic.Int32
	for range guessers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if l.unlock([]byte("wrong")) {
				unlocked.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if unlocked.Load() != 0 {
		t.Fatal("a wrong passphrase unlocked")
	}
	if got := most.Load(); got != 1 {
		t.Errorf("%d Argon2 hashes ran at once, want 1", got)
	}
	if got := calls.Load(); got != guessers {
		t.Errorf("%d hashes for %d guesses", got, guessers)
	}
	l.mu.Lock()
	failures := l.failures
	l.mu.Unlock()
	if failures != guessers {
		t.Errorf("%d failures counted, want %d", failures, guessers)
	}
	// Each guess waited for the delay its predecessors earned: 0, 100 ms,
	// ... 700 ms, 2.8 s in all (reported, not asserted: timings are for
	// benchmarks).
	t.Logf("%d concurrent wrong unlocks took %v", guessers, elapsed.Round(time.Millisecond))
	if !l.unlock([]byte("right")) {
		t.Fatal("the right passphrase did not unlock after the guesses")
	}
	if l.isLocked() {
		t.Fatal("still locked")
	}
}

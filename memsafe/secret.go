package memsafe

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/awnumar/memguard"
)

// ErrLockedMemory is returned when an operation would need more locked
// memory than RLIMIT_MEMLOCK allows.
var ErrLockedMemory = errors.New("out of locked memory")

// cofferPages is what memguard locks for its own key (three 32-byte
// buffers, one page each), once per process.
const cofferPages = 3

// waitForPages bounds how long an Open waits for locked pages that other
// requests hold; past it the request fails instead of queueing forever.
const waitForPages = 2 * time.Second

// Budget accounts for locked memory so that memguard never hits the limit.
type Budget struct {
	page  int64
	limit int64 // bytes usable by us; <0 means unlimited

	mu   sync.Mutex
	used int64
	free *sync.Cond

	// pool keeps a few one-page locked buffers for replies, so that a get
	// does not pay for mmap, mlock and mprotect of a fresh buffer each
	// time; they are wiped between uses. Their pages count as used for
	// good once made.
	poolMu sync.Mutex
	pool   []*memguard.LockedBuffer
	pooled int
}

// maxPool bounds the pooled reply buffers (one page each); below
// minPoolLimit of RLIMIT_MEMLOCK there is no pool.
const (
	maxPool      = 16
	minPoolLimit = 2 << 20
)

// NewBudget returns a budget for a RLIMIT_MEMLOCK of limit bytes; a negative
// limit means unlimited.
func NewBudget(limit int64) *Budget {
	b := &Budget{page: int64(os.Getpagesize()), limit: limit}
	if limit >= 0 {
		b.limit = limit - cofferPages*b.page
		if b.limit < 0 {
			b.limit = 0
		}
	}
	b.free = sync.NewCond(&b.mu)
	return b
}

// Limit returns the usable locked memory in bytes, or -1 when unlimited.
func (b *Budget) Limit() int64 { return b.limit }

// openCost is the locked memory that opening a secret of size bytes takes:
// its pages, and one page for memguard's transient view of its key.
func (b *Budget) openCost(size int) int64 {
	return (int64(size)+b.page-1)/b.page*b.page + b.page
}

// Check reports whether a secret of size bytes can ever be opened within
// the limit. The agent refuses to store one that cannot.
func (b *Budget) Check(size int) error {
	if b.limit < 0 {
		return nil
	}
	if need := b.openCost(size); need > b.limit {
		return fmt.Errorf("%w: a %d byte secret needs %d KiB of locked memory to use, and RLIMIT_MEMLOCK leaves %d KiB (raise it with ulimit -l)",
			ErrLockedMemory, size, need>>10, b.limit>>10)
	}
	return nil
}

func (b *Budget) reserve(n int64) error {
	if b.limit < 0 {
		return nil
	}
	if n > b.limit {
		return fmt.Errorf("%w: need %d KiB, RLIMIT_MEMLOCK leaves %d KiB (raise it with ulimit -l)", ErrLockedMemory, n>>10, b.limit>>10)
	}
	deadline := time.Now().Add(waitForPages)
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.used+n > b.limit {
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %d KiB in use by other requests, limit %d KiB", ErrLockedMemory, b.used>>10, b.limit>>10)
		}
		// sync.Cond has no timed wait; a timer wakes everyone at the deadline.
		t := time.AfterFunc(time.Until(deadline), func() {
			b.mu.Lock()
			b.free.Broadcast()
			b.mu.Unlock()
		})
		b.free.Wait()
		t.Stop()
	}
	b.used += n
	return nil
}

func (b *Budget) release(n int64) {
	if b.limit < 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	b.free.Broadcast()
	b.mu.Unlock()
}

// Secret is a value sealed in a memguard enclave: encrypted in ordinary
// memory with a key that memguard keeps locked and rotates.
type Secret struct {
	e    *memguard.Enclave
	size int
}

// Len returns the plaintext length.
func (s *Secret) Len() int { return s.size }

// Seal moves buf into a new Secret and wipes buf, also on error.
func (b *Budget) Seal(buf []byte) (*Secret, error) {
	if len(buf) == 0 {
		return &Secret{}, nil
	}
	if err := b.Check(len(buf)); err != nil {
		Wipe(buf)
		return nil, err
	}
	// Sealing opens memguard's key for a moment: one page.
	if err := b.reserve(b.page); err != nil {
		Wipe(buf)
		return nil, err
	}
	defer b.release(b.page)
	return &Secret{e: memguard.NewEnclave(buf), size: len(buf)}, nil
}

// Reserve sets aside, in one step, the locked memory to open every secret
// in secrets at once and to build a scratch buffer of scratch bytes. Taking
// it all at once means concurrent requests cannot each hold a part and wait
// for the rest. The caller calls release when done, and meanwhile uses the
// Open and Scratch methods of the returned Reservation.
func (b *Budget) Reserve(secrets []*Secret, scratch int) (*Reservation, error) {
	var cost int64
	for _, s := range secrets {
		if s != nil && s.e != nil {
			cost += b.openCost(s.size)
		}
	}
	var pooled *memguard.LockedBuffer
	if scratch > 0 && int64(scratch) <= b.page {
		pooled = b.takePooled()
	}
	if scratch > 0 && pooled == nil {
		cost += (int64(scratch) + b.page - 1) / b.page * b.page
	}
	if err := b.reserve(cost); err != nil {
		b.putPooled(pooled)
		return nil, err
	}
	return &Reservation{b: b, cost: cost, pooled: pooled}, nil
}

// takePooled returns a pooled one-page buffer, making one if the pool is
// not full and the limit allows; nil otherwise.
func (b *Budget) takePooled() *memguard.LockedBuffer {
	b.poolMu.Lock()
	defer b.poolMu.Unlock()
	if n := len(b.pool); n > 0 {
		lb := b.pool[n-1]
		b.pool = b.pool[:n-1]
		return lb
	}
	if b.pooled >= maxPool {
		return nil
	}
	if b.limit >= 0 {
		// Pooled pages stay locked for good: only pool when the limit
		// leaves plenty (an eighth of it at most) for opens.
		if b.limit < minPoolLimit || int64(b.pooled+1)*b.page > b.limit/8 {
			return nil
		}
		b.mu.Lock()
		ok := b.used+b.page <= b.limit/8
		if ok {
			b.used += b.page
		}
		b.mu.Unlock()
		if !ok {
			return nil
		}
	}
	b.pooled++
	return memguard.NewBuffer(int(b.page))
}

func (b *Budget) putPooled(lb *memguard.LockedBuffer) {
	if lb == nil {
		return
	}
	lb.Wipe()
	b.poolMu.Lock()
	b.pool = append(b.pool, lb)
	b.poolMu.Unlock()
}

// Reservation is locked memory set aside by Reserve.
type Reservation struct {
	b      *Budget
	cost   int64
	pooled *memguard.LockedBuffer
}

// Release returns the reservation to the budget.
func (r *Reservation) Release() {
	r.b.putPooled(r.pooled)
	r.pooled = nil
	r.b.release(r.cost)
}

// Open decrypts s into locked memory, passes the plaintext to fn, and
// destroys the plaintext when fn returns. fn must not keep the slice.
func (r *Reservation) Open(s *Secret, fn func(plain []byte) error) error { return open(s, fn) }

// Scratch gives fn a locked, zeroed buffer of n bytes (its capacity may be
// larger) and wipes or destroys it afterwards.
func (r *Reservation) Scratch(n int, fn func(buf []byte) error) error {
	if r.pooled != nil && n > 0 && n <= r.pooled.Size() {
		defer r.pooled.Wipe()
		return fn(r.pooled.Bytes()[:n])
	}
	return scratch(n, fn)
}

// Open is Reserve, Open and Release for one secret.
func (b *Budget) Open(s *Secret, fn func(plain []byte) error) error {
	r, err := b.Reserve([]*Secret{s}, 0)
	if err != nil {
		return err
	}
	defer r.Release()
	return open(s, fn)
}

func open(s *Secret, fn func(plain []byte) error) error {
	if s == nil || s.e == nil {
		return fn(nil)
	}
	lb, err := s.e.Open()
	if err != nil {
		return fmt.Errorf("opening enclave: %w", err)
	}
	defer lb.Destroy()
	return fn(lb.Bytes())
}

// Scratch gives fn a locked, zeroed buffer of n bytes and destroys it
// afterwards; replies that carry plaintext are built in one.
func (b *Budget) Scratch(n int, fn func(buf []byte) error) error {
	r, err := b.Reserve(nil, n)
	if err != nil {
		return err
	}
	defer r.Release()
	return scratch(n, fn)
}

func scratch(n int, fn func(buf []byte) error) error {
	if n <= 0 {
		return fn(nil)
	}
	lb := memguard.NewBuffer(n)
	defer lb.Destroy()
	return fn(lb.Bytes())
}

// Wipe zeroes buf.
func Wipe(buf []byte) { memguard.WipeBytes(buf) }

// Purge wipes memguard's key and every locked buffer; enclaves become
// unreadable. Call it on the way out.
func Purge() { memguard.Purge() }

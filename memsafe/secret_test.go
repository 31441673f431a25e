package memsafe_test

import (
	"bytes"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/memsafe"
)

// A 64 KiB RLIMIT_MEMLOCK leaves 52 KiB once memguard's own three pages
// are set aside (4 KiB pages).
const testLimit = 64 << 10

func page(t *testing.T) int {
	p := os.Getpagesize()
	if p != 4096 {
		t.Skipf("page size %d: the sizes in this test assume 4 KiB pages", p)
	}
	return p
}

func TestBudgetLimit(t *testing.T) {
	page(t)
	tests := []struct {
		limit, want int64
	}{
		{-1, -1},
		{testLimit, testLimit - 3*4096},
		{1000, 0},
		{0, 0},
	}
	for _, tt := range tests {
		if got := memsafe.NewBudget(tt.limit).Limit(); got != tt.want {
			t.Errorf("NewBudget(%d).Limit() = %d, want %d", tt.limit, got, tt.want)
		}
	}
}

func TestBudgetCheck(t *testing.T) {
	page(t)
	b := memsafe.NewBudget(testLimit)
	// Opening a secret takes its pages plus one page for memguard's key.
	tests := []struct {
		size int
		ok   bool
	}{
		{0, true},
		{1, true},
		{48 << 10, true},    // 12 pages + 1 = 52 KiB, exactly the limit
		{48<<10 + 1, false}, // 13 pages + 1
		{64 << 10, false},   // the whole rlimit
		{1 << 30, false},    // far beyond
	}
	for _, tt := range tests {
		err := b.Check(tt.size)
		if tt.ok && err != nil {
			t.Errorf("Check(%d): %v", tt.size, err)
		}
		if !tt.ok && !errors.Is(err, memsafe.ErrLockedMemory) {
			t.Errorf("Check(%d) = %v, want ErrLockedMemory", tt.size, err)
		}
	}
	if err := memsafe.NewBudget(-1).Check(1 << 30); err != nil {
		t.Errorf("unlimited budget refused: %v", err)
	}
}

func TestSealOpen(t *testing.T) {
	b := memsafe.NewBudget(testLimit)
	for _, size := range []int{1, 31, 4096, 20000} {
		plain := bytes.Repeat([]byte{0x5a}, size)
		buf := bytes.Clone(plain)
		s, err := b.Seal(buf)
		if err != nil {
			t.Fatalf("Seal(%d bytes): %v", size, err)
		}
		if !allZero(buf) {
			t.Errorf("Seal(%d bytes) left its input unwiped", size)
		}
		if s.Len() != size {
			t.Errorf("Len() = %d, want %d", s.Len(), size)
		}
		for range 2 { // an enclave opens more than once
			err = b.Open(s, func(p []byte) error {
				if !bytes.Equal(p, plain) {
					t.Errorf("Open(%d bytes): plaintext differs", size)
				}
				return nil
			})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
		}
	}
}

func TestSealEmpty(t *testing.T) {
	b := memsafe.NewBudget(testLimit)
	s, err := b.Seal(nil)
	if err != nil || s.Len() != 0 {
		t.Fatalf("Seal(nil) = %v, %v", s, err)
	}
	called := false
	if err := b.Open(s, func(p []byte) error { called = true; return checkLen(p, 0) }); err != nil || !called {
		t.Fatalf("Open(empty) = %v, called %v", err, called)
	}
	if err := b.Open(nil, func(p []byte) error { return checkLen(p, 0) }); err != nil {
		t.Fatalf("Open(nil) = %v", err)
	}
}

func TestSealTooLarge(t *testing.T) {
	page(t)
	b := memsafe.NewBudget(testLimit)
	buf := bytes.Repeat([]byte{1}, 60<<10)
	s, err := b.Seal(buf)
	if !errors.Is(err, memsafe.ErrLockedMemory) || s != nil {
		t.Fatalf("Seal(60 KiB) = %v, %v; want ErrLockedMemory", s, err)
	}
	if !allZero(buf) {
		t.Errorf("refused Seal left its input unwiped")
	}
}

func TestOpenPassesErrors(t *testing.T) {
	b := memsafe.NewBudget(testLimit)
	s, err := b.Seal([]byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	want := errors.New("from fn")
	if err := b.Open(s, func([]byte) error { return want }); err != want {
		t.Fatalf("Open returned %v, want fn's error", err)
	}
	// The budget was released: the next Open works.
	if err := b.Open(s, func([]byte) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestScratch(t *testing.T) {
	page(t)
	b := memsafe.NewBudget(testLimit)
	err := b.Scratch(5000, func(buf []byte) error {
		if len(buf) != 5000 || !allZero(buf) {
			t.Errorf("Scratch buffer: %d bytes, zeroed %v", len(buf), allZero(buf))
		}
		copy(buf, "written")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Scratch(0, func(buf []byte) error { return checkLen(buf, 0) }); err != nil {
		t.Fatal(err)
	}
	if err := b.Scratch(60<<10, func([]byte) error { t.Error("fn called"); return nil }); !errors.Is(err, memsafe.ErrLockedMemory) {
		t.Fatalf("Scratch(60 KiB) = %v, want ErrLockedMemory", err)
	}
}

// TestConcurrentOpensBeyondLimit: two opens of a 20000-byte secret hold
// 2 x 24 KiB of the 52 KiB; a third must fail with ErrLockedMemory within
// about two seconds, not hang.
func TestConcurrentOpensBeyondLimit(t *testing.T) {
	page(t)
	b := memsafe.NewBudget(testLimit)
	s, err := b.Seal(make([]byte, 20000))
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var held, done sync.WaitGroup
	held.Add(2)
	done.Add(2)
	for range 2 {
		go func() {
			defer done.Done()
			err := b.Open(s, func([]byte) error {
				held.Done()
				<-release
				return nil
			})
			if err != nil {
				t.Errorf("holder: %v", err)
			}
		}()
	}
	held.Wait()

	start := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- b.Open(s, func([]byte) error { return nil }) }()
	select {
	case err := <-errc:
		t.Logf("third Open gave up after %v", time.Since(start).Round(time.Millisecond))
		if !errors.Is(err, memsafe.ErrLockedMemory) {
			t.Errorf("third Open = %v, want ErrLockedMemory", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("third Open still waiting after 10 s")
	}
	if err := b.Scratch(20000, func([]byte) error { return nil }); !errors.Is(err, memsafe.ErrLockedMemory) {
		t.Errorf("Scratch while full = %v, want ErrLockedMemory", err)
	}

	// A waiter gets its pages when a holder lets go before the deadline.
	go func() { errc <- b.Open(s, func([]byte) error { return nil }) }()
	time.Sleep(200 * time.Millisecond)
	close(release)
	if err := <-errc; err != nil {
		t.Errorf("Open after release: %v", err)
	}
	done.Wait()
	if err := b.Open(s, func([]byte) error { return nil }); err != nil {
		t.Errorf("Open with the budget free again: %v", err)
	}
}

func TestWipe(t *testing.T) {
	b := []byte("MARKER-WIPE-0001")
	memsafe.Wipe(b)
	if !allZero(b) {
		t.Fatal("not wiped")
	}
	memsafe.Wipe(nil)
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func checkLen(p []byte, n int) error {
	if len(p) != n {
		return errors.New("unexpected length")
	}
	return nil
}

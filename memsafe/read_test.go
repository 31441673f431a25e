package memsafe_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/llm-agent/llm-agent/memsafe"
)

func TestReadLocked(t *testing.T) {
	pg := page(t)
	data := bytes.Repeat([]byte("0123456789abcdef"), 3*pg/16+1) // a little over three pages
	tests := []struct {
		name  string
		in    []byte
		limit int
		slow  bool // one byte per Read
		want  int  // bytes passed to fn
		more  bool
	}{
		{"empty", nil, 100, false, 0, false},
		{"small", data[:10], 100, false, 10, false},
		{"exactly the limit", data[:100], 100, false, 100, false},
		{"one over the limit", data[:101], 100, false, 100, true},
		{"one page", data[:pg], 1 << 16, false, pg, false},
		{"grows twice", data, 1 << 16, false, len(data), false},
		{"grows, byte by byte", data, 1 << 16, true, len(data), false},
		{"limit between pages", data, pg + 7, false, pg + 7, true},
		{"limit between pages, byte by byte", data, pg + 7, true, pg + 7, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r io.Reader = bytes.NewReader(tt.in)
			if tt.slow {
				r = iotest.OneByteReader(r)
			}
			called := false
			err := memsafe.NewBudget(-1).ReadLocked(r, tt.limit, func(got []byte, more bool) error {
				called = true
				if !bytes.Equal(got, tt.in[:tt.want]) || more != tt.more {
					t.Errorf("got %d bytes (equal: %v), more %v; want %d, more %v", len(got), bytes.Equal(got, tt.in[:tt.want]), more, tt.want, tt.more)
				}
				return nil
			})
			if err != nil || !called {
				t.Fatalf("err %v, fn called %v", err, called)
			}
		})
	}
}

func TestReadLockedErrors(t *testing.T) {
	pg := page(t)
	b := memsafe.NewBudget(testLimit) // 13 pages usable
	sentinel := errors.New("from fn")
	if err := b.ReadLocked(strings.NewReader("x"), 10, func([]byte, bool) error { return sentinel }); err != sentinel {
		t.Errorf("fn's error: got %v", err)
	}
	err := b.ReadLocked(iotest.TimeoutReader(bytes.NewReader(make([]byte, 2*pg))), 1<<16, func([]byte, bool) error {
		t.Error("fn called after a read error")
		return nil
	})
	if !errors.Is(err, iotest.ErrTimeout) {
		t.Errorf("read error: got %v", err)
	}
	// Growing from 8 to 16 pages needs 24 at once: refused, not a panic.
	err = b.ReadLocked(bytes.NewReader(make([]byte, 9*pg)), 16*pg, func([]byte, bool) error { return nil })
	if !errors.Is(err, memsafe.ErrLockedMemory) {
		t.Errorf("beyond the budget: got %v", err)
	}
	if err := b.ReadLocked(strings.NewReader("x"), 0, func([]byte, bool) error { return nil }); err == nil {
		t.Error("limit 0 accepted")
	}
	// Everything was given back: the whole budget can be taken again.
	if err := b.Scratch(13*pg, func([]byte) error { return nil }); err != nil {
		t.Errorf("budget not released: %v", err)
	}
}

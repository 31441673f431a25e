package memsafe

import (
	"errors"
	"io"

	"github.com/awnumar/memguard"
)

// ReadLocked reads r to its end into locked memory, at most limit bytes,
// and passes what it read to fn; more reports that r held more than limit
// bytes (data is then the first limit bytes). The buffer starts at one
// page and doubles up to limit, each step a fresh locked buffer with the
// old one destroyed, so no copy of the data is ever left in the Go heap
// or in memory that could be swapped out. Everything is destroyed when fn
// returns; fn must not keep data. A read error is returned without
// calling fn.
func (b *Budget) ReadLocked(r io.Reader, limit int, fn func(data []byte, more bool) error) error {
	if limit <= 0 {
		return errors.New("ReadLocked: limit must be positive")
	}
	size := min(int(b.page), limit)
	lb, cost, err := b.lockedBuffer(size)
	if err != nil {
		return err
	}
	defer func() {
		lb.Destroy()
		b.release(cost)
	}()
	n := 0
	for {
		if n == size {
			if size == limit {
				more, err := hasMore(r)
				if err != nil {
					return err
				}
				return fn(lb.Bytes()[:n], more)
			}
			// Grow: the new buffer is reserved before the old is released.
			nb, ncost, err := b.lockedBuffer(min(2*size, limit))
			if err != nil {
				return err
			}
			copy(nb.Bytes(), lb.Bytes()[:n])
			lb.Destroy()
			b.release(cost)
			lb, cost, size = nb, ncost, nb.Size()
		}
		m, err := r.Read(lb.Bytes()[n:size])
		n += m
		if err == io.EOF {
			return fn(lb.Bytes()[:n], false)
		}
		if err != nil {
			return err
		}
	}
}

// lockedBuffer reserves and makes a locked buffer of size bytes; the
// caller destroys it and releases cost.
func (b *Budget) lockedBuffer(size int) (*memguard.LockedBuffer, int64, error) {
	cost := (int64(size) + b.page - 1) / b.page * b.page
	if err := b.reserve(cost); err != nil {
		return nil, 0, err
	}
	return memguard.NewBuffer(size), cost, nil
}

// hasMore reports whether r yields another byte before its end; the byte
// (a secret's, maybe) is wiped.
func hasMore(r io.Reader) (bool, error) {
	var one [1]byte
	defer Wipe(one[:])
	for {
		n, err := r.Read(one[:])
		switch {
		case n > 0:
			return true, nil
		case err == io.EOF:
			return false, nil
		case err != nil:
			return false, err
		}
	}
}

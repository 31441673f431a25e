package protocol

import (
	"encoding/binary"
	"fmt"
	"io"
)

// FrameTooLarge is returned by ReadFrame when a length header exceeds the
// cap; nothing of that size has been allocated.
type FrameTooLarge struct{ Size, Max uint32 }

func (e *FrameTooLarge) Error() string {
	return fmt.Sprintf("frame of %d bytes exceeds the %d byte limit", e.Size, e.Max)
}

// ReadFrame reads one length-prefixed frame and returns its body. Frames
// larger than max are refused before any allocation of their size; empty
// frames are refused too. On io.EOF before the header, it returns io.EOF.
func ReadFrame(r io.Reader, max uint32) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 {
		return nil, fmt.Errorf("empty frame")
	}
	if n > max {
		return nil, &FrameTooLarge{Size: n, Max: max}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		Wipe(body)
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("reading %d byte frame: %w", n, err)
	}
	return body, nil
}

// Wipe zeroes b. Kept here, not in memsafe, so that clients of the protocol
// need not link memguard.
func Wipe(b []byte) {
	clear(b)
}

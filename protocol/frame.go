package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// ErrEmptyFrame is returned for a length header of zero: every message has
// at least its message number.
var ErrEmptyFrame = errors.New("empty frame")

// FrameTooLarge is returned when a length header exceeds the cap; nothing
// of that size has been allocated.
type FrameTooLarge struct{ Size, Max uint32 }

func (e *FrameTooLarge) Error() string {
	return fmt.Sprintf("frame of %d bytes exceeds the %d byte limit", e.Size, e.Max)
}

// ReadFrame reads one length-prefixed frame and returns its body. Frames
// larger than max are refused before any allocation of their size; empty
// frames are refused too. On io.EOF before the header, it returns io.EOF.
func ReadFrame(r io.Reader, max uint32) ([]byte, error) {
	n, err := readHeader(r, max)
	if err != nil {
		return nil, err
	}
	frame, err := readBody(r, n)
	if err != nil {
		return nil, err
	}
	return frame[4:], nil
}

// Frame returns body with its length header in front, in a new buffer.
func Frame(body []byte) []byte {
	out := make([]byte, 4+len(body))
	binary.BigEndian.PutUint32(out, uint32(len(body)))
	copy(out[4:], body)
	return out
}

// HeaderRefused tells a header that was read and refused (empty or too
// large: answer with a failure, then hang up) from a connection that failed.
func HeaderRefused(err error) bool {
	var big *FrameTooLarge
	return errors.Is(err, ErrEmptyFrame) || errors.As(err, &big)
}

func readHeader(r io.Reader, max uint32) (uint32, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 {
		return 0, ErrEmptyFrame
	}
	if n > max {
		return 0, &FrameTooLarge{Size: n, Max: max}
	}
	return n, nil
}

// readBody reads an n-byte body into a buffer that has room for its header
// in front, so that a relay can pass the frame on without a copy. A short
// read wipes what arrived.
func readBody(r io.Reader, n uint32) ([]byte, error) {
	frame := make([]byte, 4+n)
	binary.BigEndian.PutUint32(frame, n)
	if _, err := io.ReadFull(r, frame[4:]); err != nil {
		clear(frame)
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("reading %d byte frame: %w", n, err)
	}
	return frame, nil
}

// FrameConn is the serving side of a connection that carries frames: the
// agent's and the guard's loops read requests and write replies through it.
// Idle bounds the wait for the next request to begin; Frame bounds the rest
// of a request once its header has arrived, and each write, so that a peer
// that stalls mid-frame or stops reading cannot hold a goroutine for long.
// A zero duration means no deadline: a relay to an SSH agent that may be
// waiting for the owner's confirmation or a touch on a security key.
type FrameConn struct {
	Conn  net.Conn
	Max   uint32        // largest body accepted
	Idle  time.Duration // wait for a header
	Frame time.Duration // wait for a body, and for each write
}

// ReadHeader waits up to Idle for the next length header and checks it
// against Max. It returns io.EOF when the peer hung up between frames, and
// ErrEmptyFrame or *FrameTooLarge for a header the caller should answer
// with a failure before hanging up (the stream cannot be resynchronised
// without reading what was refused).
func (f *FrameConn) ReadHeader() (uint32, error) {
	f.deadline(f.Conn.SetReadDeadline, f.Idle)
	return readHeader(f.Conn, f.Max)
}

// ReadBody reads the n-byte body announced by ReadHeader within Frame and
// returns the whole frame, header included; the body is frame[4:]. The
// caller wipes the frame when done with it.
func (f *FrameConn) ReadBody(n uint32) ([]byte, error) {
	f.deadline(f.Conn.SetReadDeadline, f.Frame)
	return readBody(f.Conn, n)
}

// ReadWhole reads the next frame, header included (ReadHeader, then
// ReadBody).
func (f *FrameConn) ReadWhole() ([]byte, error) {
	n, err := f.ReadHeader()
	if err != nil {
		return nil, err
	}
	return f.ReadBody(n)
}

// Write sends one complete frame within Frame.
func (f *FrameConn) Write(frame []byte) error {
	f.deadline(f.Conn.SetWriteDeadline, f.Frame)
	if _, err := f.Conn.Write(frame); err != nil {
		return fmt.Errorf("writing frame: %w", err)
	}
	return nil
}

// deadline sets a deadline d from now, or none for d == 0.
func (f *FrameConn) deadline(set func(time.Time) error, d time.Duration) {
	var t time.Time
	if d > 0 {
		t = time.Now().Add(d)
	}
	set(t)
}

// WriteBody sends body with its length header, in one write and without
// copying body, within Frame.
func (f *FrameConn) WriteBody(body []byte) error {
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(body)))
	f.deadline(f.Conn.SetWriteDeadline, f.Frame)
	bufs := net.Buffers{hdr[:], body}
	if _, err := bufs.WriteTo(f.Conn); err != nil {
		return fmt.Errorf("writing frame: %w", err)
	}
	return nil
}

package protocol_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/protocol"
)

func TestReadFrame(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		max     uint32
		want    []byte
		wantErr func(error) bool
	}{
		{"one byte", []byte{0, 0, 0, 1, 6}, 10, []byte{6}, nil},
		{"at the limit", append([]byte{0, 0, 0, 4}, "abcd"...), 4, []byte("abcd"), nil},
		{"next frame left alone", append([]byte{0, 0, 0, 1, 6}, 0, 0, 0, 1, 5), 10, []byte{6}, nil},
		{"nothing", nil, 10, nil, is(io.EOF)},
		{"short header", []byte{0, 0}, 10, nil, is(io.ErrUnexpectedEOF)},
		{"empty frame", []byte{0, 0, 0, 0}, 10, nil, anyErr},
		{"truncated body", []byte{0, 0, 0, 3, 1}, 10, nil, is(io.ErrUnexpectedEOF)},
		{"header only", []byte{0, 0, 0, 3}, 10, nil, is(io.ErrUnexpectedEOF)},
		{"over the limit", []byte{0, 0, 0, 5, 1, 2, 3, 4, 5}, 4, nil, tooLarge(5, 4)},
		{"over MaxFrame", []byte{0, 4, 0, 1}, protocol.MaxFrame, nil, tooLarge(protocol.MaxFrame+1, protocol.MaxFrame)},
		{"4 GiB", []byte{0xff, 0xff, 0xff, 0xff}, protocol.MaxFrame, nil, tooLarge(1<<32-1, protocol.MaxFrame)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := protocol.ReadFrame(bytes.NewReader(tt.in), tt.max)
			if tt.wantErr == nil {
				if err != nil || !bytes.Equal(got, tt.want) {
					t.Fatalf("got %x, %v; want %x", got, err, tt.want)
				}
				return
			}
			if err == nil || !tt.wantErr(err) || got != nil {
				t.Fatalf("got %x, %v", got, err)
			}
		})
	}
}

func is(target error) func(error) bool { return func(err error) bool { return errors.Is(err, target) } }
func anyErr(err error) bool            { return err != nil }
func tooLarge(size, max uint32) func(error) bool {
	return func(err error) bool {
		var e *protocol.FrameTooLarge
		return errors.As(err, &e) && e.Size == size && e.Max == max
	}
}

// headerOnly yields a 4-byte length header and then fails the test if
// anyone reads on: a refused frame must be refused on its header alone.
type headerOnly struct {
	t   testing.TB
	hdr []byte
}

func (h *headerOnly) Read(p []byte) (int, error) {
	if len(h.hdr) == 0 {
		h.t.Errorf("ReadFrame read past the header of an oversize frame")
		return 0, io.EOF
	}
	n := copy(p, h.hdr)
	h.hdr = h.hdr[n:]
	return n, nil
}

// TestReadFrameOversizeAllocatesNothing checks that a 1 GiB header is
// refused at once, without reading on and without allocating its size.
func TestReadFrameOversizeAllocatesNothing(t *testing.T) {
	const gib = 1 << 30
	hdr := []byte{gib >> 24, 0, 0, 0}
	read := func() {
		_, err := protocol.ReadFrame(&headerOnly{t: t, hdr: hdr}, protocol.MaxFrame)
		if !tooLarge(gib, protocol.MaxFrame)(err) {
			t.Fatalf("got %v, want *FrameTooLarge", err)
		}
	}
	allocs := testing.AllocsPerRun(100, read)
	t.Logf("allocations per refused 1 GiB frame: %.0f", allocs)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 100 {
		read()
	}
	runtime.ReadMemStats(&after)
	perCall := (after.TotalAlloc - before.TotalAlloc) / 100
	t.Logf("bytes allocated per refused 1 GiB frame: %d", perCall)
	if perCall > 1024 {
		t.Errorf("refusing a 1 GiB frame allocated %d bytes per call", perCall)
	}
}

func TestFrameTooLargeMessage(t *testing.T) {
	err := &protocol.FrameTooLarge{Size: 300000, Max: protocol.MaxFrame}
	if got, want := err.Error(), "frame of 300000 bytes exceeds the 262144 byte limit"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestSimpleFrames(t *testing.T) {
	s, f := protocol.SuccessFrame(), protocol.FailureFrame()
	if !bytes.Equal(s, []byte{0, 0, 0, 1, protocol.MsgSuccess}) || !bytes.Equal(f, []byte{0, 0, 0, 1, protocol.MsgFailure}) {
		t.Fatalf("success %x, failure %x", s, f)
	}
	// The frames are fresh copies: a caller that wipes one (as the client
	// wipes every request) must not corrupt the next.
	clear(s)
	if !bytes.Equal(protocol.SuccessFrame(), []byte{0, 0, 0, 1, protocol.MsgSuccess}) {
		t.Fatalf("SuccessFrame shares its buffer")
	}
}

func TestFrame(t *testing.T) {
	tests := []struct {
		body, want []byte
	}{
		{[]byte{protocol.MsgSuccess}, []byte{0, 0, 0, 1, protocol.MsgSuccess}},
		{bytes.Repeat([]byte{7}, 300), append([]byte{0, 0, 1, 44}, bytes.Repeat([]byte{7}, 300)...)},
		{nil, []byte{0, 0, 0, 0}},
	}
	for _, tt := range tests {
		if got := protocol.Frame(tt.body); !bytes.Equal(got, tt.want) {
			t.Errorf("Frame(%d bytes) = %x, want %x", len(tt.body), got[:min(len(got), 8)], tt.want[:min(len(tt.want), 8)])
		}
	}
}

// TestFrameConn drives the serving side over a pipe: what the peer sends,
// what ReadHeader and ReadBody make of it, and whether a refusal is one the
// loop answers.
func TestFrameConn(t *testing.T) {
	tests := []struct {
		name    string
		send    []byte // then the peer stalls
		want    []byte // the whole frame ReadBody returns
		refused bool   // ReadHeader refuses the header (answer, hang up)
		headerErr,
		bodyErr func(error) bool
	}{
		{name: "one frame", send: []byte{0, 0, 0, 2, 11, 12}, want: []byte{0, 0, 0, 2, 11, 12}},
		{name: "empty", send: []byte{0, 0, 0, 0}, refused: true, headerErr: is(protocol.ErrEmptyFrame)},
		{name: "too large", send: []byte{0, 0, 0, 9}, refused: true, headerErr: tooLarge(9, 8)},
		{name: "idle", send: nil, headerErr: is(os.ErrDeadlineExceeded)},
		{name: "half a header", send: []byte{0, 0}, headerErr: is(os.ErrDeadlineExceeded)},
		{name: "stalls mid-body", send: []byte{0, 0, 0, 3, 1}, bodyErr: is(os.ErrDeadlineExceeded)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			us, peer := net.Pipe()
			defer us.Close()
			defer peer.Close()
			go peer.Write(tt.send)
			f := &protocol.FrameConn{Conn: us, Max: 8, Idle: 50 * time.Millisecond, Frame: 50 * time.Millisecond}
			n, err := f.ReadHeader()
			if tt.headerErr != nil {
				if err == nil || !tt.headerErr(err) || protocol.HeaderRefused(err) != tt.refused {
					t.Fatalf("ReadHeader: %d, %v (refused %v)", n, err, protocol.HeaderRefused(err))
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadHeader: %v", err)
			}
			got, err := f.ReadBody(n)
			if tt.bodyErr != nil {
				if err == nil || !tt.bodyErr(err) || protocol.HeaderRefused(err) {
					t.Fatalf("ReadBody: %x, %v", got, err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Fatalf("ReadBody: %x, %v; want %x", got, err, tt.want)
			}
		})
	}
}

func TestFrameConnWrite(t *testing.T) {
	us, peer := net.Pipe()
	defer us.Close()
	defer peer.Close()
	f := &protocol.FrameConn{Conn: us, Max: 8, Idle: time.Second, Frame: 50 * time.Millisecond}
	go func() {
		f.WriteBody([]byte{protocol.MsgSuccess, 1})
		f.Write(protocol.FailureFrame())
	}()
	for _, want := range [][]byte{{protocol.MsgSuccess, 1}, {protocol.MsgFailure}} {
		got, err := protocol.ReadFrame(peer, 8)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("got %x, %v; want %x", got, err, want)
		}
	}
	// A peer that stops reading holds a write for Frame, no longer.
	start := time.Now()
	if err := f.WriteBody([]byte{1, 2, 3}); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write to a peer that does not read: %v", err)
	}
	if err := f.Write(protocol.SuccessFrame()); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write to a peer that does not read: %v", err)
	}
	t.Logf("two refused writes took %v", time.Since(start))
}

// TestFrameConnNoDeadline: zero durations wait as long as it takes, for the
// relay to an SSH agent that may be asking the owner.
func TestFrameConnNoDeadline(t *testing.T) {
	us, peer := net.Pipe()
	defer us.Close()
	defer peer.Close()
	f := &protocol.FrameConn{Conn: us, Max: 8}
	go func() {
		time.Sleep(100 * time.Millisecond)
		got, err := protocol.ReadFrame(peer, 8)
		if err == nil {
			_, err = peer.Write(protocol.Frame(got))
		}
		if err != nil {
			t.Errorf("peer: %v", err)
		}
	}()
	if err := f.Write(protocol.Frame([]byte{1, 2})); err != nil {
		t.Fatalf("write: %v", err)
	}
	got, err := f.ReadWhole()
	if err != nil || !bytes.Equal(got, []byte{0, 0, 0, 2, 1, 2}) {
		t.Fatalf("ReadWhole: %x, %v", got, err)
	}
}

package protocol_test

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"

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
	protocol.Wipe(s)
	if !bytes.Equal(protocol.SuccessFrame(), []byte{0, 0, 0, 1, protocol.MsgSuccess}) {
		t.Fatalf("SuccessFrame shares its buffer")
	}
}

package agent_test

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// rawH2 is a hand-written HTTP/2 client for the relay's attack tests: it
// writes the frames a hostile server side chooses (a zero window, a reset
// right after the headers, a socket never read) where Go's client would
// not. Header blocks use HPACK literals without indexing; what the agent
// answers is read as raw frames, its header blocks undecoded.
type rawH2 struct {
	c   net.Conn
	mu  sync.Mutex
	err error // why the last read failed
}

// HTTP/2 frame types and flags (RFC 9113, section 6).
const (
	h2Data         = 0x0
	h2Headers      = 0x1
	h2Priority     = 0x2
	h2RSTStream    = 0x3
	h2Settings     = 0x4
	h2Ping         = 0x6
	h2GoAway       = 0x7
	h2WindowUpdate = 0x8

	h2EndStream  = 0x1
	h2Ack        = 0x1
	h2EndHeaders = 0x4
)

// h2Frame is one frame as read.
type h2Frame struct {
	typ, flags byte
	stream     uint32
	payload    []byte
}

// newRawH2 starts HTTP/2 on c, already upgraded by relay@llm-agent: the
// preface and a SETTINGS frame with settings (id, value pairs).
func newRawH2(t testing.TB, c net.Conn, settings ...uint32) *rawH2 {
	t.Helper()
	h := &rawH2{c: c}
	if _, err := io.WriteString(c, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	var p []byte
	for i := 0; i+1 < len(settings); i += 2 {
		p = binary.BigEndian.AppendUint16(p, uint16(settings[i]))
		p = binary.BigEndian.AppendUint32(p, settings[i+1])
	}
	h.frame(t, h2Settings, 0, 0, p)
	return h
}

func (h *rawH2) frame(t testing.TB, typ, flags byte, stream uint32, payload []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	hdr := []byte{byte(len(payload) >> 16), byte(len(payload) >> 8), byte(len(payload)), typ, flags, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(hdr[5:], stream)
	if _, err := h.c.Write(append(hdr, payload...)); err != nil && t != nil {
		t.Logf("writing frame %d: %v", typ, err)
	}
}

// hpackString is an HPACK string literal, no Huffman coding.
func hpackString(b []byte, s string) []byte {
	n := len(s)
	if n < 127 {
		b = append(b, byte(n))
	} else {
		b = append(b, 127)
		for n -= 127; n >= 128; n >>= 7 {
			b = append(b, byte(n%128)|0x80)
		}
		b = append(b, byte(n))
	}
	return append(b, s...)
}

// headers sends a request's header block on stream (odd, increasing):
// pairs of name and value, pseudo-headers first.
func (h *rawH2) headers(t testing.TB, stream uint32, endStream bool, kv ...string) {
	var block []byte
	for i := 0; i+1 < len(kv); i += 2 {
		block = append(block, 0x00) // literal without indexing, new name
		block = hpackString(block, kv[i])
		block = hpackString(block, kv[i+1])
	}
	flags := byte(h2EndHeaders)
	if endStream {
		flags |= h2EndStream
	}
	h.frame(t, h2Headers, flags, stream, block)
}

// get sends a GET for path with no body.
func (h *rawH2) get(t testing.TB, stream uint32, path string) {
	h.headers(t, stream, true, ":method", "GET", ":scheme", "http", ":path", path, ":authority", "relay")
}

func (h *rawH2) reset(t testing.TB, stream uint32) {
	h.frame(t, h2RSTStream, 0, stream, []byte{0, 0, 0, 0x8}) // CANCEL
}

// read returns the next frame, answering SETTINGS and PING as a client
// must; nil when the connection ends or deadline passes.
func (h *rawH2) read(deadline time.Time) *h2Frame {
	h.c.SetReadDeadline(deadline)
	var hdr [9]byte
	if _, h.err = io.ReadFull(h.c, hdr[:]); h.err != nil {
		return nil
	}
	f := &h2Frame{typ: hdr[3], flags: hdr[4], stream: binary.BigEndian.Uint32(hdr[5:]) & 0x7fffffff}
	f.payload = make([]byte, int(hdr[0])<<16|int(hdr[1])<<8|int(hdr[2]))
	if _, h.err = io.ReadFull(h.c, f.payload); h.err != nil {
		return nil
	}
	switch {
	case f.typ == h2Settings && f.flags&h2Ack == 0:
		h.frame(nil, h2Settings, h2Ack, 0, nil)
	case f.typ == h2Ping && f.flags&h2Ack == 0:
		h.frame(nil, h2Ping, h2Ack, 0, f.payload)
	}
	return f
}

// closedBy reports whether the agent ended the connection before
// deadline, reading (and answering) frames until then.
func (h *rawH2) closedBy(deadline time.Time) bool {
	h.until(deadline, func(*h2Frame) bool { return false })
	return !errors.Is(h.err, os.ErrDeadlineExceeded)
}

// until reads frames until one matches, or the connection ends (nil).
func (h *rawH2) until(deadline time.Time, match func(*h2Frame) bool) *h2Frame {
	for {
		f := h.read(deadline)
		if f == nil || match(f) {
			return f
		}
	}
}

// rawRelay opens a connection to sock and upgrades it with
// relay@llm-agent, as a server side would before its HTTP/2 preface.
func rawRelay(t testing.TB, sock string) net.Conn {
	t.Helper()
	c := dialRaw(t, sock)
	if err := newClient(c).Relay(nil); err != nil {
		t.Fatalf("relay@llm-agent: %v", err)
	}
	c.SetDeadline(time.Time{})
	return c
}

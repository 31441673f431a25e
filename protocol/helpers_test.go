package protocol_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/llm-agent/llm-agent/protocol"
)

// wire builds SSH wire encodings by hand, for messages the package has no
// Marshal for and for malformed ones.
type wire []byte

func (w wire) u8(v byte) wire         { return append(w, v) }
func (w wire) u32(v uint32) wire      { return binary.BigEndian.AppendUint32(w, v) }
func (w wire) u64(v uint64) wire      { return binary.BigEndian.AppendUint64(w, v) }
func (w wire) str(s string) wire      { return append(w.u32(uint32(len(s))), s...) }
func (w wire) bytes(b []byte) wire    { return append(w.u32(uint32(len(b))), b...) }
func (w wire) raw(b ...byte) wire     { return append(w, b...) }
func (w wire) frame() []byte          { return append(wire(nil).u32(uint32(len(w))), w...) }
func (w wire) clone() wire            { return bytes.Clone(w) }
func (w wire) cut(n int) wire         { return w[:len(w)-n] }
func (w wire) with(more ...byte) wire { return append(w.clone(), more...) }

// bodyOf checks a frame's length header and returns what follows it.
func bodyOf(t testing.TB, frame []byte) []byte {
	t.Helper()
	if len(frame) < 5 {
		t.Fatalf("frame of %d bytes is too short", len(frame))
	}
	if n := binary.BigEndian.Uint32(frame); int(n) != len(frame)-4 {
		t.Fatalf("frame header says %d bytes, body has %d", n, len(frame)-4)
	}
	return frame[4:]
}

// payloadOf returns the payload of an extension request frame, checking
// its name.
func payloadOf(t testing.TB, frame []byte, name string) []byte {
	t.Helper()
	got, payload, err := protocol.ParseExtension(bodyOf(t, frame))
	if err != nil {
		t.Fatalf("ParseExtension: %v", err)
	}
	if got != name {
		t.Fatalf("extension name %q, want %q", got, name)
	}
	return payload
}

// replyBody returns the body of a reply frame after its SSH_AGENT_SUCCESS.
func replyBody(t testing.TB, frame []byte) []byte {
	t.Helper()
	b := bodyOf(t, frame)
	if b[0] != protocol.MsgSuccess {
		t.Fatalf("reply message %d, want SSH_AGENT_SUCCESS", b[0])
	}
	return b[1:]
}

// hostKey is a deterministic ed25519 host key, so that the fuzz seeds are
// the same inputs on every run.
type hostKey struct {
	signer ssh.Signer
	blob   []byte
}

func newHostKey(t testing.TB, seed byte) hostKey {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return hostKey{signer: s, blob: s.PublicKey().Marshal()}
}

// bind returns a session-bind whose signature over sessionID verifies.
func (k hostKey) bind(t testing.TB, sessionID []byte, forwarding bool) *protocol.SessionBind {
	t.Helper()
	sig, err := k.signer.Sign(nil, sessionID) // ed25519 ignores the reader
	if err != nil {
		t.Fatal(err)
	}
	return &protocol.SessionBind{HostKey: k.blob, SessionID: sessionID, Signature: ssh.Marshal(sig), Forwarding: forwarding}
}

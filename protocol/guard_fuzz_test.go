package protocol_test

import (
	"testing"

	"github.com/llm-agent/llm-agent/protocol"
)

// The guard, owner and proxy extensions' decoders; see fuzz_test.go.

var guardNonce = []byte("0123456789abcdef0123456789abcdef")

func guardSession() protocol.Session {
	return protocol.Session{BootID: "5d3b7f0e-1d3a-4a53-9f0e-0123456789ab", SessionID: 42}
}

func FuzzParseOwnerRequest(f *testing.F) {
	f.Add(payloadOf(f, (&protocol.OwnerRequest{Nonce: guardNonce}).Marshal(), protocol.ExtOwner))
	f.Add([]byte(wire(nil).bytes([]byte("short"))))   // nonce too short
	f.Add([]byte(wire(nil).bytes(guardNonce).raw(0))) // trailing byte
	f.Fuzz(func(t *testing.T, payload []byte) {
		roundTrip(t, payload, protocol.ParseOwnerRequest, asPayload[*protocol.OwnerRequest](protocol.ExtOwner), nil)
	})
}

func FuzzParseOwnerReply(f *testing.F) {
	f.Add(replyBody(f, protocol.MarshalOwnerReply(&protocol.OwnerReply{Key: []byte("key"), Signature: []byte("sig")})))
	f.Add([]byte{}) // empty
	f.Fuzz(func(t *testing.T, body []byte) {
		roundTrip(t, body, protocol.ParseOwnerReply, asReply(protocol.MarshalOwnerReply), nil)
	})
}

func FuzzParseGuardRequest(f *testing.F) {
	for _, r := range []*protocol.GuardRequest{
		{Op: protocol.GuardRegister, Session: guardSession()},
		{Op: protocol.GuardSessions},
		{Op: protocol.GuardRefused, Text: "pid 1 refused"},
	} {
		f.Add(payloadOf(f, r.Marshal(), protocol.ExtGuard))
	}
	f.Add([]byte(wire(nil).str("explode"))) // unknown operation
	f.Fuzz(func(t *testing.T, payload []byte) {
		roundTrip(t, payload, protocol.ParseGuardRequest, asPayload[*protocol.GuardRequest](protocol.ExtGuard), nil)
	})
}

func FuzzParseSessionsReply(f *testing.F) {
	f.Add(replyBody(f, protocol.MarshalSessionsReply([]protocol.Session{guardSession(), {BootID: "b", SessionID: 7}})))
	f.Add([]byte(wire(nil).u32(1 << 30))) // count past the end
	f.Fuzz(func(t *testing.T, body []byte) {
		roundTrip(t, body, protocol.ParseSessionsReply, asReply(protocol.MarshalSessionsReply), nil)
	})
}

func FuzzParseProxyRequest(f *testing.F) {
	for _, seed := range [][]byte{
		payloadOf(f, (&protocol.ProxyRequest{Op: protocol.ProxyRegister}).Marshal(), protocol.ExtProxy),
		{},                          // empty
		wire(nil).str("unregister"), // unknown operation
		wire(nil).str(protocol.ProxyRegister).raw(0), // trailing byte
		wire(nil).str("reg\nister"),                  // control character
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		roundTrip(t, payload, protocol.ParseProxyRequest, asPayload[*protocol.ProxyRequest](protocol.ExtProxy), nil)
	})
}

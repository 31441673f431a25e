package protocol_test

import (
	"reflect"
	"testing"

	"github.com/llm-agent/llm-agent/protocol"
)

// guardSeeds are the seeds of the guard extensions' decoders.
func guardSeeds(t *testing.T) map[string]map[string]any {
	t.Helper()
	nonce := []byte("0123456789abcdef0123456789abcdef")
	reg := &protocol.GuardRequest{Op: protocol.GuardRegister, Session: protocol.Session{BootID: "5d3b7f0e-1d3a-4a53-9f0e-0123456789ab", SessionID: 42}}
	return map[string]map[string]any{
		"FuzzParseOwnerRequest": {
			"nonce":        payloadOf(t, (&protocol.OwnerRequest{Nonce: nonce}).Marshal(), protocol.ExtOwner),
			"err_short":    wire(nil).bytes([]byte("short")),
			"err_trailing": wire(nil).bytes(nonce).raw(0),
		},
		"FuzzParseOwnerReply": {
			"reply":     protocol.MarshalOwnerReply(&protocol.OwnerReply{Key: []byte("key"), Signature: []byte("sig")})[5:],
			"err_empty": wire(nil),
		},
		"FuzzParseGuardRequest": {
			"register":    payloadOf(t, reg.Marshal(), protocol.ExtGuard),
			"sessions":    payloadOf(t, (&protocol.GuardRequest{Op: protocol.GuardSessions}).Marshal(), protocol.ExtGuard),
			"refused":     payloadOf(t, (&protocol.GuardRequest{Op: protocol.GuardRefused, Text: "pid 1 refused"}).Marshal(), protocol.ExtGuard),
			"err_unknown": wire(nil).str("explode"),
		},
		"FuzzParseProxyRequest": {
			"register":     payloadOf(t, (&protocol.ProxyRequest{Op: protocol.ProxyRegister}).Marshal(), protocol.ExtProxy),
			"err_empty":    wire(nil),
			"err_unknown":  wire(nil).str("unregister"),
			"err_trailing": wire(nil).str(protocol.ProxyRegister).raw(0),
			"err_control":  wire(nil).str("reg\nister"),
		},
		"FuzzParseSessionsReply": {
			"two":       protocol.MarshalSessionsReply([]protocol.Session{reg.Session, {BootID: "b", SessionID: 7}})[5:],
			"err_count": wire(nil).u32(1 << 30),
		},
	}
}

func TestGuardSeedCorpus(t *testing.T) { checkCorpus(t, guardSeeds(t)) }

func FuzzParseOwnerRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, payload []byte) {
		r, err := protocol.ParseOwnerRequest(payload)
		if err != nil {
			return
		}
		again, err := protocol.ParseOwnerRequest(payloadOf(t, r.Marshal(), protocol.ExtOwner))
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("round trip: %+v, %v", again, err)
		}
	})
}

func FuzzParseOwnerReply(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := protocol.ParseOwnerReply(body)
		if err != nil {
			return
		}
		again, err := protocol.ParseOwnerReply(protocol.MarshalOwnerReply(r)[5:])
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("round trip: %+v, %v", again, err)
		}
	})
}

func FuzzParseGuardRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, payload []byte) {
		r, err := protocol.ParseGuardRequest(payload)
		if err != nil {
			return
		}
		again, err := protocol.ParseGuardRequest(payloadOf(t, r.Marshal(), protocol.ExtGuard))
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("round trip: %+v, %v", again, err)
		}
	})
}

func FuzzParseSessionsReply(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		s, err := protocol.ParseSessionsReply(body)
		if err != nil {
			return
		}
		again, err := protocol.ParseSessionsReply(protocol.MarshalSessionsReply(s)[5:])
		if err != nil || !reflect.DeepEqual(again, s) {
			t.Fatalf("round trip: %+v, %v", again, err)
		}
	})
}

func FuzzParseProxyRequest(f *testing.F) {
	f.Add(payloadOf(f, (&protocol.ProxyRequest{Op: protocol.ProxyRegister}).Marshal(), protocol.ExtProxy))
	f.Fuzz(func(t *testing.T, payload []byte) {
		r, err := protocol.ParseProxyRequest(payload)
		if err != nil {
			return
		}
		again, err := protocol.ParseProxyRequest(payloadOf(t, r.Marshal(), protocol.ExtProxy))
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("round trip: %+v, %v", again, err)
		}
	})
}

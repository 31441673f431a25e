package protocol_test

import (
	"testing"

	"github.com/llm-agent/llm-agent/protocol"
)

func FuzzParseRelayRequest(f *testing.F) {
	for _, r := range []*protocol.RelayRequest{
		{Protocol: protocol.RelayH2},
		{Protocol: protocol.RelayH2, Requester: &protocol.Requester{PID: 7, UID: 1000, Exe: "/usr/bin/llm-agent-client", Argv0: "llm-agent-client", Cwd: "/home/u", Hostname: "gpu1"}},
	} {
		f.Add(payloadOf(f, r.Marshal(), protocol.ExtRelay))
	}
	f.Add([]byte(wire(nil).str("http/1.1"))) // a stream protocol the agent does not speak
	f.Fuzz(func(t *testing.T, payload []byte) {
		roundTrip(t, payload, protocol.ParseRelayRequest, asPayload[*protocol.RelayRequest](protocol.ExtRelay), nil)
	})
}

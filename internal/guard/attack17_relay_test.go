//go:build linux

package guard

import (
	"io"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/agent"
	"github.com/llm-agent/llm-agent/internal/agenttest"
	"github.com/llm-agent/llm-agent/internal/relay"
	"github.com/llm-agent/llm-agent/memsafe"
	"github.com/llm-agent/llm-agent/protocol"
)

// TestAttackGuardRelaySlots: a client in the owner's login takes every
// relay place of the guard with connections that never speak HTTP/2. The
// real agent behind the guard ends them (its preface time-out), which
// frees the places; before, they were held for as long as the client
// liked. Meanwhile the guard's other frames go on being served.
func TestAttackGuardRelaySlots(t *testing.T) {
	s := agenttest.Serve(t, agent.Config{Audit: agent.NewAuditLog(io.Discard, nil), Budget: memsafe.NewBudget(-1),
		RelayLimits: relay.Limits{Handshake: 200 * time.Millisecond}})
	r := newRelayGuard(t, 2)
	held, err := holdSocket(s.Use)
	if err != nil {
		t.Fatal(err)
	}
	r.g.heldMu.Lock()
	r.g.held.close()
	r.g.held = held // relays now go to the real agent
	r.g.heldMu.Unlock()

	for i := 0; i < 2; i++ {
		openRelay(t, r.client(t), "") // and then silence
	}
	c := r.client(t)
	wantFailure(t, exchange(t, c, relayFrame, ""), protocol.CodeResource, "at most 2 relay connections")
	if body := exchange(t, c, protocol.SimpleExtension(protocol.ExtStatus), ""); body[0] != protocol.MsgSuccess {
		t.Fatalf("an agent frame while the relay places are taken: reply %d", body[0])
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		body := exchange(t, c, relayFrame, "")
		if body[0] == protocol.MsgSuccess {
			break
		}
		wantFailure(t, body, protocol.CodeResource, "at most 2")
		if time.Now().After(deadline) {
			t.Fatal("relay connections that never spoke still hold the guard's places")
		}
	}
}

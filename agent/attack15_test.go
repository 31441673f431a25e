package agent_test

import (
	"bytes"
	"log"
	"sync"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/agent"
)

// gate is a debug writer that holds the first write containing match
// until open is closed, so that a test can stop the agent between a run's
// store commit and the end of its flight.
type gate struct {
	match   []byte
	once    sync.Once
	entered chan struct{}
	open    chan struct{}
}

func newGate(match string) *gate {
	return &gate{match: []byte(match), entered: make(chan struct{}), open: make(chan struct{})}
}

func (g *gate) Write(p []byte) (int, error) {
	if bytes.Contains(p, g.match) {
		hold := false
		g.once.Do(func() { hold = true })
		if hold {
			close(g.entered)
			<-g.open
		}
	}
	return len(p), nil
}

// TestAttackReAddAfterCommit: a get that arrives after the owner removed a
// command credential and added it again with another command must get the
// new command's value, never the old one, even while the old run's flight
// is still ending (its value committed, its callers not yet answered).
func TestAttackReAddAfterCommit(t *testing.T) {
	g := newGate("command anthropic: value read in")
	ta := startAgent(t, agent.Config{Debug: log.New(g, "", 0)})
	// Connections are opened first: the agent logs each accept to Debug.
	admin, first, second := ta.client(t), newClient(ta.useRaw(t)), newClient(ta.useRaw(t))
	old := newCmdDir(t, "sk-FAKE-old\n")
	mustAdd(t, admin, cmdCred("anthropic", old.printer(), 0))
	done1 := make(chan error, 1)
	go func() {
		_, err := getKey(t, first, "anthropic")
		done1 <- err
	}()
	select {
	case <-g.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the first run did not finish")
	}
	if err := admin.Remove("anthropic"); err != nil {
		t.Fatal(err)
	}
	fresh := newCmdDir(t, "sk-FAKE-new\n")
	mustAdd(t, admin, cmdCred("anthropic", fresh.printer(), 0))
	type result struct {
		key string
		err error
	}
	done2 := make(chan result, 1)
	go func() {
		k, err := getKey(t, second, "anthropic")
		done2 <- result{k, err}
	}()
	// Let the second get reach the old flight before it ends.
	time.Sleep(300 * time.Millisecond)
	close(g.open)
	if err := <-done1; err != nil {
		t.Errorf("first get: %v", err)
	}
	r := <-done2
	if r.err != nil || r.key != "sk-FAKE-new" {
		t.Fatalf("get after remove and re-add: %q, %v; want the new command's value", r.key, r.err)
	}
	if n := fresh.runs(t); n != 1 {
		t.Errorf("new command: %d runs, want 1", n)
	}
}

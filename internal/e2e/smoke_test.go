package e2e

import "testing"

// TestSmoke adds a credential and reads it back through the real binaries.
func TestSmoke(t *testing.T) {
	a := StartAgent(t, AgentOptions{Audit: true})
	if r := a.Client(t, "sk-smoke-1", "add", "anthropic"); r.Code != 0 {
		t.Fatalf("add: %+v", r)
	}
	r := a.Client(t, "", "get", "anthropic")
	if r.Code != 0 || r.Stdout != "sk-smoke-1" {
		t.Fatalf("get: code %d stdout %q stderr %q", r.Code, r.Stdout, r.Stderr)
	}
}

package providers

import "testing"

// TestAttackTargetServletAndBackslash: a REST that some upstreams resolve
// out of the base path although no segment is "." or "..": a ";params"
// suffix (servlet containers drop it before resolving dots) or a
// backslash, escaped or not (IIS and some gateways read it as a slash).
// With llm-agent --relay-upstream or proxy --upstream pointing at such a
// gateway, or a ChatGPT login confined to /backend-api/codex, the server
// side must not climb out that way.
func TestAttackTargetServletAndBackslash(t *testing.T) {
	for _, c := range []struct {
		rest string
		ok   bool
	}{
		{"/..;/other", false},
		{"/x/..;/..;/other", false},
		{"/..;jsessionid=1/other", false},
		{"/.;/x", false},
		{"/..%3b/other", false},
		{"/%2e%2e;/other", false},
		{`/..\..\other`, false},
		{"/..%5c..%5cother", false},
		{"/x%5Cy", false},
		{"/responses", true},
		{"/a;b/c", true},
		{"/...;/x", true},
		{"/models/gemini-2.5-pro:streamGenerateContent", true},
	} {
		u, err := Target("https://chatgpt.com/backend-api/codex", c.rest, "")
		if c.ok != (err == nil) {
			t.Errorf("Target(%q) = %v, %v; want accepted %v", c.rest, u, err, c.ok)
		}
	}
}

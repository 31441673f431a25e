package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfirm covers credentials added with -c: every get runs the askpass
// program named by LLM_AGENT_ASKPASS (else SSH_ASKPASS) in the agent's
// environment, with the question as argv[1]; only exit status 0 allows.
func TestConfirm(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// env builds the agent's extra environment from the paths of an
		// askpass that allows and one that refuses.
		env        func(allow, refuse string) []string
		allowed    bool
		asked      bool   // the askpass program ran
		wantReason string // in the audit record of a refusal
	}{
		{"askpass_refuses", func(_, refuse string) []string { return []string{"LLM_AGENT_ASKPASS=" + refuse} }, false, true, "refused by the owner"},
		{"askpass_allows", func(allow, _ string) []string { return []string{"LLM_AGENT_ASKPASS=" + allow} }, true, true, ""},
		{"no_askpass", func(_, _ string) []string { return nil }, false, false, "no askpass"},
		{"ssh_askpass_fallback", func(allow, _ string) []string { return []string{"SSH_ASKPASS=" + allow} }, true, true, ""},
		{"llm_askpass_first", func(allow, refuse string) []string {
			return []string{"LLM_AGENT_ASKPASS=" + refuse, "SSH_ASKPASS=" + allow}
		}, false, true, "refused by the owner"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			prompt := filepath.Join(dir, "prompt")
			askpass := func(name string, status int) string {
				return writeScript(t, filepath.Join(dir, name), fmt.Sprintf(
					"printf '%%s' \"$1\" > %s\nprintf '%%s' \"$SSH_ASKPASS_PROMPT\" > %s.hint\nexit %d\n", prompt, prompt, status))
			}
			a := StartAgent(t, AgentOptions{Audit: true, Env: c.env(askpass("allow", 0), askpass("refuse", 1))})

			marker := "sk-e2e-confirm-marker-" + c.name
			if r := a.Client(t, marker, "add", "-c", "anthropic"); r.Code != 0 {
				t.Fatalf("add -c: exit %d, %q", r.Code, r.Stderr)
			}
			if r := a.Client(t, "", "list"); r.Code != 0 || !strings.Contains(r.Stdout, "confirm") {
				t.Errorf("list does not show the confirm constraint: exit %d, stdout %q", r.Code, r.Stdout)
			}
			// A credential without -c is handed out without asking.
			if r := a.Client(t, "sk-e2e-plain-marker", "add", "openai"); r.Code != 0 {
				t.Fatalf("add: exit %d", r.Code)
			}
			if r := a.Client(t, "", "get", "openai"); r.Code != 0 || r.Stdout != "sk-e2e-plain-marker" {
				t.Errorf("get of a credential without -c: exit %d, stderr %q", r.Code, r.Stderr)
			}
			if _, err := os.Stat(prompt); err == nil {
				t.Errorf("the askpass program ran for a credential added without -c")
			}

			r := a.Client(t, "", "get", "anthropic")
			if c.allowed {
				if r.Code != 0 || r.Stdout != marker {
					t.Errorf("get: exit %d, marker found: %v, stderr %q; want the credential", r.Code, strings.Contains(r.Stdout, marker), r.Stderr)
				}
			} else {
				if r.Code != 1 || strings.Count(r.Stderr, "\n") != 1 || !strings.HasPrefix(r.Stderr, "llm-agent-client: get:") {
					t.Errorf("get: exit %d (want 1), stderr %q (want one line)", r.Code, r.Stderr)
				}
				if strings.Contains(r.Stdout+r.Stderr, marker) {
					t.Errorf("a refused get printed the secret (marker found)")
				}
			}

			q, err := os.ReadFile(prompt)
			if c.asked {
				if err != nil {
					t.Fatalf("the askpass program did not run: %v", err)
				}
				t.Logf("askpass prompt: %q", q)
				if !strings.Contains(string(q), `"anthropic"`) || !strings.Contains(string(q), filepath.Base(bins.Client)) {
					t.Errorf("the prompt %q does not name the provider and the requesting program", q)
				}
				if hint, _ := os.ReadFile(prompt + ".hint"); string(hint) != "confirm" {
					t.Errorf("SSH_ASKPASS_PROMPT=%q in the askpass environment, want confirm (as ssh-agent sets)", hint)
				}
			} else if err == nil {
				t.Errorf("an askpass program ran although none was configured")
			}

			// An allowed get is recorded just after the reply.
			waitAudit(t, a.Audit, func(e auditEvent) bool { return e.Op == "get" && e.Provider == "anthropic" })
			var found bool
			for _, e := range readAudit(t, a.Audit) {
				if e.Op != "get" || e.Provider != "anthropic" {
					continue
				}
				found = true
				want := "deny"
				if c.allowed {
					want = "allow"
				}
				if e.Decision != want || !strings.Contains(e.Reason, c.wantReason) {
					t.Errorf("audit: decision %q reason %q; want %q with %q", e.Decision, e.Reason, want, c.wantReason)
				}
				if e.Peer == nil || filepath.Base(e.Peer.Exe) != filepath.Base(bins.Client) {
					t.Errorf("audit record does not name the requesting program: %+v", e.Peer)
				}
			}
			if !found {
				t.Errorf("no audit record for the get")
			}
			if fileHolds(a.Audit, marker) || fileHolds(a.Stderr, marker) || fileHolds(prompt, marker) {
				t.Errorf("the secret reached the audit log, the agent's stderr or the prompt (marker found)")
			}
		})
	}
}

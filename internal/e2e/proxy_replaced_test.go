package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/internal/sshtest"
)

// proxyCurl is one Anthropic Messages request through the proxy, run by
// the proxied command: status code to $D/codeN, body to $D/bodyN.
const proxyCurl = `curl -s -o "$D/body$1" -w '%{http_code}' -H "x-api-key: $ANTHROPIC_API_KEY" -H 'anthropic-version: 2023-06-01' -H 'content-type: application/json' -d '{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}' "$ANTHROPIC_BASE_URL/v1/messages" >"$D/code$1"`

// TestProxyRefusesReplacedSocket: `proxy -- CMD` starts with a good agent
// socket at LLM_AUTH_SOCK (a path in a sticky shared directory, as a stale
// forward in /tmp is); the socket is then replaced by another user's
// planted agent. The next request through the proxy is answered 503 in
// the provider's error shape, naming the refusal, and the planted agent
// receives no request (today it is asked for the credential).
func TestProxyRefusesReplacedSocket(t *testing.T) {
	sshtest.RequireRoot(t)
	mallory := sshtest.NewUser(t, "llme2e")
	a, token := grdAgent(t, "sk-ant-prx")
	up := startFakeUpstream(t, "hello")
	shared := plantedDir(t)
	sock := filepath.Join(shared, "llm.sock")
	if err := os.Link(a.Sock, sock); err != nil { // the agent, reachable at the shared path
		t.Fatal(err)
	}
	d := t.TempDir()
	script := proxyCurl + "\n"
	cmd := exec.Command(bins.Client, "proxy", "--upstream", "anthropic="+up.URL, "--",
		"sh", "-c", `set -- 1; `+script+`touch "$D/phase1"
while [ ! -e "$D/go" ]; do sleep 0.05; done
set -- 2; `+script)
	cmd.Env = append(clientEnv(), "LLM_AUTH_SOCK="+sock, "D="+d)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	if _, ok := waitFor(30*time.Second, func() bool { _, err := os.Stat(filepath.Join(d, "phase1")); return err == nil }); !ok {
		t.Fatalf("the proxied command's first request did not finish within 30 s; stderr %q", stderr.String())
	}
	code, _ := os.ReadFile(filepath.Join(d, "code1"))
	if string(code) != "200" {
		body, _ := os.ReadFile(filepath.Join(d, "body1"))
		t.Fatalf("first request through the proxy (good socket): status %s, body %q", code, body)
	}
	if n, _ := up.sawSecret(token); n != 1 {
		t.Fatalf("the upstream saw the laptop's token in %d requests, want 1", n)
	}

	// The owner's socket goes; another user's agent takes its path.
	if err := os.Remove(sock); err != nil {
		t.Fatal(err)
	}
	log := plantedFakeAgent(t, mallory.Cred(), sock, "LD_PRELOAD")
	if err := os.WriteFile(filepath.Join(d, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the proxied command did not finish within 30 s; stderr %q", stderr.String())
	}
	code, _ = os.ReadFile(filepath.Join(d, "code2"))
	body, _ := os.ReadFile(filepath.Join(d, "body2"))
	t.Logf("second request, after the socket was replaced: status %s, body %s", code, strings.TrimSpace(string(body)))
	var shape struct {
		Type  string `json:"type"`
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &shape); err != nil || shape.Type != "error" || shape.Error.Type == "" {
		t.Errorf("second request: body %q is not an Anthropic error (%v)", body, err)
	}
	if s := string(code); (s != "502" && s != "503") || !strings.Contains(shape.Error.Message, "refusing the agent socket "+sock) ||
		!strings.Contains(shape.Error.Message, "("+mallory.Name+")") {
		t.Errorf("second request: status %s, message %q; want 502 or 503 naming the refusal of %s served by %s", s, shape.Error.Message, sock, mallory.Name)
	}
	if n, _ := up.sawSecret(token); n != 1 || len(up.requests()) != 1 {
		t.Errorf("the upstream got %d requests (%d with the token), want only the first", len(up.requests()), n)
	}
	data, _ := os.ReadFile(log)
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if l != "" && l != "connect" {
			t.Errorf("the planted agent received %q; want connects only", l)
		}
	}
}

package e2e

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/internal/sshtest"
)

// TestForwardFromCommand: a credential added with --from-command, over
// real sshd. A server get returns what the command printed on the laptop;
// 100 concurrent server gets through the forwarded socket run the command
// once; once its output has changed and the value's lifetime (-t) is over,
// 100 more get the new value and run it once more.
func TestForwardFromCommand(t *testing.T) {
	t.Parallel()
	start := time.Now()
	r := newFwdRig(t, AgentOptions{Debug: true})
	a := r.agent
	srv := sshtest.Start(t, sshtest.Options{Name: "cmdhost"})

	// The laptop's "password manager": the value is stored base64-encoded,
	// so that the scan of /tmp below finds it only where it leaked.
	vault := t.TempDir()
	valueFile, runsFile := filepath.Join(vault, "value.b64"), filepath.Join(vault, "runs")
	store := func(v string) {
		if err := os.WriteFile(valueFile, []byte(base64.StdEncoding.EncodeToString([]byte(v))), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	runs := func() int {
		b, _ := os.ReadFile(runsFile)
		return strings.Count(string(b), "\n")
	}
	v1, v2 := fwdToken(t, "sk-ant-cmd1"), fwdToken(t, "sk-ant-cmd2")
	store(v1)
	// The sleep keeps the run in flight while the gets arrive.
	const life = 8 * time.Second
	command := fmt.Sprintf("echo run >>%s; sleep 1; base64 -d %s", runsFile, valueFile)
	if res := a.Client(t, "", "add", "-t", strconv.Itoa(int(life/time.Second)), "--from-command", command, "anthropic"); res.Code != 0 ||
		!strings.Contains(res.Stderr, `Credential added: anthropic (api, from command "echo run`) {
		t.Fatalf("add --from-command: %+v", res)
	}

	// 100 gets at once on the server; each prints the hash of what it got.
	const n = 100
	burst := func(want string) time.Duration {
		t.Helper()
		sum := sha256.Sum256([]byte(want))
		wantLine := hex.EncodeToString(sum[:]) + "  -"
		began := time.Now()
		res := r.ssh(srv, fwdPrimary, "", fmt.Sprintf(`for i in $(seq %d); do ( "$C" get anthropic | sha256sum ) & done; wait`, n))
		took := time.Since(began)
		lines := strings.Split(strings.TrimSpace(res.Stdout), "\n")
		good := 0
		for _, l := range lines {
			if l == wantLine {
				good++
			}
		}
		if res.Code != 0 || good != n {
			t.Errorf("%d of %d server gets printed the value (exit %d, %d lines); stderr: %s", good, n, res.Code, len(lines), firstLines(res.Stderr, 5))
		}
		return took
	}
	took1 := burst(v1)
	if got := runs(); got != 1 {
		t.Errorf("%d concurrent server gets ran the command %d times, want 1", n, got)
	}
	runEnded := time.Now()

	// The output changes; the value's lifetime passes.
	store(v2)
	time.Sleep(time.Until(runEnded.Add(life + 500*time.Millisecond)))
	took2 := burst(v2)
	if got := runs(); got != 2 {
		t.Errorf("after the lifetime, %d concurrent server gets ran the command %d times in all, want 2", n, got)
	}
	t.Logf("%d concurrent server gets (one ssh session): %v with the run, %v after the lifetime with the second run", n, took1, took2)

	// The laptop lists the credential with its command, still there.
	if res := a.Client(t, "", "list", "--json"); res.Code != 0 || !strings.Contains(res.Stdout, `"hasValue": true`) ||
		!strings.Contains(res.Stdout, `"command": "echo run`) {
		t.Errorf("list on the laptop: %+v", res)
	}
	if !waitAudit(t, a.Audit, func(e auditEvent) bool { return e.Op == "forget" && e.Provider == "anthropic" }) {
		t.Error("audit log: the value was never forgotten")
	}
	allowed := 0
	for _, e := range readAudit(t, a.Audit) {
		if e.Op == "command" && e.Provider == "anthropic" && e.Decision == "allow" {
			allowed++
		}
	}
	if allowed != 2 {
		t.Errorf("audit log: %d command runs allowed, want 2", allowed)
	}
	fwdNoSecretInLogs(t, a, v1, v2)
	for _, f := range []string{"environ", "cmdline"} {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", a.PID, f))
		if err != nil || strings.Contains(string(data), v1) || strings.Contains(string(data), v2) {
			t.Errorf("the agent's %s holds the value (or cannot be read: %v)", f, err)
		}
	}
	scanFiles(t, r.user, v1)
	scanFiles(t, r.user, v2)
	t.Logf("the whole test took %v", time.Since(start).Round(time.Millisecond))
}

// firstLines returns at most n lines of s.
func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, " | ")
}

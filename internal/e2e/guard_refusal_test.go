package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// grdDeepScript has the login make a chain of directories under $HOME
// (by relative steps: a path over PATH_MAX can be made no other way) so
// that $HOME/<top>/.../llm-agent-client is exactly total bytes long, put
// a copy of the client there and leave the shell in that directory.
func grdDeepScript(home, top string, total int) string {
	const exe = "/llm-agent-client"
	var b strings.Builder
	fmt.Fprintf(&b, "cd \"$HOME\" && rm -rf %s && mkdir %s && cd %s || exit 1\n", top, top, top)
	n := total - len(home) - 1 - len(top) - len(exe)
	for n > 0 {
		step := min(n, 201) // "/" and a name of up to 200 bytes
		if rest := n - step; rest > 0 && rest < 2 {
			step-- // leave room for a last name of at least one byte
		}
		name := strings.Repeat("d", step-1)
		fmt.Fprintf(&b, "mkdir %s && cd %s || exit 1\n", name, name)
		n -= step
	}
	b.WriteString(`cp "$C" ./llm-agent-client || exit 1` + "\n")
	return b.String()
}

// TestGuardRefusalRecordOddExe: the guard refuses a co-tenant's process
// whose executable path holds a newline, is just under PATH_MAX (so the
// refusal text is over the agent's 4 KiB limit) or is over PATH_MAX (a
// deep directory), and each refusal reaches the laptop's audit log,
// escaped and cut (today the agent rejects such a record, and the laptop
// never hears of the refusal).
func TestGuardRefusalRecordOddExe(t *testing.T) {
	r := newGrdRig(t, "grdodd")
	a, _ := grdAgent(t, "sk-ant-grdo")
	owner := r.login("owner", a.Sock)
	g := owner.startGuard()
	co := r.login("co-tenant", "")
	home := r.user.Home

	cases := []struct {
		name, setup string
		run         string // the command, from the directory setup left
		want        string // in the audit record's reason
	}{
		{"newline in the path", "d=\"$HOME/odd\nname\"; rm -rf \"$d\"; mkdir \"$d\" && cp \"$C\" \"$d/llm-agent-client\" && cd \"$d\" || exit 1\n",
			"./llm-agent-client", `odd\x0aname/llm-agent-client`},
		{"path just under PATH_MAX", grdDeepScript(home, "deep4k", 4090), "./llm-agent-client", "[cut: "},
		{"path over PATH_MAX", grdDeepScript(home, "deep5k", 5120), "./llm-agent-client", ""},
	}
	for _, c := range cases {
		out, rc := co.Run(c.setup + `LLM_AUTH_SOCK='` + g.Sock + `' sh -c 'echo "pid=$$"; exec "$0" get anthropic' ` + c.run + ` 2>&1 | grep '^pid='; echo "pwdlen=$(pwd | wc -c)"`)
		var pid, pwdLen int
		for _, l := range strings.Split(out, "\n") {
			if v, ok := strings.CutPrefix(l, "pid="); ok {
				pid, _ = strconv.Atoi(v)
			}
			if v, ok := strings.CutPrefix(l, "pwdlen="); ok {
				pwdLen, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
		if rc != 0 || pid == 0 {
			t.Errorf("%s: the co-tenant's run: exit %d, output %q, stderr %q", c.name, rc, out, co.Stderr())
			continue
		}
		prefix := fmt.Sprintf("pid %d ", pid)
		var reason string
		waitFor(10*time.Second, func() bool {
			for _, e := range readAudit(t, a.Audit) {
				if e.Op == "guard-refused" && strings.Contains(e.Reason, prefix) {
					reason = e.Reason
					return true
				}
			}
			return false
		})
		if reason == "" {
			t.Errorf("%s: no guard-refused record for %s in the laptop's audit log within 10 s (executable path %d bytes)", c.name, strings.TrimSpace(prefix), pwdLen+len("llm-agent-client"))
			continue
		}
		t.Logf("%s: executable path %d bytes; audit record %d bytes: %.120s...", c.name, pwdLen+len("llm-agent-client"), len(reason), reason)
		if !strings.Contains(reason, c.want) || strings.ContainsAny(reason, "\n\r") {
			t.Errorf("%s: the audit record's reason %q does not hold %q, or spans lines", c.name, reason, c.want)
		}
	}
}

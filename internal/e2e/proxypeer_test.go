package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/internal/sshtest"
)

// Issue 12 item 4: under `proxy -- CMD` the tool has no route to the agent,
// and a co-tenant of the shared account (or another Linux user) who reads
// the dummy key from the tool's environment cannot use the proxy.

// pxTool is the command run under the proxy in TestProxyToolNoAgentRoute:
// it reports the agent variables it got, what a get does there, and its
// open descriptors above stderr.
const pxTool = `sh -c 'printf "@@ssh=%s\n@@llm=%s\n@@guard=%s\n@@agentpid=%s\n" "${SSH_AUTH_SOCK-}" "${LLM_AUTH_SOCK-}" "${LLM_GUARD_PID-}" "${LLM_AGENT_PID-}"
"$0" get anthropic >/dev/null 2>&1; echo "@@get=$?"
for f in /proc/$$/fd/*; do n=${f##*/}; [ "$n" -gt 2 ] 2>/dev/null && echo "@@fd=$n $(readlink "$f")"; done; true' "$C"`

// pxReport parses pxTool's lines.
func pxReport(out string) (vars map[string]string, fds []string) {
	vars = map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		l, ok := strings.CutPrefix(l, "@@")
		if !ok {
			continue
		}
		k, v, _ := strings.Cut(l, "=")
		if k == "fd" {
			fds = append(fds, v)
			continue
		}
		vars[k] = v
	}
	return vars, fds
}

// TestProxyToolNoAgentRoute: with ForwardAgent=$LLM_AUTH_SOCK the server's
// SSH_AUTH_SOCK is the forwarded llm-agent; the tool under proxy -- CMD
// gets neither it nor LLM_AUTH_SOCK nor the guard's variables, inherits no
// socket, and its get fails with exit 2; a plain ssh-agent in
// SSH_AUTH_SOCK stays (git over ssh works in the tool).
func TestProxyToolNoAgentRoute(t *testing.T) {
	r := newGrdRig(t, "pxroute")
	a, _ := grdAgent(t, "sk-ant-pxr")
	up := startFakeUpstream(t, "PX-ANSWER")
	owner := r.login("owner", a.Sock)
	fwd, _ := owner.Run(`printf %s "$SSH_AUTH_SOCK"`)
	if fwd == "" {
		t.Fatalf("the login has no forwarded agent; stderr %q", owner.Stderr())
	}
	plain := filepath.Join(r.user.Home, "plain-agent.sock")
	proxyCmd := `"$C" proxy --upstream anthropic=` + up.URL + ` -- ` + pxTool

	cases := []struct {
		name     string
		setup    string // shell lines before the proxy, in the same login
		wantSSH  string // the tool's SSH_AUTH_SOCK
		guardRun bool   // start the guard first
	}{
		{name: "ForwardAgent=$LLM_AUTH_SOCK", setup: ``, wantSSH: ""},
		{name: "LLM_AUTH_SOCK forwarded, SSH_AUTH_SOCK a plain ssh-agent",
			setup:   `ssh-agent -a '` + plain + `' >/dev/null; export LLM_AUTH_SOCK=$SSH_AUTH_SOCK SSH_AUTH_SOCK='` + plain + `';`,
			wantSSH: plain},
		{name: "under the guard", guardRun: true, wantSSH: ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.guardRun {
				g := owner.startGuard()
				t.Logf("guard pid %d on %s", g.PID, g.Sock)
				// The owner's own shell still reaches the agent.
				if res := owner.try(""); res.rc != 0 {
					t.Fatalf("the owner's shell under the guard: get exit %d, %q", res.rc, res.stderr)
				}
			}
			out, rc := owner.Run(`(` + c.setup + proxyCmd + `)`)
			vars, fds := pxReport(out)
			t.Logf("tool under the proxy: exit %d, %v, descriptors above 2: %q", rc, vars, fds)
			if vars["get"] == "" {
				t.Fatalf("the tool did not run: output %q, stderr %q", out, owner.Stderr())
			}
			if vars["ssh"] != c.wantSSH {
				t.Errorf("the tool's SSH_AUTH_SOCK = %q, want %q", vars["ssh"], c.wantSSH)
			}
			for _, k := range []string{"llm", "guard", "agentpid"} {
				if vars[k] != "" {
					t.Errorf("the tool got a route to the agent: %s = %q", k, vars[k])
				}
			}
			if vars["get"] != "2" {
				t.Errorf("llm-agent-client get in the tool: exit %s, want 2 (no agent)", vars["get"])
			}
			for _, fd := range fds {
				if strings.Contains(fd, "socket:") {
					t.Errorf("the tool inherited a socket: fd %s", fd)
				}
			}
		})
	}
	owner.Run(`pkill -u "$(id -u)" -x ssh-agent; true`)
}

// TestProxyCoTenant: the owner runs a tool under the proxy, behind the
// guard, on an account shared with a co-tenant. The co-tenant reads the
// dummy key and the base URL from the tool's /proc/PID/environ and sends
// a request: 403, and nothing reaches the upstream. Another Linux user
// with the key: 403. The owner's tool: 200, with the real credential
// injected upstream.
func TestProxyCoTenant(t *testing.T) {
	r, a, token := newGrdRigAgent(t, "pxcotenant", "sk-ant-pxc")
	up := startFakeUpstream(t, "PX-CO-ANSWER")
	owner := r.login("owner", a.Sock)
	g := owner.startGuard()
	co := r.login("co-tenant", "")
	t.Logf("owner: shell %d (audit session %s), guard %d; co-tenant: shell %d (audit session %s)",
		owner.PID, owner.SessionID, g.PID, co.PID, co.SessionID)

	home := r.user.Home
	goFile := filepath.Join(home, "px-go")
	codeFile := filepath.Join(home, "px-tool.code")
	// The owner's tool waits for the go file, then asks the proxy as the
	// tool would, with the key and URL the proxy gave it.
	_, rc := owner.Run(`"$C" proxy --upstream anthropic=` + up.URL + ` -- sh -c '
echo $$ > "$HOME/px-tool.pid"
while [ ! -e "$HOME/px-go" ]; do sleep 0.05; done
curl -s -o "$HOME/px-tool.body" -w "%{http_code}" -H "x-api-key: $ANTHROPIC_API_KEY" -H "content-type: application/json" \
	-d "{\"model\":\"claude-fake\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}" \
	"$ANTHROPIC_BASE_URL/v1/messages" > "$HOME/px-tool.code.tmp"
mv "$HOME/px-tool.code.tmp" "$HOME/px-tool.code"' >"$HOME/px-proxy.log" 2>&1 &`)
	if rc != 0 {
		t.Fatalf("starting the proxy: exit %d, stderr %q", rc, owner.Stderr())
	}
	var toolPID int
	if _, ok := waitFor(15*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(home, "px-tool.pid"))
		toolPID, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return toolPID > 0
	}); !ok {
		b, _ := os.ReadFile(filepath.Join(home, "px-proxy.log"))
		t.Fatalf("the tool did not start under the proxy; proxy log %q", b)
	}

	// The co-tenant: same uid, another login. The key comes from the
	// tool's environment; only the HTTP status and the error's message
	// come back.
	send := `curl -s -o "$tmp" -w "%{http_code}" -H "x-api-key: $key" -H "content-type: application/json" \
	-d '{"model":"claude-fake","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}' "$url/v1/messages"
echo " $(grep -o 'not one of the proxy owner.s' "$tmp" | head -1)"; rm -f "$tmp"`
	out, rc := co.Run(`tmp=$(mktemp)
env=$(tr '\0' '\n' < /proc/` + strconv.Itoa(toolPID) + `/environ) || exit 90
key=$(printf '%s\n' "$env" | sed -n 's/^ANTHROPIC_API_KEY=//p')
url=$(printf '%s\n' "$env" | sed -n 's/^ANTHROPIC_BASE_URL=//p')
case $key in sk-llm-agent-proxy-*) ;; *) exit 91;; esac
` + send)
	t.Logf("co-tenant with the dummy key read from /proc/%d/environ: exit %d, %q", toolPID, rc, out)
	if rc != 0 || !strings.HasPrefix(out, "403 not one of the proxy owner") {
		t.Errorf("co-tenant's request: exit %d, %q; want 403 refused by the proxy", rc, out)
	}
	url, key := pxToolVar(t, toolPID, "ANTHROPIC_BASE_URL"), pxToolVar(t, toolPID, "ANTHROPIC_API_KEY")

	// Another Linux user, given the key on stdin.
	other := sshtest.NewUser(t, "pxo")
	res := fwdRun(t, r.srv.SSH(other, nil, `tmp=$(mktemp); read -r key; read -r url; `+send), key+"\n"+url+"\n")
	t.Logf("another Linux user with the dummy key: exit %d, %q", res.Code, strings.TrimSpace(res.Stdout))
	if res.Code != 0 || !strings.HasPrefix(res.Stdout, "403 not one of the proxy owner") {
		t.Errorf("another user's request: exit %d, %q, stderr %q; want 403 refused by the proxy", res.Code, res.Stdout, res.Stderr)
	}
	if n := len(up.requests()); n != 0 {
		t.Errorf("the upstream got %d requests from the co-tenant and the other user, want 0", n)
	}

	// The owner's tool.
	if err := os.WriteFile(goFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var code []byte
	if _, ok := waitFor(20*time.Second, func() bool {
		code, _ = os.ReadFile(codeFile)
		return len(code) > 0
	}); !ok {
		b, _ := os.ReadFile(filepath.Join(home, "px-proxy.log"))
		t.Fatalf("the owner's tool did not finish; proxy log %q", b)
	}
	if string(code) != "200" {
		body, _ := os.ReadFile(filepath.Join(home, "px-tool.body"))
		t.Errorf("the owner's tool: HTTP %s, body %q; want 200", code, body)
	}
	if n, _ := up.sawSecret(token); n != 1 || len(up.requests()) != 1 {
		t.Errorf("the upstream got %d requests, %d with the owner's credential; want 1 and 1", len(up.requests()), n)
	}
	log, _ := os.ReadFile(filepath.Join(home, "px-proxy.log"))
	t.Logf("proxy log:\n%s", log)
	if c := strings.Count(string(log), "refused: connection from"); c != 2 {
		t.Errorf("the proxy logged %d refusals, want 2 (co-tenant, other user)", c)
	}
	grdNoSecretIn(t, token, filepath.Join(home, "px-proxy.log"))
}

// pxToolVar reads a variable of the tool's environment, as root.
func pxToolVar(t *testing.T, pid int, name string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range strings.Split(string(b), "\x00") {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	t.Fatalf("the tool has no %s", name)
	return ""
}

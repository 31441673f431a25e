package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/internal/agenttest"
	"github.com/llm-agent/llm-agent/internal/sshtest"
)

// The TestTools tests run Claude Code, opencode and Codex CLI, the real
// ones at the pinned versions, on the "server" (a real sshd on 127.0.0.1)
// as a test user, with the laptop's llm-agent forwarded by the real ssh.
// The tools talk to a fake provider upstream on 127.0.0.1 (which both
// sides share) that records the credentials it receives.

// toolsTimeout bounds one tool run; a run that takes longer is a hang.
const toolsTimeout = 150 * time.Second

// toolsRig is a laptop agent holding Anthropic and OpenAI tokens, a server,
// a test user and a fake upstream.
type toolsRig struct {
	*fwdRig
	srv    *sshtest.Server
	up     *fakeUpstream
	tokens map[string]string // provider -> token added on the laptop
	bins   map[string]string // tool -> path
}

func newToolsRig(t *testing.T, tools ...string) *toolsRig {
	t.Helper()
	return newToolsRigArgs(t, nil, tools...)
}

// newToolsRigArgs is newToolsRig with more flags for the laptop agent,
// made from the fake upstream's URL (nil: none).
func newToolsRigArgs(t *testing.T, agentArgs func(upURL string) []string, tools ...string) *toolsRig {
	t.Helper()
	sshtest.RequireRoot(t)
	bins := map[string]string{}
	for _, tool := range tools {
		bins[tool] = toolBin(t, tool)
	}
	up := startFakeUpstream(t, "FAKE-UPSTREAM-ANSWER-"+randHex(t, 6))
	o := AgentOptions{Debug: true}
	if agentArgs != nil {
		o.Args = agentArgs(up.URL)
	}
	r := &toolsRig{
		fwdRig: newFwdRig(t, o),
		srv:    sshtest.Start(t, sshtest.Options{Name: "toolhost"}),
		up:     up,
		tokens: map[string]string{"anthropic": fwdToken(t, "sk-ant-tools"), "openai": fwdToken(t, "sk-openai-tools")},
		bins:   bins,
	}
	for p, tok := range r.tokens {
		if res := r.agent.Client(t, tok, "add", p); res.Code != 0 {
			t.Fatalf("add %s on the laptop: %+v", p, res)
		}
	}
	t.Cleanup(func() { fwdNoSecretInLogs(t, r.agent, r.tokens["anthropic"], r.tokens["openai"]) })
	return r
}

// prelude sets up a fresh HOME and working directory for a tool on the
// server, the tools' quiet switches, and the files each tool needs.
func (r *toolsRig) prelude(name string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "set -e; export HOME=\"$HOME/%s\"; mkdir -p \"$HOME/work\"; cd \"$HOME/work\"\n", name)
	for _, kv := range toolsQuietEnv {
		fmt.Fprintf(&b, "export %s\n", kv)
	}
	// opencode installs @opencode-ai/plugin into its config directory from
	// the npm registry unless the directory already lists it.
	b.WriteString(`mkdir -p "$HOME/.config/opencode/node_modules"
echo '{"dependencies":{"@opencode-ai/plugin":"*"}}' > "$HOME/.config/opencode/package.json"
echo '{"packages":{"":{"dependencies":{"@opencode-ai/plugin":"*"}}}}' > "$HOME/.config/opencode/package-lock.json"
export OPENCODE_CONFIG_CONTENT='{"model":"anthropic/claude-fake","small_model":"anthropic/claude-fake","provider":{"anthropic":{"models":{"claude-fake":{"name":"fake"}}}},"autoupdate":false,"share":"disabled"}'
set +e
`)
	return b.String()
}

// claudeSettings is Claude Code's ~/.claude/settings.json as the README
// gives it: the key comes from llm-agent-client get each time (a TTL of
// 1 ms: Claude Code asks again before each request).
func claudeSettings(client string) string {
	return `{"apiKeyHelper": "` + client + ` get anthropic", "env": {"CLAUDE_CODE_API_KEY_HELPER_TTL_MS": "1"}}`
}

// codexConfig is Codex's ~/.codex/config.toml: a provider for the fake
// upstream (or the proxy) whose key comes from llm-agent-client get
// (auth = true) or from OPENAI_API_KEY (the proxy's dummy key).
func codexConfig(baseURL, client string, auth bool) string {
	s := `model = "gpt-fake"
model_provider = "llm-agent"
check_for_update_on_startup = false

[analytics]
enabled = false

[model_providers.llm-agent]
name = "OpenAI via llm-agent"
base_url = "` + baseURL + `"
wire_api = "responses"
`
	if auth {
		return s + `
[model_providers.llm-agent.auth]
command = "` + client + `"
args = ["get", "openai"]
refresh_interval_ms = 1
`
	}
	return s + "env_key = \"OPENAI_API_KEY\"\n"
}

// writeFile is a shell line that writes content to path.
func writeFile(path, content string) string {
	return fmt.Sprintf("mkdir -p \"$(dirname %s)\"; printf '%%s\\n' %s > %s\n", path, shq(content), path)
}

// door is one way a tool gets its credential: a script for the server,
// the provider whose token the upstream must see.
type door struct {
	name, provider, tool string
	script               func(r *toolsRig) string
	proxy                bool
}

func doors() []door {
	return []door{
		{name: "claude-apiKeyHelper", provider: "anthropic", tool: "claude", script: func(r *toolsRig) string {
			return writeFile(`"$HOME/.claude/settings.json"`, claudeSettings(bins.Client)) +
				"ANTHROPIC_BASE_URL=" + r.up.URL + " " + shq(r.bins["claude"]) + ` -p "say hi"`
		}},
		{name: "codex-auth-command", provider: "openai", tool: "codex", script: func(r *toolsRig) string {
			return writeFile(`"$HOME/.codex/config.toml"`, codexConfig(r.up.URL+"/v1", bins.Client, true)) +
				shq(r.bins["codex"]) + ` exec --skip-git-repo-check "say hi" </dev/null`
		}},
		{name: "opencode-proxy", provider: "anthropic", tool: "opencode", proxy: true, script: func(r *toolsRig) string {
			return `"$C" proxy --upstream anthropic=` + r.up.URL + ` -- ` + shq(r.bins["opencode"]) + ` run "say hi" </dev/null`
		}},
		{name: "claude-proxy", provider: "anthropic", tool: "claude", proxy: true, script: func(r *toolsRig) string {
			return `"$C" proxy --upstream anthropic=` + r.up.URL + ` -- ` + shq(r.bins["claude"]) + ` -p "say hi"`
		}},
		{name: "codex-proxy", provider: "openai", tool: "codex", proxy: true, script: func(r *toolsRig) string {
			// Codex's built-in OpenAI provider speaks WebSockets; a
			// provider of its own with a fixed port takes the proxy.
			port := toolsFreePort(r.t)
			base := fmt.Sprintf("http://127.0.0.1:%d/openai", port)
			return writeFile(`"$HOME/.codex/config.toml"`, codexConfig(base, "", false)) +
				fmt.Sprintf(`"$C" proxy --listen 127.0.0.1:%d --upstream openai=%s/v1 -- %s exec --skip-git-repo-check "say hi" </dev/null`,
					port, r.up.URL, shq(r.bins["codex"]))
		}},
	}
}

// toolsRun runs cmd, failing t if it outlives toolsTimeout.
func toolsRun(t testing.TB, cmd *exec.Cmd) (Result, time.Duration) {
	t.Helper()
	start := time.Now()
	r := agenttest.RunCmd(t, cmd, "", toolsTimeout)
	return r, time.Since(start)
}

// scanFiles checks that no file the tool could have written holds secret:
// the test user's home (the tool's HOME and working directory are in it),
// /tmp and /var/tmp.
func scanFiles(t *testing.T, u *sshtest.User, secret string) {
	t.Helper()
	roots := []string{u.Home, "/tmp", "/var/tmp"}
	files, size, hits := fwdScan(roots, []byte(secret), 50<<20)
	t.Logf("files: scanned %d files, %d bytes under %s: credential %s", files, size, strings.Join(roots, ", "),
		map[bool]string{true: "FOUND", false: "not found"}[len(hits) > 0])
	if len(hits) > 0 {
		t.Errorf("the credential is in %s", strings.Join(hits, ", "))
	}
}

// TestToolsAnswer: each tool, through each of its doors, prints the
// upstream's answer, and the upstream saw the token added on the laptop.
// In proxy mode the token is in no process's environment or command line
// while the tool runs, and in no file afterwards.
func TestToolsAnswer(t *testing.T) {
	r := newToolsRig(t, "claude", "codex", "opencode")
	for _, d := range doors() {
		t.Run(d.name, func(t *testing.T) {
			token := r.tokens[d.provider]
			before := len(r.up.requests())
			var procMu sync.Mutex
			var scanned, withDummy int
			var hits []string
			if d.proxy {
				r.up.arm(func() {
					procMu.Lock()
					defer procMu.Unlock()
					scanned, hits, withDummy = procScan(r.user.UID, token, "sk-llm-agent-proxy-")
				})
			}
			res, took := toolsRun(t, r.cmd(r.srv, fwdPrimary, nil, r.prelude(d.name)+d.script(r)))
			r.up.arm(nil)
			r.checkAnswered(t, d.name, token, res, took, before)
			if d.proxy {
				procMu.Lock()
				checkProcScan(t, scanned, hits, withDummy)
				procMu.Unlock()
				scanFiles(t, r.user, token)
			}
			if t.Failed() {
				t.Logf("sshd log:\n%s", r.srv.LogTail(10))
			}
		})
	}
	fwdCheckAudit(t, r.agent, []fwdWant{
		{op: "get", provider: "anthropic", decision: "allow"},
		{op: "get", provider: "openai", decision: "allow"},
	})
}

// checkAnswered checks a tool's run: it exited 0 and printed the
// upstream's answer, and the upstream's requests since the first before
// carried token (at least one) and no other key.
func (r *toolsRig) checkAnswered(t *testing.T, name, token string, res Result, took time.Duration, before int) {
	t.Helper()
	t.Logf("%s: exit %d after %v", name, res.Code, took.Round(time.Millisecond))
	if res.Code != 0 || !strings.Contains(res.Stdout, r.up.Answer) {
		t.Errorf("%s: exit %d, answer printed: %v\nstdout: %s\nstderr: %s", name, res.Code,
			strings.Contains(res.Stdout, r.up.Answer), res.Stdout, res.Stderr)
	}
	reqs := r.up.requests()[before:]
	n := 0
	var paths []string
	for _, q := range reqs {
		paths = append(paths, q.Path)
		if strings.Contains(q.APIKey, token) || strings.Contains(q.Auth, token) {
			n++
		} else if q.APIKey != "" || q.Auth != "" {
			t.Errorf("%s: a request to %s carried another key (%d bytes)", name, q.Path, len(q.APIKey)+len(q.Auth))
		}
	}
	t.Logf("%s: the upstream got %d requests (%s), %d with the laptop's token", name, len(reqs), strings.Join(paths, " "), n)
	if n == 0 {
		t.Errorf("%s: the upstream never saw the token added on the laptop", name)
	}
}

// checkProcScan reports procScan's findings: no process held the
// credential, and one held the dummy key (so the scan saw the tool).
func checkProcScan(t *testing.T, scanned int, hits []string, withDummy int) {
	t.Helper()
	t.Logf("processes: scanned the environment and command line of %d processes of the test user while the tool ran (%d held the proxy's dummy key): credential %s",
		scanned, withDummy, map[bool]string{true: "FOUND", false: "not found"}[len(hits) > 0])
	if len(hits) > 0 {
		t.Errorf("the credential is in /proc/%s", strings.Join(hits, ", /proc/"))
	}
	if withDummy == 0 {
		t.Errorf("no running process held the dummy key: the scan did not see the tool")
	}
}

// TestToolsDisconnect: the owner disconnects while a tool is at work (the
// upstream disconnects the owner's ssh when the first request comes in,
// and answers it with a tool call so that the tool makes another). The
// next request fails: the tool ends, promptly, with an error that says the
// owner is not connected, and the upstream never sees the token again.
func TestToolsDisconnect(t *testing.T) {
	r := newToolsRig(t, "claude", "codex", "opencode")
	r.up.setToolCall(true)
	for _, d := range doors() {
		t.Run(d.name, func(t *testing.T) {
			token := r.tokens[d.provider]
			owner, sock, ownerDone := r.startOwner(t)
			cut, cutAt := r.ownerCut(owner, sock, ownerDone)
			r.up.arm(cut)
			before := len(r.up.requests())
			script := "export SSH_AUTH_SOCK=" + shq(sock) + "\n" + r.prelude("disc-"+d.name) + d.script(r)
			res, took := toolsRun(t, r.cmd(r.srv, fwdNone, nil, script))
			r.up.arm(nil)
			disconnected := cutAt()
			out := res.Stdout + res.Stderr
			if disconnected.IsZero() {
				t.Fatalf("%s: the tool made no request (exit %d)\nstdout: %s\nstderr: %s", d.name, res.Code, res.Stdout, res.Stderr)
			}
			t.Logf("%s: exit %d, %v after the disconnect; says %q", d.name, res.Code, time.Since(disconnected).Round(time.Millisecond), notConnectedLine(out))
			nreqs, after, afterWithToken := r.up.afterDisconnect(before, token)
			t.Logf("%s: %d requests in all (%v), %d after the disconnect, %d of them with the old token", d.name, nreqs, took.Round(time.Millisecond), after, afterWithToken)
			if !d.proxy {
				// The helper doors cannot hold: Claude Code and Codex keep
				// the last key their helper gave when it fails (see the
				// README). The test records what they do; the proxy doors
				// below are the ones that hold.
				t.Logf("%s (helper door, not enforced): said not connected: %v; printed the answer: %v; old token sent after the disconnect: %d times",
					d.name, strings.Contains(out, "not connected"), strings.Contains(res.Stdout, r.up.Answer), afterWithToken)
				return
			}
			if !strings.Contains(out, "not connected") {
				t.Errorf("%s: the tool's output does not say the owner is not connected\nstdout: %s\nstderr: %s", d.name, res.Stdout, res.Stderr)
			}
			if strings.Contains(res.Stdout, r.up.Answer) {
				t.Errorf("%s: the tool printed the answer although its credential was gone", d.name)
			}
			if afterWithToken > 0 {
				t.Errorf("%s: the upstream got the old token %d times after the disconnect", d.name, afterWithToken)
			}
			if res.Code == 0 {
				t.Errorf("%s: the tool exited 0 after losing its credential", d.name)
			}
		})
	}
}

// notConnectedLine picks the line of out that says "not connected".
func notConnectedLine(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "not connected") {
			if len(l) > 240 {
				l = l[:240] + "..."
			}
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// startOwner starts the owner's forwarding session and returns its ssh
// process, the forwarded socket's path on the server, and a channel closed
// when the ssh process has exited.
func (r *toolsRig) startOwner(t *testing.T) (*exec.Cmd, string, chan struct{}) {
	t.Helper()
	owner := r.cmd(r.srv, fwdPrimary, nil, `echo "sock=$SSH_AUTH_SOCK"; exec cat >/dev/null`)
	in, err := owner.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := owner.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := owner.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	sc := bufio.NewScanner(out)
	sock := ""
	if sc.Scan() {
		sock = strings.TrimPrefix(sc.Text(), "sock=")
	}
	go func() {
		io.Copy(io.Discard, out)
		owner.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		in.Close()
		owner.Process.Kill()
		<-done
	})
	if sock == "" {
		t.Fatalf("the owner's session reported no SSH_AUTH_SOCK\n%s", r.srv.LogTail(20))
	}
	return owner, sock, done
}

// ownerCut returns cut, which disconnects the owner (ends the ssh of
// startOwner and waits for the forwarded socket to go) and then marks the
// upstream, and at, which says when cut completed (zero: not yet).
func (r *toolsRig) ownerCut(owner *exec.Cmd, sock string, ownerDone chan struct{}) (cut func(), at func() time.Time) {
	var mu sync.Mutex
	var when time.Time
	cut = func() {
		owner.Process.Signal(syscall.SIGTERM)
		<-ownerDone
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if _, err := os.Lstat(sock); os.IsNotExist(err) {
				break
			}
		}
		mu.Lock()
		when = time.Now()
		mu.Unlock()
		r.up.markDisconnected()
	}
	return cut, func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return when
	}
}

// TestToolsGetNotConnected: get, as the tools run it, fails fast without
// an agent: exit 2 and one line that says the owner is not connected.
func TestToolsGetNotConnected(t *testing.T) {
	sshtest.RequireRoot(t)
	r := newFwdRig(t, AgentOptions{})
	srv := sshtest.Start(t, sshtest.Options{Name: "getnc"})
	for _, script := range []string{
		`"$C" get anthropic`,
		`SSH_AUTH_SOCK=/tmp/llm-agent-nowhere.sock "$C" get anthropic`,
	} {
		res := r.ssh(srv, fwdNone, "", `s=$(date +%s%N); `+script+`; rc=$?; echo "$rc $(( ($(date +%s%N) - s) / 1000000 ))" >&2`)
		lines := strings.Split(strings.TrimSpace(res.Stderr), "\n")
		last := lines[len(lines)-1]
		msg := strings.Join(lines[:len(lines)-1], "\n")
		t.Logf("%s: exit and ms: %s; %q", script, last, msg)
		if !strings.HasPrefix(last, "2 ") {
			t.Errorf("%s: exit %s, want 2", script, last)
		}
		if !strings.Contains(msg, "the owner is not connected") || strings.Contains(msg, "\n") {
			t.Errorf("%s: want one line saying the owner is not connected, got %q", script, msg)
		}
	}
}

// TestToolsStreaming: a 1 MiB server-sent-event answer comes through the
// proxy in more than one piece, and its first bytes reach the client
// before the upstream has finished sending (the upstream waits for them
// half way through: a proxy that buffered would make it wait in vain).
func TestToolsStreaming(t *testing.T) {
	a := StartAgent(t, AgentOptions{})
	token := fwdToken(t, "sk-openai-stream")
	if res := a.Client(t, token, "add", "openai"); res.Code != 0 {
		t.Fatalf("add: %+v", res)
	}
	var mu sync.Mutex
	var events []string
	event := func(s string) {
		mu.Lock()
		events = append(events, s)
		mu.Unlock()
	}
	firstByte := make(chan struct{})
	var once sync.Once
	const total = 1 << 20
	var sawToken bool
	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		sawToken = r.Header.Get("Authorization") == "Bearer "+token
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		chunk := fmt.Sprintf("data: %s\n\n", chatJSON(strings.Repeat("x", 4000)))
		sent := 0
		for sent < total {
			n, _ := io.WriteString(w, chunk)
			sent += n
			w.(http.Flusher).Flush()
			if sent >= total/2 {
				once.Do(func() {
					event("upstream sent half")
					select {
					case <-firstByte:
					case <-time.After(20 * time.Second):
						event("upstream gave up waiting")
					}
				})
			}
		}
		io.WriteString(w, "data: [DONE]\n\n")
		event("upstream finished")
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go up.Serve(l)
	defer up.Close()

	// The proxy is the real binary; its eval lines give the route and key.
	cmd := exec.Command(bins.Client, "proxy", "--upstream", "openai=http://"+l.Addr().String()+"/v1")
	cmd.Env = a.Env()
	stdout, _ := cmd.StdoutPipe()
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	vars := map[string]string{}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		k, v, _ := strings.Cut(strings.SplitN(sc.Text(), ";", 2)[0], "=")
		vars[k] = strings.Trim(v, "'")
		if k == "LLM_AGENT_PROXY_PID" {
			break
		}
	}
	if vars["OPENAI_BASE_URL"] == "" || vars["OPENAI_API_KEY"] == "" {
		t.Fatalf("proxy printed %v; stderr %s", toolsKeys(vars), stderr.String())
	}
	req, _ := http.NewRequest("POST", vars["OPENAI_BASE_URL"]+"/chat/completions", strings.NewReader(`{"stream":true}`))
	req.Header.Set("Authorization", "Bearer "+vars["OPENAI_API_KEY"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 64<<10)
	reads, got := 0, 0
	var readErr error
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if reads == 0 {
				event("client got the first bytes")
				close(firstByte)
			}
			reads++
			got += n
		}
		if err != nil {
			readErr = err
			break
		}
	}
	if got < total {
		t.Logf("the answer ended with %v; the proxy's stderr: %s", readErr, stderr.String())
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("status %d, %d bytes in %d reads; events in order: %s", resp.StatusCode, got, reads, strings.Join(events, " < "))
	idx := func(s string) int {
		for i, e := range events {
			if e == s {
				return i
			}
		}
		return -1
	}
	if resp.StatusCode != 200 || got < total || !sawToken {
		t.Errorf("status %d, %d bytes (want >= %d), upstream saw the token: %v", resp.StatusCode, got, total, sawToken)
	}
	if reads < 2 {
		t.Errorf("the answer came in %d read(s), want more than one", reads)
	}
	first, fin := idx("client got the first bytes"), idx("upstream finished")
	if first < 0 || fin < 0 || first > fin || idx("upstream gave up waiting") >= 0 {
		t.Errorf("the first bytes did not reach the client before the upstream finished: %v", events)
	}
}

func chatJSON(content string) string {
	return `{"id":"chatcmpl-s","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"` + content + `"},"finish_reason":null}]}`
}

func toolsKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestToolsExec: exec gives Claude Code the key in ANTHROPIC_API_KEY over
// the forwarded agent, and the tool's exit status is its own.
func TestToolsExec(t *testing.T) {
	r := newToolsRig(t, "claude")
	res, _ := toolsRun(t, r.cmd(r.srv, fwdPrimary, nil, r.prelude("exec")+
		`"$C" exec -p anthropic -- env ANTHROPIC_BASE_URL=`+r.up.URL+` `+shq(r.bins["claude"])+` -p "say hi"; echo "rc=$?"
"$C" exec -p anthropic -- sh -c 'exit 7'; echo "rc=$?"`))
	if !strings.Contains(res.Stdout, r.up.Answer) || !strings.Contains(res.Stdout, "rc=0") || !strings.Contains(res.Stdout, "rc=7") {
		t.Errorf("exec: stdout %q stderr %q", res.Stdout, res.Stderr)
	}
	if n, _ := r.up.sawSecret(r.tokens["anthropic"]); n == 0 {
		t.Errorf("exec: the upstream never saw the token")
	}
}

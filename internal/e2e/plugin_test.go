package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/internal/sshtest"
)

// The TestPlugin tests run the opencode plugin door: the repository's
// contrib/opencode/llm-agent.js in the test user's
// ~/.config/opencode/plugin/, the real opencode 1.18.33 (run, and serve
// driven through its HTTP API as `opencode attach` drives it) on the
// "server" over a real sshd, no key in any auth.json or environment; the
// plugin asks llm-agent-client for the credential on every request.

// pluginSource is the plugin as the README tells users to install it.
func pluginSource(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "contrib", "opencode", "llm-agent.js"))
	if err != nil {
		t.Fatalf("the opencode plugin: %v", err)
	}
	return string(b)
}

// pluginSetup is a script that installs the plugin into $HOME's opencode
// config, lets opencode load it (the tools prelude runs opencode --pure),
// puts llm-agent-client on PATH as a user's profile would, and points
// opencode's anthropic provider at baseURL. No key is set anywhere.
func pluginSetup(t testing.TB, baseURL string) string {
	cfg := `{"model":"anthropic/claude-fake","small_model":"anthropic/claude-fake","provider":{"anthropic":{"options":{"baseURL":"` +
		baseURL + `/v1"},"models":{"claude-fake":{"name":"fake"}}}},"autoupdate":false,"share":"disabled"}`
	return "unset OPENCODE_PURE ANTHROPIC_API_KEY OPENAI_API_KEY\n" +
		writeFile(`"$HOME/.config/opencode/plugin/llm-agent.js"`, pluginSource(t)) +
		`export PATH="$(dirname "$C"):$PATH"` + "\n" +
		"export OPENCODE_CONFIG_CONTENT=" + shq(cfg) + "\n"
}

// TestPluginRun: opencode run answers with the laptop's key, which the
// plugin got from llm-agent-client; when the owner disconnects while it
// works, its next request fails with the plugin's error (the helper's "not
// connected" line), nothing carrying the key reaches the upstream after,
// and no file in the test user's home holds the key.
func TestPluginRun(t *testing.T) {
	r := newToolsRig(t, "opencode")
	token := r.tokens["anthropic"]
	run := shq(r.bins["opencode"]) + ` run "say hi" </dev/null`

	t.Run("connected", func(t *testing.T) {
		before := len(r.up.requests())
		res, took := toolsRun(t, r.cmd(r.srv, fwdPrimary, nil, r.prelude("plugin-run")+pluginSetup(t, r.up.URL)+run))
		t.Logf("opencode run: exit %d after %v", res.Code, took.Round(time.Millisecond))
		if res.Code != 0 || !strings.Contains(res.Stdout, r.up.Answer) {
			t.Errorf("exit %d, answer printed: %v\nstdout: %s\nstderr: %s", res.Code, strings.Contains(res.Stdout, r.up.Answer), res.Stdout, res.Stderr)
		}
		n, other := 0, 0
		for _, q := range r.up.requests()[before:] {
			switch {
			case q.APIKey == token:
				n++
			case q.APIKey != "" || q.Auth != "":
				other++
			}
		}
		t.Logf("the upstream got %d requests with the laptop's key in x-api-key, %d with another key", n, other)
		if n == 0 {
			t.Errorf("the upstream never saw the laptop's key in x-api-key")
		}
		if other > 0 {
			t.Errorf("%d requests carried another key (the plugin's placeholder?)", other)
		}
	})

	t.Run("disconnect", func(t *testing.T) {
		r.up.setToolCall(true)
		defer r.up.setToolCall(false)
		owner, sock, ownerDone := r.startOwner(t)
		var mu sync.Mutex
		var disconnected time.Time
		r.up.arm(func() {
			owner.Process.Signal(syscall.SIGTERM)
			<-ownerDone
			waitFor(10*time.Second, func() bool { _, err := os.Lstat(sock); return os.IsNotExist(err) })
			mu.Lock()
			disconnected = time.Now()
			mu.Unlock()
			r.up.markDisconnected()
		})
		before := len(r.up.requests())
		script := "export SSH_AUTH_SOCK=" + shq(sock) + "\n" + r.prelude("plugin-disc") + pluginSetup(t, r.up.URL) + run
		res, took := toolsRun(t, r.cmd(r.srv, fwdNone, nil, script))
		r.up.arm(nil)
		mu.Lock()
		defer mu.Unlock()
		if disconnected.IsZero() {
			t.Fatalf("opencode made no request (exit %d)\nstdout: %s\nstderr: %s", res.Code, res.Stdout, res.Stderr)
		}
		out := res.Stdout + res.Stderr
		t.Logf("opencode run: exit %d, %v after the disconnect (%v in all); says %q", res.Code,
			time.Since(disconnected).Round(time.Millisecond), took.Round(time.Millisecond), notConnectedLine(out))
		var after, afterWithToken int
		for _, q := range r.up.requests()[before:] {
			if q.Disconn {
				after++
				if strings.Contains(q.APIKey, token) || strings.Contains(q.Auth, token) {
					afterWithToken++
				}
			}
		}
		t.Logf("the upstream got %d requests after the disconnect, %d with the key", after, afterWithToken)
		if !strings.Contains(out, "llm-agent-client: get: the owner is not connected") {
			t.Errorf("opencode's output does not carry the helper's not-connected line\nstdout: %s\nstderr: %s", res.Stdout, res.Stderr)
		}
		if strings.Contains(res.Stdout, r.up.Answer) || res.Code == 0 {
			t.Errorf("exit %d, answer printed: %v; want a failure", res.Code, strings.Contains(res.Stdout, r.up.Answer))
		}
		if afterWithToken > 0 {
			t.Errorf("the upstream got the key %d times after the disconnect", afterWithToken)
		}
	})
	t.Run("claude-login", func(t *testing.T) {
		// A Claude login (an OAuth credential) goes as a Bearer token with
		// the OAuth beta flag, as the proxy sends it, and no x-api-key.
		access := fwdToken(t, "sk-ant-oat-plugin")
		file := filepath.Join(t.TempDir(), "auth.json")
		login := fmt.Sprintf(`{"anthropic":{"type":"oauth","refresh":%q,"access":%q,"expires":%d}}`,
			fwdToken(t, "rt-plugin"), access, time.Now().Add(time.Hour).UnixMilli())
		if err := os.WriteFile(file, []byte(login), 0o600); err != nil {
			t.Fatal(err)
		}
		if res := r.agent.Client(t, "", "import", "--provider", "anthropic", file); res.Code != 0 {
			t.Fatalf("import the login on the laptop: %+v", res)
		}
		// The laptop's file; the scan below covers /tmp, which the
		// laptop and the server share here.
		os.Remove(file)
		before := len(r.up.requests())
		res, _ := toolsRun(t, r.cmd(r.srv, fwdPrimary, nil, r.prelude("plugin-oauth")+pluginSetup(t, r.up.URL)+run))
		if res.Code != 0 || !strings.Contains(res.Stdout, r.up.Answer) {
			t.Errorf("exit %d, answer printed: %v\nstdout: %s\nstderr: %s", res.Code, strings.Contains(res.Stdout, r.up.Answer), res.Stdout, res.Stderr)
		}
		n, bad := 0, 0
		for _, q := range r.up.requests()[before:] {
			if q.Auth == "Bearer "+access && q.APIKey == "" && strings.Contains(q.Beta, "oauth-2025-04-20") {
				n++
			} else {
				bad++
			}
		}
		t.Logf("the upstream got %d requests with the login as a Bearer token and the OAuth beta flag, %d otherwise", n, bad)
		if n == 0 || bad > 0 {
			t.Errorf("want every request to carry the login as Bearer with anthropic-beta oauth-2025-04-20 and no x-api-key")
		}
		scanFiles(t, r.user, access)
	})
	scanFiles(t, r.user, token)
	if t.Failed() {
		t.Logf("sshd log:\n%s", r.srv.LogTail(10))
	}
}

// ocServer is opencode serve's HTTP API as opencode attach uses it.
type ocServer struct {
	t    testing.TB
	base string
	hc   *http.Client
}

func (s *ocServer) post(path, body string) ([]byte, int, error) {
	resp, err := s.hc.Post(s.base+path, "application/json", strings.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return b, resp.StatusCode, err
}

// newSession creates a session and returns its id.
func (s *ocServer) newSession() string {
	s.t.Helper()
	b, code, err := s.post("/session", "{}")
	var v struct{ ID string }
	if err == nil {
		err = json.Unmarshal(b, &v)
	}
	if err != nil || code != 200 || v.ID == "" {
		s.t.Fatalf("POST /session: %d %v %.300s", code, err, b)
	}
	return v.ID
}

// prompt sends one message and returns the assistant's text and error
// message (the provider's error as opencode reports it).
func (s *ocServer) prompt(session, text string) (answer, errMsg string, took time.Duration) {
	s.t.Helper()
	start := time.Now()
	body, _ := json.Marshal(obj{"parts": []obj{{"type": "text", "text": text}}})
	b, code, err := s.post("/session/"+session+"/message", string(body))
	took = time.Since(start)
	if err != nil || code != 200 {
		s.t.Fatalf("POST /session/%s/message: %d %v %.300s", session, code, err, b)
	}
	var v struct {
		Info struct {
			Error *struct {
				Name string
				Data struct{ Message string }
			}
		}
		Parts []struct{ Type, Text string }
	}
	if err := json.Unmarshal(b, &v); err != nil {
		s.t.Fatalf("the message's answer: %v: %.300s", err, b)
	}
	for _, p := range v.Parts {
		if p.Type == "text" {
			answer += p.Text
		}
	}
	if v.Info.Error != nil {
		errMsg = v.Info.Error.Name + ": " + v.Info.Error.Data.Message
	}
	return answer, errMsg, took
}

// ocServeHome begins a subshell script, run in the shared account, that
// gives opencode serve a HOME of its own ($HOME/serve, working in
// $HOME/work), the quiet environment and the plugin's package already in
// place (so that opencode installs nothing). The caller appends the
// launch and closes the subshell.
func ocServeHome() *strings.Builder {
	var b strings.Builder
	b.WriteString("(\nexport HOME=\"$HOME/serve\"; mkdir -p \"$HOME/work\"; cd \"$HOME/work\" || exit 1\n")
	for _, kv := range toolsQuietEnv {
		fmt.Fprintf(&b, "export %s\n", kv)
	}
	b.WriteString(`mkdir -p "$HOME/.config/opencode/node_modules"
echo '{"dependencies":{"@opencode-ai/plugin":"*"}}' > "$HOME/.config/opencode/package.json"
echo '{"packages":{"":{"dependencies":{"@opencode-ai/plugin":"*"}}}}' > "$HOME/.config/opencode/package-lock.json"
`)
	return &b
}

// TestPluginServe: the long-running server. On a shared account,
// the owner's login runs the guard as the profile line does and starts
// `opencode serve` under setsid nohup with the plugin; prompts sent
// through its HTTP API are answered with the laptop's key while the owner
// is connected, fail with the plugin's not-connected error (and reach no
// upstream) once the owner's ssh is gone, and are answered again by the
// same server process after the owner logs in again (the guard's stable
// path in LLM_AUTH_SOCK, which opencode inherited, serves again). No file
// and no process environment or command line of the account holds the key.
func TestPluginServe(t *testing.T) {
	sshtest.RequireRoot(t)
	bin := toolBin(t, "opencode")
	r, a, token := newGrdRigAgent(t, "plugserve", "sk-ant-plugin")
	up := startFakeUpstream(t, "FAKE-UPSTREAM-ANSWER-"+randHex(t, 6))
	t.Cleanup(func() { fwdNoSecretInLogs(t, a, token) })

	owner := r.login("owner", a.Sock)
	g := owner.startGuard()
	t.Logf("owner: guard pid %d on %s", g.PID, g.Sock)

	port := toolsFreePort(t)
	b := ocServeHome()
	b.WriteString(pluginSetup(t, up.URL))
	fmt.Fprintf(b, "setsid nohup %s serve --print-logs --log-level DEBUG --port %d </dev/null >\"$HOME/serve.log\" 2>&1 &\necho \"$!\"\n)", shq(bin), port)
	out, rc := owner.Run(b.String())
	pid, _ := strconv.Atoi(strings.TrimSpace(out))
	if rc != 0 || pid <= 0 {
		t.Fatalf("starting opencode serve: exit %d, %q, stderr %q", rc, out, owner.Stderr())
	}
	serveLog := filepath.Join(r.user.Home, "serve", "serve.log")
	t.Cleanup(func() {
		syscall.Kill(pid, syscall.SIGKILL)
		grdWaitGone(pid, 5*time.Second)
		if t.Failed() {
			log, _ := os.ReadFile(serveLog)
			if bytes.Contains(log, []byte(token)) {
				log = []byte("(holds the credential; not shown)")
			}
			if len(log) > 6000 {
				log = log[len(log)-6000:]
			}
			t.Logf("opencode serve's log (tail):\n%s\nsshd log:\n%s", log, r.srv.LogTail(10))
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if took, ok := waitFor(60*time.Second, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}); !ok {
		t.Fatalf("opencode serve does not listen on %s after 60 s", addr)
	} else {
		t.Logf("opencode serve (pid %d) listens on %s after %v", pid, addr, took.Round(time.Millisecond))
	}
	oc := &ocServer{t: t, base: "http://" + addr, hc: &http.Client{Timeout: toolsTimeout}}
	// opencode 1.18.33 may never answer a request that comes in while it
	// is still starting, though it listens: wait until one is answered.
	probe := &http.Client{Timeout: 3 * time.Second}
	if took, ok := waitFor(60*time.Second, func() bool {
		resp, err := probe.Get(oc.base + "/session")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}); !ok {
		t.Fatalf("opencode serve answers no GET /session within 60 s")
	} else {
		t.Logf("opencode serve answers after another %v", took.Round(time.Millisecond))
	}
	session := oc.newSession()

	sawKey := func(since int) int { return up.keyCount(token, since) }

	// Connected: answered with the laptop's key.
	n0 := len(up.requests())
	answer, errMsg, took := oc.prompt(session, "say hi")
	t.Logf("connected: %v, answer %v, error %q; the upstream saw the key %d times", took.Round(time.Millisecond),
		strings.Contains(answer, up.Answer), errMsg, sawKey(n0))
	if !strings.Contains(answer, up.Answer) || sawKey(n0) == 0 {
		t.Fatalf("connected: want the upstream's answer with the laptop's key; answer %q, error %q", answer, errMsg)
	}
	scanned, hits, _ := procScan(r.user.UID, token, "")
	t.Logf("processes: scanned the environment and command line of %d processes of the account: credential %s",
		scanned, map[bool]string{true: "FOUND", false: "not found"}[len(hits) > 0])
	if len(hits) > 0 {
		t.Errorf("the credential is in /proc/%s", strings.Join(hits, ", /proc/"))
	}

	// Disconnected: the owner's laptop drops its ssh; the guard goes.
	disconnect := time.Now()
	owner.Kill()
	if !owner.Exited(10 * time.Second) {
		t.Fatalf("the owner's ssh did not exit within 10 s of SIGTERM")
	}
	if at, ok := grdWaitGone(g.PID, 5*time.Second); ok {
		t.Logf("guard gone %v after the disconnect", at.Sub(disconnect).Round(time.Millisecond))
	} else {
		t.Errorf("the guard (pid %d) still runs 5 s after the owner disconnected", g.PID)
	}
	up.markDisconnected()
	n1 := len(up.requests())
	answer, errMsg, took = oc.prompt(session, "say hi again")
	t.Logf("disconnected: %v, error %q; the upstream got %d requests", took.Round(time.Millisecond), errMsg, len(up.requests())-n1)
	if strings.Contains(answer, up.Answer) || !strings.Contains(errMsg, "llm-agent-client: get: the owner is not connected") {
		t.Errorf("disconnected: want the plugin's not-connected error and no answer; answer %q, error %q", answer, errMsg)
	}
	if n := len(up.requests()) - n1; n > 0 {
		t.Errorf("disconnected: the upstream got %d requests", n)
	}
	if processGone(pid) {
		t.Fatalf("opencode serve (pid %d) did not survive the owner's disconnect", pid)
	}

	// Reconnected: the same server answers again, through the stable path.
	again := r.login("owner again", a.Sock)
	g2 := again.startGuard()
	if g2.Sock != g.Sock {
		t.Errorf("the owner's second guard serves %s, want the stable path %s", g2.Sock, g.Sock)
	}
	n2 := len(up.requests())
	answer, errMsg, took = oc.prompt(session, "say hi once more")
	t.Logf("reconnected: %v, answer %v, error %q; the upstream saw the key %d times", took.Round(time.Millisecond),
		strings.Contains(answer, up.Answer), errMsg, sawKey(n2))
	if !strings.Contains(answer, up.Answer) || sawKey(n2) == 0 {
		t.Errorf("reconnected: want the upstream's answer with the laptop's key; answer %q, error %q", answer, errMsg)
	}
	if processGone(pid) {
		t.Errorf("opencode serve (pid %d) was restarted or died", pid)
	}
	scanFiles(t, r.user, token)
}

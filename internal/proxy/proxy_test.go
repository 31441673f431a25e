package proxy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/agent"
	"github.com/llm-agent/llm-agent/internal/agenttest"
	"github.com/llm-agent/llm-agent/internal/proxy"
	"github.com/llm-agent/llm-agent/memsafe"
	"github.com/llm-agent/llm-agent/protocol"
)

// startAgent runs a real agent on a Unix socket in a temp dir.
func startAgent(t testing.TB) (*agent.Agent, string) { return startAgentAsking(t, "") }

// startAgentAsking runs a real agent that confirms uses with askpass.
func startAgentAsking(t testing.TB, askpass string) (*agent.Agent, string) {
	t.Helper()
	s := agenttest.Serve(t, agent.Config{
		Audit:   agent.NewAuditLog(io.Discard, nil),
		Budget:  memsafe.NewBudget(-1),
		Askpass: askpass,
		// An OAuth credential must never be refreshed for real here.
		OAuthEndpoints: map[string]string{"anthropic": "http://127.0.0.1:1/", "openai": "http://127.0.0.1:1/", "github-copilot": "http://127.0.0.1:1/"},
	})
	return s.Agent, s.Admin // the admin socket: the tests add credentials
}

func add(t testing.TB, sock, provider, kind string, fields ...string) {
	t.Helper()
	c, err := protocol.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := &protocol.AddRequest{Credential: protocol.Credential{Provider: provider, Kind: kind}}
	for i := 0; i+1 < len(fields); i += 2 {
		req.Fields = append(req.Fields, protocol.Field{Name: fields[i], Value: []byte(fields[i+1])})
	}
	if err := c.Add(req); err != nil {
		t.Fatalf("add %s: %v", provider, err)
	}
}

// seen is what the upstream got.
type seen struct {
	Path   string
	Header http.Header
}

func startUpstream(t testing.TB) (*httptest.Server, func() []seen) {
	t.Helper()
	var mu sync.Mutex
	var got []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, seen{Path: r.URL.RequestURI(), Header: r.Header.Clone()})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []seen {
		mu.Lock()
		defer mu.Unlock()
		return append([]seen(nil), got...)
	}
}

func newProxy(t testing.TB, cfg proxy.Config) (*proxy.Proxy, string) {
	t.Helper()
	p, err := proxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(l)
	t.Cleanup(func() { p.Close(time.Second) })
	return p, "http://" + l.Addr().String()
}

func do(t testing.TB, method, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(`{"model":"m"}`))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func TestInject(t *testing.T) {
	_, sock := startAgent(t)
	up, got := startUpstream(t)
	exp := strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)
	add(t, sock, "anthropic", protocol.KindAPI, "key", "sk-ant-UNIT")
	add(t, sock, "openai", protocol.KindOAuth, "refresh", "rt-UNIT", "access", "at-openai-UNIT", "expires", exp, "accountId", "acct-7")
	add(t, sock, "claude-max", protocol.KindAPI, "key", "unused")
	add(t, sock, "google", protocol.KindAPI, "key", "goog-UNIT")
	add(t, sock, "localai", protocol.KindWellKnown, "key", "LOCALAI_TOKEN", "token", "wk-UNIT")
	add(t, sock, "github-copilot", protocol.KindOAuth, "refresh", "gho-UNIT", "access", "cop-UNIT", "expires", exp)
	p, base := newProxy(t, proxy.Config{Socket: sock, Upstreams: map[string]string{
		"anthropic": up.URL, "openai": up.URL + "/v1", "google": up.URL + "/v1beta",
		"localai": up.URL + "/api", "github-copilot": up.URL,
	}})
	dummy := p.DummyKey()
	for _, tc := range []struct {
		name, path string
		hdr        map[string]string
		wantPath   string
		want       map[string]string // header -> exact value ("" means absent)
	}{
		{"anthropic api key via x-api-key", "/anthropic/v1/messages?beta=true", map[string]string{"x-api-key": dummy, "anthropic-beta": "tools-1"},
			"/v1/messages?beta=true", map[string]string{"X-Api-Key": "sk-ant-UNIT", "Authorization": "", "Anthropic-Beta": "tools-1"}},
		{"anthropic api key, dummy as Bearer and x-api-key (Claude Code's apiKeyHelper style)", "/anthropic/v1/messages",
			map[string]string{"x-api-key": dummy, "authorization": "Bearer " + dummy}, "/v1/messages", map[string]string{"X-Api-Key": "sk-ant-UNIT", "Authorization": ""}},
		{"openai oauth: ChatGPT account header", "/openai/responses", map[string]string{"authorization": "Bearer " + dummy},
			"/v1/responses", map[string]string{"Authorization": "Bearer at-openai-UNIT", "Chatgpt-Account-Id": "acct-7", "X-Api-Key": ""}},
		{"google api key", "/google/models/g:streamGenerateContent?alt=sse", map[string]string{"x-goog-api-key": dummy},
			"/v1beta/models/g:streamGenerateContent?alt=sse", map[string]string{"X-Goog-Api-Key": "goog-UNIT", "Authorization": ""}},
		{"wellknown token on an added route", "/localai/chat/completions", map[string]string{"authorization": "Bearer " + dummy},
			"/api/chat/completions", map[string]string{"Authorization": "Bearer wk-UNIT"}},
		{"copilot oauth: editor headers", "/github-copilot/chat/completions", map[string]string{"authorization": "Bearer " + dummy, "user-agent": "tool/1"},
			"/chat/completions", map[string]string{"Authorization": "Bearer cop-UNIT", "Copilot-Integration-Id": "vscode-chat"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := len(got())
			resp, body := do(t, "POST", base+tc.path, tc.hdr)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			all := got()
			if len(all) != n+1 {
				t.Fatalf("upstream got %d requests, want 1", len(all)-n)
			}
			s := all[n]
			if s.Path != tc.wantPath {
				t.Errorf("upstream path %q, want %q", s.Path, tc.wantPath)
			}
			for h, v := range tc.want {
				if g := s.Header.Get(h); g != v {
					t.Errorf("upstream header %s: got %d bytes, want %d (equal: false)", h, len(g), len(v))
				}
			}
			for h, vs := range s.Header {
				for _, v := range vs {
					if strings.Contains(v, dummy) {
						t.Errorf("upstream header %s carries the dummy key", h)
					}
				}
			}
		})
	}
}

// An Anthropic OAuth token goes as a Bearer with the OAuth beta flag added
// to the tool's own flags.
func TestInjectAnthropicOAuth(t *testing.T) {
	_, sock := startAgent(t)
	up, got := startUpstream(t)
	exp := strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)
	add(t, sock, "anthropic", protocol.KindOAuth, "refresh", "rt-A", "access", "at-A", "expires", exp)
	p, base := newProxy(t, proxy.Config{Socket: sock, Upstreams: map[string]string{"anthropic": up.URL}})
	resp, body := do(t, "POST", base+"/anthropic/v1/messages", map[string]string{"x-api-key": p.DummyKey(), "anthropic-beta": "claude-code-20250219"})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	h := got()[0].Header
	if h.Get("Authorization") != "Bearer at-A" || h.Get("X-Api-Key") != "" || h.Get("Anthropic-Beta") != "claude-code-20250219,oauth-2025-04-20" {
		t.Errorf("upstream headers: authorization ok %v, x-api-key %q, anthropic-beta %q",
			h.Get("Authorization") == "Bearer at-A", h.Get("X-Api-Key"), h.Get("Anthropic-Beta"))
	}
}

func errorBody(t *testing.T, body []byte) (shape, msg string) {
	t.Helper()
	var v struct {
		Type  string `json:"type"`
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
			Status  string `json:"status"`
			Code    any    `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("error body is not JSON: %s", body)
	}
	switch {
	case v.Type == "error" && v.Error.Type != "":
		return "anthropic", v.Error.Message
	case v.Error.Status != "":
		return "google", v.Error.Message
	case v.Error.Type != "" && v.Error.Code != nil:
		return "openai", v.Error.Message
	}
	return "unknown", v.Error.Message
}

// Requests without the dummy key, to unknown routes, and when the agent
// cannot help, get errors in the provider's own shape.
func TestErrors(t *testing.T) {
	a, sock := startAgent(t)
	up, got := startUpstream(t)
	add(t, sock, "anthropic", protocol.KindAPI, "key", "sk-ant-E")
	ups := map[string]string{"anthropic": up.URL, "openai": up.URL + "/v1", "google": up.URL}
	p, base := newProxy(t, proxy.Config{Socket: sock, Upstreams: ups})
	gone, goneBase := newProxy(t, proxy.Config{Socket: filepath.Join(t.TempDir(), "gone.sock"), Upstreams: ups})
	dummy := p.DummyKey()
	for _, tc := range []struct {
		name, url string
		hdr       map[string]string
		status    int
		shape     string
		msg       string
	}{
		{"no key", base + "/anthropic/v1/messages", nil, 401, "anthropic", "does not carry the proxy's key"},
		{"wrong key", base + "/openai/chat/completions", map[string]string{"authorization": "Bearer sk-real-looking"}, 401, "openai", "does not carry the proxy's key"},
		{"the key of another proxy", base + "/anthropic/v1/messages", map[string]string{"x-api-key": gone.DummyKey()}, 401, "anthropic", "proxy's key"},
		{"unknown route", base + "/nosuch/v1/x", map[string]string{"authorization": "Bearer " + dummy}, 404, "openai", "no route"},
		{"no credential", base + "/openai/chat/completions", map[string]string{"authorization": "Bearer " + dummy}, 403, "openai", "the agent refused"},
		{"agent gone (anthropic)", goneBase + "/anthropic/v1/messages", map[string]string{"x-api-key": gone.DummyKey()}, 503, "anthropic", "the owner is not connected"},
		{"agent gone (openai)", goneBase + "/openai/responses", map[string]string{"authorization": "Bearer " + gone.DummyKey()}, 503, "openai", "the owner is not connected"},
		{"agent gone (google)", goneBase + "/google/models", map[string]string{"x-goog-api-key": gone.DummyKey()}, 503, "google", "the owner is not connected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, "POST", tc.url, tc.hdr)
			shape, msg := errorBody(t, body)
			if resp.StatusCode != tc.status || shape != tc.shape || !strings.Contains(msg, tc.msg) {
				t.Errorf("got %d %s %q, want %d %s %q", resp.StatusCode, shape, msg, tc.status, tc.shape, tc.msg)
			}
			if tc.status == 503 && (resp.Header.Get("X-Should-Retry") != "false" || resp.Header.Get("Retry-After") != "0") {
				t.Errorf("503 without x-should-retry: false and retry-after: 0: %v", resp.Header)
			}
		})
	}
	if n := len(got()); n != 0 {
		t.Errorf("the upstream got %d requests; every one should have been stopped at the proxy", n)
	}
	// A locked agent: 503, says so.
	c, _ := protocol.Dial(sock)
	if err := c.Lock([]byte("pw")); err != nil {
		t.Fatal(err)
	}
	c.Close()
	resp, body := do(t, "POST", base+"/anthropic/v1/messages", map[string]string{"x-api-key": dummy})
	if _, msg := errorBody(t, body); resp.StatusCode != 503 || !strings.Contains(msg, "locked") {
		t.Errorf("locked agent: %d %q", resp.StatusCode, msg)
	}
	_ = a
}

// An agent that accepts and never answers costs a request the timeout,
// then a 503: never a hang.
func TestAgentTimeout(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "mute.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	p, base := newProxy(t, proxy.Config{Socket: sock, Timeout: 300 * time.Millisecond})
	start := time.Now()
	resp, body := do(t, "POST", base+"/anthropic/v1/messages", map[string]string{"x-api-key": p.DummyKey()})
	took := time.Since(start)
	_, msg := errorBody(t, body)
	t.Logf("mute agent: %d after %v: %s", resp.StatusCode, took.Round(time.Millisecond), msg)
	if resp.StatusCode != 503 || !strings.Contains(msg, "did not answer") {
		t.Errorf("mute agent: %d %q", resp.StatusCode, msg)
	}
	if took > 5*time.Second {
		t.Errorf("mute agent: the answer took %v with a 300ms timeout", took)
	}
}

// The answer streams: the client has the first bytes of a 1 MiB
// server-sent-event answer before the upstream sends the second half.
func TestStreaming(t *testing.T) {
	_, sock := startAgent(t)
	add(t, sock, "openai", protocol.KindAPI, "key", "sk-S")
	half := make(chan struct{})
	firstBytes := make(chan struct{})
	var order []string
	var mu sync.Mutex
	note := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		line := "data: " + strings.Repeat("y", 1000) + "\n\n"
		for i := 0; i < 1024; i++ {
			io.WriteString(w, line)
			w.(http.Flusher).Flush()
			if i == 512 {
				close(half)
				select {
				case <-firstBytes:
				case <-time.After(10 * time.Second):
					note("upstream gave up waiting")
				}
			}
		}
		note("upstream done")
	}))
	defer up.Close()
	p, base := newProxy(t, proxy.Config{Socket: sock, Upstreams: map[string]string{"openai": up.URL}})
	req, _ := http.NewRequest("POST", base+"/openai/chat/completions", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+p.DummyKey())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 32<<10)
	reads, total := 0, 0
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if reads == 0 {
				<-half
				note("client has the first bytes")
				close(firstBytes)
			}
			reads++
			total += n
		}
		if err != nil {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d bytes in %d reads; order: %v", total, reads, order)
	if reads < 2 || total != 1024*1008 || len(order) != 2 || order[0] != "client has the first bytes" {
		t.Errorf("want the first bytes before the upstream's end, in more than one read: %d reads, %d bytes, %v", reads, total, order)
	}
}

// Neither the dummy key nor a credential reaches the log.
func TestLogHoldsNoSecret(t *testing.T) {
	_, sock := startAgent(t)
	up, _ := startUpstream(t)
	add(t, sock, "anthropic", protocol.KindAPI, "key", "sk-ant-LOGSECRET")
	var buf bytes.Buffer
	var mu sync.Mutex
	p, base := newProxy(t, proxy.Config{Socket: sock, Upstreams: map[string]string{"anthropic": up.URL},
		Log: log.New(lockedWriter{&mu, &buf}, "", 0)})
	do(t, "POST", base+"/anthropic/v1/messages?key="+p.DummyKey(), map[string]string{"x-api-key": p.DummyKey()})
	do(t, "POST", base+"/anthropic/v1/messages", map[string]string{"x-api-key": "wrong"})
	do(t, "POST", base+"/openai/x", map[string]string{"authorization": "Bearer " + p.DummyKey()})
	mu.Lock()
	defer mu.Unlock()
	out := buf.String()
	if strings.Count(out, "\n") < 3 {
		t.Errorf("want a line per request, got %q", out)
	}
	if strings.Contains(out, "LOGSECRET") || strings.Contains(out, p.DummyKey()) {
		t.Errorf("the log holds the credential or the dummy key")
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// Many tools at once: every request gets its own agent exchange.
func TestConcurrent(t *testing.T) {
	_, sock := startAgent(t)
	up, got := startUpstream(t)
	add(t, sock, "anthropic", protocol.KindAPI, "key", "sk-ant-C")
	p, base := newProxy(t, proxy.Config{Socket: sock, Upstreams: map[string]string{"anthropic": up.URL}})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", base+"/anthropic/v1/messages", strings.NewReader("{}"))
			req.Header.Set("x-api-key", p.DummyKey())
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				errs <- fmt.Errorf("status %d", resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, s := range got() {
		if s.Header.Get("X-Api-Key") != "sk-ant-C" {
			t.Errorf("a request went up without the credential")
		}
	}
}

func TestToolEnv(t *testing.T) {
	p, err := proxy.New(proxy.Config{Socket: "/nonexistent", Upstreams: map[string]string{"localai": "http://127.0.0.1:9/v1"}})
	if err != nil {
		t.Fatal(err)
	}
	vars, err := p.ToolEnv("http://127.0.0.1:4000/", []string{"openai", "anthropic", "localai", "unrouted"},
		`{"model":"anthropic/x","provider":{"anthropic":{"models":{"x":{}},"options":{"timeout":5}}}}`)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, v := range vars {
		m[v.Name] = v.Value
	}
	want := map[string]string{
		"ANTHROPIC_BASE_URL": "http://127.0.0.1:4000/anthropic", "ANTHROPIC_API_KEY": p.DummyKey(),
		"OPENAI_BASE_URL": "http://127.0.0.1:4000/openai", "OPENAI_API_KEY": p.DummyKey(),
		"LLM_AGENT_PROXY_URL": "http://127.0.0.1:4000",
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %q, want %q", k, m[k], v)
		}
	}
	var cfg struct {
		Model    string
		Provider map[string]struct {
			Models  map[string]any
			Options map[string]any
		}
	}
	if err := json.Unmarshal([]byte(m["OPENCODE_CONFIG_CONTENT"]), &cfg); err != nil {
		t.Fatal(err)
	}
	a := cfg.Provider["anthropic"]
	if cfg.Model != "anthropic/x" || a.Models["x"] == nil || a.Options["timeout"] != 5.0 ||
		a.Options["baseURL"] != "http://127.0.0.1:4000/anthropic/v1" ||
		cfg.Provider["localai"].Options["baseURL"] != "http://127.0.0.1:4000/localai" {
		t.Errorf("OPENCODE_CONFIG_CONTENT = %s", m["OPENCODE_CONFIG_CONTENT"])
	}
	if _, ok := cfg.Provider["unrouted"]; ok {
		t.Errorf("a provider without a route got a baseURL")
	}
	var auth map[string]map[string]string
	json.Unmarshal([]byte(m["OPENCODE_AUTH_CONTENT"]), &auth)
	if auth["openai"]["type"] != "api" || auth["openai"]["key"] != p.DummyKey() || len(auth) != 3 {
		t.Errorf("OPENCODE_AUTH_CONTENT has %d entries (want 3), openai's is the dummy key: %v", len(auth), auth["openai"]["key"] == p.DummyKey())
	}
	if _, err := p.ToolEnv("http://x", nil, "[1]"); err == nil {
		t.Errorf("a non-object OPENCODE_CONFIG_CONTENT was accepted")
	}
}

func TestCheckUpstream(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://gateway.example/v1", true},
		{"http://127.0.0.1:8080/v1", true},
		{"http://[::1]:8080", true},
		{"http://gateway.example/v1", false},
		{"ftp://x", false},
		{"https://x/v1?key=1", false},
	} {
		if err := proxy.CheckUpstream(tc.url); (err == nil) != tc.ok {
			t.Errorf("CheckUpstream(%q) = %v, want ok %v", tc.url, err, tc.ok)
		}
	}
	if _, err := proxy.New(proxy.Config{Socket: "/x", Upstreams: map[string]string{"a/b": "https://x"}}); err == nil {
		t.Errorf("a route name with a slash was accepted")
	}
}

package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/agent"
	prov "github.com/llm-agent/llm-agent/internal/providers"
	"github.com/llm-agent/llm-agent/internal/relay"
	"github.com/llm-agent/llm-agent/protocol"
)

// fakeProvider records what reaches it and answers like the Messages API.
type fakeProvider struct {
	*httptest.Server
	mu   sync.Mutex
	seen []http.Header
	urls []string
}

func newFakeProvider(t *testing.T) *fakeProvider {
	fp := &fakeProvider{}
	fp.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		fp.mu.Lock()
		fp.seen = append(fp.seen, r.Header.Clone())
		fp.urls = append(fp.urls, r.URL.String())
		fp.mu.Unlock()
		if r.URL.Path == "/nousage" {
			io.WriteString(w, strings.Repeat("x", 2000)) // a stream that reports no usage
			return
		}
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"model":"claude-test","usage":{"input_tokens":7,"output_tokens":5}}`)
	}))
	t.Cleanup(fp.Close)
	return fp
}

func (fp *fakeProvider) calls() int {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	return len(fp.seen)
}

func (fp *fakeProvider) last() (http.Header, string) {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	if len(fp.seen) == 0 {
		return nil, ""
	}
	return fp.seen[len(fp.seen)-1], fp.urls[len(fp.urls)-1]
}

// jsonMeter reads the usage of a JSON answer, enough for these tests.
type jsonMeter struct{ b strings.Builder }

func (m *jsonMeter) Write(p []byte) (int, error) { m.b.Write(p); return len(p), nil }
func (m *jsonMeter) Usage() relay.Usage {
	var v struct {
		Model string
		Usage struct{ Input_tokens, Output_tokens uint64 }
	}
	if json.Unmarshal([]byte(m.b.String()), &v) != nil {
		return relay.Usage{}
	}
	return relay.Usage{Model: v.Model, Input: v.Usage.Input_tokens, Output: v.Usage.Output_tokens, Known: true}
}

func relayClient(t *testing.T, sock string) *http.Client {
	tr := relay.NewClientTransport(func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", sock)
		if err != nil {
			return nil, err
		}
		return relay.Upgrade(ctx, c, &protocol.Requester{PID: 1, Exe: "/usr/bin/opencode", Hostname: "gpu1"}, 5*time.Second)
	})
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func TestRelay(t *testing.T) {
	fp := newFakeProvider(t)
	routes, err := prov.NewRoutes(map[string]string{"anthropic": fp.URL, "openrouter": fp.URL, "groq": fp.URL}, "--relay-upstream")
	if err != nil {
		t.Fatal(err)
	}
	ta := startAgent(t, agent.Config{RelayRoutes: routes})
	mustAdd(t, ta.client(t), apiCred("anthropic", "sk-ant-RELAY-SECRET"))
	budget := apiCred("openrouter", "sk-or-BUDGET")
	budget.TokensPerDay = 10
	mustAdd(t, ta.client(t), budget)
	hc := relayClient(t, ta.use)

	for _, c := range []struct {
		name, path string
		header     map[string]string
		status     int
		upstream   string // the URL the provider saw; "" means it saw nothing
	}{
		{"relayed", "/anthropic/v1/messages?beta=true", map[string]string{"X-Api-Key": "dummy", "Authorization": "Bearer dummy", "Llm-Agent-Secret": "x"}, 200, "/v1/messages?beta=true"},
		{"unknown route", "/nowhere/v1/messages", nil, 404, ""},
		{"no credential", "/openai/v1/chat/completions", nil, 403, ""},
		{"climbs out", "/anthropic/%2e%2e/admin", nil, 403, ""},
		{"redirect passed back, not followed", "/anthropic/redirect", nil, 302, "/redirect"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := fp.calls()
			req, _ := http.NewRequest("POST", "http://relay"+c.path, strings.NewReader(`{"model":"m"}`))
			for k, v := range c.header {
				req.Header.Set(k, v)
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, body)
			}
			if strings.Contains(string(body), "SECRET") {
				t.Fatalf("the answer holds the credential: %s", body)
			}
			h, u := fp.last()
			if c.upstream == "" {
				if fp.calls() != before {
					t.Fatalf("the provider was called: %s", u)
				}
				return
			}
			if u != c.upstream {
				t.Fatalf("provider saw %q, want %q", u, c.upstream)
			}
			if got := h.Get("X-Api-Key"); got != "sk-ant-RELAY-SECRET" {
				t.Fatalf("x-api-key %q", got)
			}
			if h.Get("Authorization") != "" || h.Get("Llm-Agent-Secret") != "" {
				t.Fatalf("the server side's headers reached the provider: %v", h)
			}
		})
	}
	if !strings.Contains(ta.audit.String(), `"op":"relay","provider":"anthropic","decision":"allow"`) ||
		!strings.Contains(ta.audit.String(), `"model":"claude-test","status":200,`) || !strings.Contains(ta.audit.String(), `"input_tokens":7,"output_tokens":5,"usage_known":true`) {
		t.Fatalf("no relay record with the usage:\n%s", ta.audit)
	}
	if strings.Contains(ta.audit.String(), "SECRET") {
		t.Fatal("the audit log holds the credential")
	}

	t.Run("budget", func(t *testing.T) {
		if _, err := ta.client(t).Get("openrouter", nil); failureCode(err) != protocol.CodeNotPermitted {
			t.Fatalf("get of a budgeted credential: %v", err)
		}
		post := func() (int, string) {
			resp, err := hc.Post("http://relay/openrouter/chat/completions", "application/json", strings.NewReader(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		if st, body := post(); st != 200 {
			t.Fatalf("first request under the budget: %d %s", st, body)
		}
		n := fp.calls()
		st, body := post()
		if st != http.StatusTooManyRequests || !strings.Contains(body, "daily token budget") || !strings.Contains(body, `"insufficient_quota"`) {
			t.Fatalf("past the budget: %d %s", st, body)
		}
		if fp.calls() != n {
			t.Fatal("a request past the budget reached the provider")
		}
		entries, err := ta.client(t).List()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Provider == "openrouter" && (e.TokensPerDay != 10 || e.TokensToday != 12) {
				t.Fatalf("list: budget %d, today %d", e.TokensPerDay, e.TokensToday)
			}
		}
	})
	t.Run("budget without reported usage", func(t *testing.T) {
		// An answer that reports no usage must not let the server side
		// past the budget: the agent counts an estimate from the bytes.
		noUsage := apiCred("groq", "gsk-BUDGET")
		noUsage.TokensPerDay = 100
		mustAdd(t, ta.client(t), noUsage)
		for i, want := range []int{200, http.StatusTooManyRequests} {
			resp, err := hc.Post("http://relay/groq/nousage", "text/plain", strings.NewReader("hi"))
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Fatalf("request %d: status %d, want %d", i, resp.StatusCode, want)
			}
		}
		if !strings.Contains(ta.audit.String(), `"usage_known":false,"estimated_tokens":501`) {
			t.Fatalf("no estimate in the audit log:\n%s", ta.audit)
		}
	})
}

// TestRelayOAuth: OAuth logins go through the relay as through the proxy:
// an expired ChatGPT access token is refreshed on the laptop first and
// sent with the account header; a Claude login goes as a Bearer token
// with the OAuth beta flag, merged with the tool's own flags. The refresh
// token never leaves the agent.
func TestRelayOAuth(t *testing.T) {
	fp := newFakeProvider(t)
	ts := newTokenServer(t)
	routes, err := prov.NewRoutes(map[string]string{"openai": fp.URL, "anthropic": fp.URL}, "--relay-upstream")
	if err != nil {
		t.Fatal(err)
	}
	ta := refreshAgent(t, ts, agent.Config{RelayRoutes: routes})
	mustAdd(t, ta.client(t), openaiCred(time.Now().Add(-time.Minute)))
	claude := &protocol.AddRequest{Credential: protocol.Credential{Provider: "anthropic", Kind: protocol.KindOAuth, Fields: []protocol.Field{
		{Name: "refresh", Value: []byte("sk-ant-ort-REFRESH-NEVER-SENT")},
		{Name: "access", Value: []byte("sk-ant-oat-ACCESS")},
		{Name: "expires", Value: []byte(fmt.Sprint(time.Now().Add(time.Hour).UnixMilli()))}}}}
	mustAdd(t, ta.client(t), claude)
	hc := relayClient(t, ta.use)

	for _, c := range []struct {
		path   string
		header map[string]string
		want   map[string]string // header: a substring its value must hold
	}{
		{"/openai/responses", nil, map[string]string{"Authorization": "Bearer " + accessN(1), "Chatgpt-Account-Id": "acct-1"}},
		{"/anthropic/v1/messages", map[string]string{"Anthropic-Beta": "tools-2024"}, map[string]string{"Authorization": "Bearer sk-ant-oat-ACCESS", "Anthropic-Beta": "oauth-2025-04-20"}},
	} {
		req, _ := http.NewRequest("POST", "http://relay"+c.path, strings.NewReader(`{}`))
		for k, v := range c.header {
			req.Header.Set(k, v)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d: %s", c.path, resp.StatusCode, body)
		}
		h, _ := fp.last()
		for k, v := range c.want {
			if !strings.Contains(h.Get(k), v) {
				t.Errorf("%s: the provider got %s %q, want it to hold %q", c.path, k, h.Get(k), v)
			}
		}
		if h.Get("X-Api-Key") != "" {
			t.Errorf("%s: an x-api-key went with an OAuth token", c.path)
		}
		for k := range c.header {
			if !strings.Contains(h.Get(k), c.header[k]) {
				t.Errorf("%s: the tool's %s was lost: %q", c.path, k, h.Get(k))
			}
		}
	}
	if ts.count() != 1 {
		t.Errorf("%d refreshes, want 1 (the expired ChatGPT token only)", ts.count())
	}
	if a := ta.audit.String(); strings.Contains(a, "REFRESH") || strings.Contains(a, mRefresh) {
		t.Error("a refresh token is in the audit log")
	}
}

// TestRelayAuditBounded: requests that cost the owner nothing (answers
// without usage) cannot fill the laptop's disk through the audit log: they
// share the use-only connections' bucket and are summed in one line;
// billed ones are all written.
func TestRelayAuditBounded(t *testing.T) {
	fp := newFakeProvider(t)
	routes, err := prov.NewRoutes(map[string]string{"anthropic": fp.URL}, "--relay-upstream")
	if err != nil {
		t.Fatal(err)
	}
	ta := startAgent(t, agent.Config{RelayRoutes: routes})
	mustAdd(t, ta.client(t), apiCred("anthropic", "sk-ant-AUDIT"))
	hc := relayClient(t, ta.use)
	const free, billed = 700, 20
	for i := 0; i < free+billed; i++ {
		path := "/anthropic/nousage"
		if i >= free {
			path = "/anthropic/v1/messages"
		}
		resp, err := hc.Get("http://relay" + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	var freeLines, billedLines int
	for _, line := range strings.Split(ta.audit.String(), "\n") {
		switch {
		case strings.Contains(line, `"path":"/nousage"`):
			freeLines++
		case strings.Contains(line, `"path":"/v1/messages"`) && strings.Contains(line, `"usage_known":true`):
			billedLines++
		}
	}
	t.Logf("%d free requests: %d audit lines; %d billed: %d lines", free, freeLines, billed, billedLines)
	if freeLines >= free || billedLines != billed {
		t.Fatalf("free requests wrote %d of %d lines (want fewer), billed %d of %d (want all)", freeLines, free, billedLines, billed)
	}
}

// TestRelaySpentBeforeConfirm: a request for a credential whose budget is
// spent gets its 429 without a confirm prompt; a provider the laptop
// cannot reach gets a 502 that names nothing of the laptop's network.
func TestRelaySpentBeforeConfirm(t *testing.T) {
	fp := newFakeProvider(t)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close() // nothing listens there now
	routes, err := prov.NewRoutes(map[string]string{"anthropic": fp.URL, "openai": deadURL}, "--relay-upstream")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	askpass := filepath.Join(dir, "askpass")
	asked := filepath.Join(dir, "asked")
	if err := os.WriteFile(askpass, []byte("#!/bin/sh\necho x >>"+asked+"\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ta := startAgent(t, agent.Config{RelayRoutes: routes, Askpass: askpass})
	budget := apiCred("anthropic", "sk-ant-CONFIRM")
	budget.TokensPerDay, budget.Confirm = 10, true
	mustAdd(t, ta.client(t), budget)
	mustAdd(t, ta.client(t), apiCred("openai", "sk-DEAD"))
	hc := relayClient(t, ta.use)
	prompts := func() int { b, _ := os.ReadFile(asked); return strings.Count(string(b), "x") }
	for i, want := range []int{200, http.StatusTooManyRequests} {
		resp, err := hc.Post("http://relay/anthropic/v1/messages", "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("request %d: status %d, want %d", i, resp.StatusCode, want)
		}
	}
	if n := prompts(); n != 1 {
		t.Fatalf("%d confirm prompts, want 1 (none for the request past the budget)", n)
	}
	resp, err := hc.Post("http://relay/openai/chat/completions", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	host := strings.TrimPrefix(deadURL, "http://")
	if resp.StatusCode != http.StatusBadGateway || strings.Contains(string(body), host) || strings.Contains(string(body), "127.0.0.1") {
		t.Fatalf("unreachable provider: %d %s", resp.StatusCode, body)
	}
	if !strings.Contains(ta.audit.String(), host) {
		t.Fatalf("the laptop's audit log lacks the details:\n%s", ta.audit)
	}
}

// TestRelayTakenAway: a lock ends every relayed request in flight, a
// remove those of its provider, at once, and the records say why.
func TestRelayTakenAway(t *testing.T) {
	started := make(chan struct{}, 4)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {}\n\n")
		w.(http.Flusher).Flush()
		started <- struct{}{}
		<-r.Context().Done() // streams until the relay ends it
	}))
	defer up.Close()
	routes, err := prov.NewRoutes(map[string]string{"anthropic": up.URL, "openai": up.URL}, "--relay-upstream")
	if err != nil {
		t.Fatal(err)
	}
	ta := startAgent(t, agent.Config{RelayRoutes: routes})
	mustAdd(t, ta.client(t), apiCred("anthropic", "sk-ant-TAKEN"))
	mustAdd(t, ta.client(t), apiCred("openai", "sk-TAKEN"))
	hc := relayClient(t, ta.use)
	stream := func(provider string) chan error {
		ended := make(chan error, 1)
		go func() {
			resp, err := hc.Post("http://relay/"+provider+"/v1/x", "application/json", strings.NewReader(`{}`))
			if err != nil {
				ended <- err
				return
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			ended <- err
		}()
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("the request did not reach the provider")
		}
		return ended
	}
	within := func(what string, ended chan error) {
		t.Helper()
		select {
		case err := <-ended:
			if err == nil {
				t.Fatalf("%s: the stream ended cleanly, want it cut", what)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the stream still runs", what)
		}
	}
	a, o := stream("anthropic"), stream("openai")
	if err := ta.client(t).Remove("anthropic"); err != nil {
		t.Fatal(err)
	}
	within("remove", a)
	select {
	case err := <-o:
		t.Fatalf("removing anthropic ended the openai stream: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := ta.client(t).Lock([]byte("pw")); err != nil {
		t.Fatal(err)
	}
	within("lock", o)
	for _, why := range []string{"the owner removed the credential", "the owner locked the agent"} {
		if !strings.Contains(ta.audit.String(), "cancelled: "+why) {
			t.Errorf("no relay record says %q:\n%s", why, ta.audit)
		}
	}
}

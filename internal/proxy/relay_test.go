package proxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/agent"
	"github.com/llm-agent/llm-agent/internal/agenttest"
	"github.com/llm-agent/llm-agent/internal/providers"
	"github.com/llm-agent/llm-agent/internal/proxy"
	"github.com/llm-agent/llm-agent/memsafe"
	"github.com/llm-agent/llm-agent/protocol"
)

// relayAgent runs a real agent whose relayed requests for anthropic and
// openai go to upstream.
func relayAgent(t *testing.T, upstream string) *agenttest.Served {
	t.Helper()
	routes, err := providers.NewRoutes(map[string]string{"anthropic": upstream, "openai": upstream}, "--relay-upstream")
	if err != nil {
		t.Fatal(err)
	}
	return agenttest.Serve(t, agent.Config{Audit: agent.NewAuditLog(io.Discard, nil), Budget: memsafe.NewBudget(-1), RelayRoutes: routes})
}

func TestRelayMode(t *testing.T) {
	// The provider sends one event, then waits for the tool to have read
	// it before the next: an answer buffered anywhere on the way would
	// hang here.
	read := make(chan struct{})
	var gotKey, gotPath string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotKey, gotPath = r.Header.Get("X-Api-Key"), r.URL.RequestURI()
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "event: message_start\ndata: {\"type\":\"message_start\"}\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-read:
		case <-time.After(10 * time.Second):
			return
		}
		io.WriteString(w, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
	}))
	defer up.Close()
	s := relayAgent(t, up.URL)
	add(t, s.Admin, "anthropic", protocol.KindAPI, "key", "sk-ant-RELAYED")
	p, base := newProxy(t, proxy.Config{Socket: s.Use, Relay: true})

	req, _ := http.NewRequest("POST", base+"/anthropic/v1/messages?beta=true", strings.NewReader(`{"stream":true}`))
	req.Header.Set("X-Api-Key", p.DummyKey())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("first event: %v", err)
		}
		if strings.HasPrefix(line, "data:") {
			break
		}
	}
	close(read)
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), "message_stop") {
		t.Fatalf("the rest of the stream: %q", rest)
	}
	if gotKey != "sk-ant-RELAYED" || gotPath != "/v1/messages?beta=true" {
		t.Fatalf("provider got key %q path %q", gotKey, gotPath)
	}

	t.Run("wrong key", func(t *testing.T) {
		resp, _ := do(t, "POST", base+"/anthropic/v1/messages", map[string]string{"X-Api-Key": "sk-ant-REAL"})
		if resp.StatusCode != 401 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	t.Run("laptop refuses", func(t *testing.T) {
		resp, body := do(t, "POST", base+"/openai/v1/chat/completions", map[string]string{"Authorization": "Bearer " + p.DummyKey()})
		if resp.StatusCode != 403 || !strings.Contains(string(body), "no credential") {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	})
	t.Run("upstream override refused", func(t *testing.T) {
		if _, err := proxy.New(proxy.Config{Socket: s.Use, Relay: true, Upstreams: map[string]string{"openai": up.URL}}); err == nil {
			t.Fatal("--upstream with --relay was accepted")
		}
	})
}

// TestRelayOwnerGone: when the agent goes (the owner disconnects), every
// request in flight through the relay fails at once.
func TestRelayOwnerGone(t *testing.T) {
	started := make(chan struct{}, 8)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {}\n\n")
		w.(http.Flusher).Flush()
		started <- struct{}{}
		<-r.Context().Done() // streams until the relay cancels it
	}))
	defer up.Close()
	s := relayAgent(t, up.URL)
	add(t, s.Admin, "anthropic", protocol.KindAPI, "key", "sk-ant-RELAYED")
	p, base := newProxy(t, proxy.Config{Socket: s.Use, Relay: true})
	const n = 4
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			req, _ := http.NewRequest("POST", base+"/anthropic/v1/messages", strings.NewReader(`{}`))
			req.Header.Set("X-Api-Key", p.DummyKey())
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err
				return
			}
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			errs <- fmt.Errorf("stream ended: %v", err)
		}()
	}
	for i := 0; i < n; i++ {
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("requests did not reach the provider")
		}
	}
	gone := time.Now()
	s.Close()
	for i := 0; i < n; i++ {
		select {
		case <-errs:
		case <-time.After(5 * time.Second):
			t.Fatalf("a request still open %v after the agent went", time.Since(gone))
		}
	}
	t.Logf("all %d requests ended %v after the agent went", n, time.Since(gone))
}

package proxy_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/internal/proxy"
	"github.com/llm-agent/llm-agent/protocol"
)

// TestAttackRelayLongHeader: a tool behind proxy --relay sends one header
// field longer than the agent's HTTP/2 decoder takes. Sent before the
// agent's SETTINGS arrived (the first request on a connection), it made
// the agent end the whole relay connection (GOAWAY, COMPRESSION_ERROR),
// and every request starting on it; after, Go's client refused it
// itself. Either way the tool was told that the owner is not connected.
// The proxy must refuse it as too large (431), before the connection,
// and leave the other requests alone.
func TestAttackRelayLongHeader(t *testing.T) {
	streaming := make(chan struct{})
	finish := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/v1/stream" {
			io.WriteString(w, "data: one\n\n")
			w.(http.Flusher).Flush()
			close(streaming)
			select {
			case <-finish:
			case <-time.After(20 * time.Second):
			}
			io.WriteString(w, "data: two\n\n")
			return
		}
		io.WriteString(w, "{}")
	}))
	defer up.Close()
	s := relayAgent(t, up.URL)
	add(t, s.Admin, "anthropic", protocol.KindAPI, "key", "sk-ant-RELAYED")
	p, base := newProxy(t, proxy.Config{Socket: s.Use, Relay: true})
	long := map[string]string{"X-Api-Key": p.DummyKey(), "X-Long": strings.Repeat("a", 70000)}
	if resp, body := do(t, "POST", base+"/anthropic/v1/messages", long); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a header field of 70000 bytes, first on the connection: %d %s, want 431", resp.StatusCode, body)
	}

	other := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest("POST", base+"/anthropic/v1/stream", strings.NewReader("{}"))
		req.Header.Set("X-Api-Key", p.DummyKey())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			other <- err.Error()
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			b = append(b, " / "+err.Error()...)
		}
		other <- string(b)
	}()
	<-streaming

	if resp, body := do(t, "POST", base+"/anthropic/v1/messages", long); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a header field of 70000 bytes beside a stream: %d %s, want 431", resp.StatusCode, body)
	}
	close(finish)
	if got := <-other; got != "data: one\n\ndata: two\n\n" {
		t.Fatalf("the other tool's stream: %q", got)
	}
	resp, body := do(t, "POST", base+"/anthropic/v1/messages", map[string]string{"X-Api-Key": p.DummyKey()})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a request after: %d %s", resp.StatusCode, body)
	}
}

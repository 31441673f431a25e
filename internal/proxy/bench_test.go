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

// The benchmarks measure the proxy against a direct request to the same
// fake upstream in the same run, and report both and their ratio: the
// added latency per request (an agent exchange over its Unix socket and a
// second HTTP hop) and the streaming throughput. bench/proxy.sh runs them.

const streamBytes = 8 << 20

func benchRig(b *testing.B) (direct, proxied, dummy, sock string) {
	b.Helper()
	_, sock = startAgent(b)
	add(b, sock, "openai", protocol.KindAPI, "key", "sk-BENCH")
	line := "data: " + strings.Repeat("z", 4090) + "\n\n" // 4 KiB events
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/stream") {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"id":"chatcmpl-b","choices":[{"message":{"content":"hi"}}]}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for sent := 0; sent < streamBytes; sent += len(line) {
			io.WriteString(w, line)
			w.(http.Flusher).Flush()
		}
	}))
	b.Cleanup(up.Close)
	p, base := newProxy(b, proxy.Config{Socket: sock, Upstreams: map[string]string{"openai": up.URL + "/v1"}})
	return up.URL + "/v1", base + "/openai", p.DummyKey(), sock
}

// agentGet is the proxy's agent exchange alone: dial, get, close.
func agentGet(b *testing.B, sock string) {
	c, err := protocol.Dial(sock)
	if err != nil {
		b.Fatal(err)
	}
	cred, err := c.Get("openai", nil)
	c.Close()
	if err != nil {
		b.Fatal(err)
	}
	cred.Wipe()
}

func fetch(b *testing.B, c *http.Client, url, key string) int64 {
	req, _ := http.NewRequest("POST", url, strings.NewReader(`{"model":"m"}`))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("status %d", resp.StatusCode)
	}
	return n
}

// BenchmarkLatency: one small request, direct and through the proxy, per
// iteration.
func BenchmarkLatency(b *testing.B) {
	direct, proxied, dummy, sock := benchRig(b)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	fetch(b, c, direct+"/chat/completions", "sk-BENCH")
	fetch(b, c, proxied+"/chat/completions", dummy)
	var dt, pt, gt time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		fetch(b, c, direct+"/chat/completions", "sk-BENCH")
		t1 := time.Now()
		fetch(b, c, proxied+"/chat/completions", dummy)
		t2 := time.Now()
		agentGet(b, sock)
		dt, pt, gt = dt+t1.Sub(t0), pt+t2.Sub(t1), gt+time.Since(t2)
	}
	n := float64(b.N)
	b.ReportMetric(float64(gt.Microseconds())/n, "agent-get-µs")
	b.ReportMetric(float64(dt.Microseconds())/n, "direct-µs/req")
	b.ReportMetric(float64(pt.Microseconds())/n, "proxy-µs/req")
	b.ReportMetric(float64((pt-dt).Microseconds())/n, "added-µs/req")
	b.ReportMetric(float64(pt)/float64(dt), "latency-ratio")
}

// BenchmarkStream: an 8 MiB server-sent-event answer, direct and through
// the proxy, per iteration.
func BenchmarkStream(b *testing.B) {
	direct, proxied, dummy, _ := benchRig(b)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	var dt, pt time.Duration
	var bytes int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		bytes += fetch(b, c, direct+"/stream", "sk-BENCH")
		t1 := time.Now()
		fetch(b, c, proxied+"/stream", dummy)
		dt, pt = dt+t1.Sub(t0), pt+time.Since(t1)
	}
	mb := float64(bytes) / (1 << 20)
	b.ReportMetric(mb/dt.Seconds(), "direct-MiB/s")
	b.ReportMetric(mb/pt.Seconds(), "proxy-MiB/s")
	b.ReportMetric(dt.Seconds()/pt.Seconds(), "throughput-ratio")
}

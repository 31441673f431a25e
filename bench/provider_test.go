package bench

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeProvider stands in for an LLM provider's API: every request gets a
// server-sent-event stream, its first event after a think time (the
// model's time to first token), then the rest as fast as it can, flushed
// event by event. A request must carry one of keys (in x-api-key or as a
// Bearer token), or say X-Bench-Direct: 1 (the direct requests the proxy
// is compared with, which hold no credential); others get a 401. The
// answer is X-Bench-Size bytes long (default smallAnswer).
type fakeProvider struct {
	addr  string
	think time.Duration
	keys  map[string]bool
}

// smallAnswer is the length of a small streamed answer: a few events.
const smallAnswer = 600

// eventSize bounds one event of a long answer.
const eventSize = 16 << 10

func startProvider(tb testing.TB, think time.Duration, keys ...string) *fakeProvider {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	f := &fakeProvider{addr: ln.Addr().String(), think: think, keys: map[string]bool{}}
	for _, k := range keys {
		f.keys[k] = true
	}
	srv := &http.Server{Handler: f, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Close() })
	return f
}

func (f *fakeProvider) authorized(r *http.Request) bool {
	if r.Header.Get("X-Bench-Direct") == "1" {
		return true
	}
	if f.keys[r.Header.Get("X-Api-Key")] {
		return true
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && f.keys[tok]
}

func (f *fakeProvider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	if !f.authorized(r) {
		http.Error(w, `{"error":"not the bench credential"}`, http.StatusUnauthorized)
		return
	}
	size := smallAnswer
	if v, err := strconv.Atoi(r.Header.Get("X-Bench-Size")); err == nil && v > 0 {
		size = v
	}
	time.Sleep(f.think)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	fl := w.(http.Flusher)
	first := true
	for sent := 0; sent < size; {
		n := min(size-sent, eventSize)
		if first {
			n = min(n, 100) // a small first event, as a first token is
			first = false
		}
		ev := event(n)
		if _, err := io.WriteString(w, ev); err != nil {
			return
		}
		fl.Flush()
		sent += len(ev)
	}
}

// event is one server-sent event of about n bytes.
func event(n int) string {
	const head, tail = "data: {\"t\":\"", "\"}\n\n"
	pad := max(n-len(head)-len(tail), 1)
	return head + strings.Repeat("x", pad) + tail
}

// providerURL is a base URL for addr.
func providerURL(addr string) string { return fmt.Sprintf("http://%s", addr) }

package agent_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/agent"
	prov "github.com/llm-agent/llm-agent/internal/providers"
	"github.com/llm-agent/llm-agent/internal/relay"
	"github.com/llm-agent/llm-agent/protocol"
)

// Attacks on the relay door from the server side (root or a co-tenant who
// reaches the forwarded socket, or a tool behind proxy --relay): answers
// broken off to hide them from a budget and the audit log, answers never
// read to hold the laptop's places, connections that never speak or never
// end, and requests cancelled before the provider answered.

// relayAttackAgent serves an agent whose anthropic and groq routes go to
// handler, with an anthropic credential and a groq one under a daily
// budget of budget tokens.
func relayAttackAgent(t *testing.T, handler http.HandlerFunc, cfg agent.Config, budget uint64) *testAgent {
	t.Helper()
	up := httptest.NewServer(handler)
	t.Cleanup(up.Close)
	routes, err := prov.NewRoutes(map[string]string{"anthropic": up.URL, "groq": up.URL}, "--relay-upstream")
	if err != nil {
		t.Fatal(err)
	}
	cfg.RelayRoutes = routes
	ta := startAgent(t, cfg)
	mustAdd(t, ta.client(t), apiCred("anthropic", "sk-ant-ATTACK17-SECRET"))
	b := apiCred("groq", "gsk-ATTACK17-SECRET")
	b.TokensPerDay = budget
	mustAdd(t, ta.client(t), b)
	return ta
}

// waitAudit waits until the audit log holds want, or fails.
func waitAudit(t *testing.T, ta *testAgent, want string) {
	t.Helper()
	for end := time.Now().Add(20 * time.Second); !strings.Contains(ta.audit.String(), want); {
		if time.Now().After(end) {
			t.Fatalf("no %s in the audit log:\n%s", want, ta.audit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitServed retries a relayed GET until the agent relays it (the
// provider's 200) rather than refusing it as too busy, or fails.
func waitServed(t *testing.T, hc *http.Client, url string) {
	t.Helper()
	last := 0
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		resp, err := hc.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if last = resp.StatusCode; last == http.StatusOK {
			return
		}
	}
	t.Fatalf("the agent still answers %d: a request nobody reads holds its place", last)
}

// TestAttackRelayBrokenAnswer: the server side reads the provider's
// answer and resets the stream before its end. ReverseProxy then aborts
// the handler with a panic, which skipped the record: no audit line for a
// call made with the owner's credential, and nothing counted against the
// daily budget, which could be spent without end that way.
func TestAttackRelayBrokenAnswer(t *testing.T) {
	ta := relayAttackAgent(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: "+strings.Repeat("x", 4000)+"\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done() // the rest would come once the tool reset
	}, agent.Config{}, 100)
	hc := relayClient(t, ta.use)
	resp, err := hc.Post("http://relay/groq/chat/completions", "application/json", strings.NewReader(`{"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if line, _ := bufio.NewReader(resp.Body).ReadString('\n'); len(line) < 4000 {
		t.Fatalf("the first event: %d bytes", len(line))
	}
	resp.Body.Close() // RST_STREAM: the content is had, the end is not
	waitAudit(t, ta, `"op":"relay","provider":"groq","decision":"error"`)
	resp, err = hc.Post("http://relay/groq/chat/completions", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("after an answer of about 1000 tokens broken off, a budget of 100: status %d, want 429", resp.StatusCode)
	}
	if strings.Contains(ta.audit.String(), "SECRET") {
		t.Fatal("the audit log holds the credential")
	}
}

// TestAttackRelayZeroWindow: the server side opens its stream with a zero
// flow-control window and never reads the answer. The handler blocked in
// its write for as long as the connection lived, past MaxDuration,
// holding one of the agent's MaxInFlight places: a few such requests
// refused every other relayed request, from every server, for ever.
func TestAttackRelayZeroWindow(t *testing.T) {
	stalled := make(chan struct{})
	ta := relayAttackAgent(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/files" {
			close(stalled)
		}
		io.WriteString(w, `{"data":[]}`)
	}, agent.Config{RelayLimits: relay.Limits{MaxInFlight: 1, MaxDuration: time.Second}}, 0)
	h := newRawH2(t, rawRelay(t, ta.use), 0x4, 0) // SETTINGS_INITIAL_WINDOW_SIZE 0
	h.get(t, 1, "/anthropic/v1/files")
	go h.closedBy(time.Now().Add(time.Minute)) // answers pings, reads nothing of the stream
	<-stalled
	waitServed(t, relayClient(t, ta.use), "http://relay/anthropic/v1/models")
	waitAudit(t, ta, `"decision":"error","reason":"cancelled`)
}

// TestAttackRelayUnreadConnection: the server side stops reading the
// connection itself and keeps it alive with frames that ask no answer
// (PRIORITY), so that neither the keep-alive pings nor the stream's own
// time limit can end it: the agent's writes stall and the request holds
// its place. The connection must end once nothing can be written to it.
func TestAttackRelayUnreadConnection(t *testing.T) {
	big := strings.Repeat("y", 8<<20)
	stalled := make(chan struct{})
	ta := relayAttackAgent(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/models" {
			io.WriteString(w, `{"data":[]}`)
			return
		}
		close(stalled)
		io.WriteString(w, big)
	}, agent.Config{RelayLimits: relay.Limits{MaxInFlight: 1, Stall: time.Second}}, 0)
	h := newRawH2(t, rawRelay(t, ta.use), 0x4, 1<<31-1)
	h.frame(t, h2WindowUpdate, 0, 0, binary.BigEndian.AppendUint32(nil, 1<<31-1-65535))
	h.get(t, 1, "/anthropic/v1/files")
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				h.frame(nil, h2Priority, 0, 3, []byte{0, 0, 0, 0, 16})
			}
		}
	}()
	<-stalled
	waitServed(t, relayClient(t, ta.use), "http://relay/anthropic/v1/models")
}

// TestAttackRelaySilent: a server side that upgrades a connection and
// then sends nothing, part of the preface, or the preface and no request
// held the connection, its goroutines and (through the guard) a relay
// place for ever: the agent's idle time-out does not reach a relay
// connection, and a busy connection is never closed at the limit.
func TestAttackRelaySilent(t *testing.T) {
	ta := relayAttackAgent(t, func(w http.ResponseWriter, r *http.Request) {}, agent.Config{
		RelayLimits: relay.Limits{Handshake: 200 * time.Millisecond, Idle: 200 * time.Millisecond}}, 0)
	for _, c := range []struct {
		name  string
		start func(net.Conn) *rawH2
	}{
		{"nothing", func(c net.Conn) *rawH2 { return &rawH2{c: c} }},
		{"half a preface", func(c net.Conn) *rawH2 {
			io.WriteString(c, "PRI * HTTP/2.0\r\n")
			return &rawH2{c: c}
		}},
		{"no request", func(c net.Conn) *rawH2 { return newRawH2(t, c) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := c.start(rawRelay(t, ta.use))
			if !h.closedBy(time.Now().Add(10 * time.Second)) {
				t.Fatal("the relay connection is still open")
			}
		})
	}
}

// TestAttackRelayConnectionFlood: relay connections with no request open
// are idle connections like any other: at the agent's connection limit
// the longest idle is closed for a new one. Before, a relay connection
// counted as busy from its upgrade on, so a server side could hold any
// number of them beyond MaxConns. One with a request open stays.
func TestAttackRelayConnectionFlood(t *testing.T) {
	release, held := make(chan struct{}), make(chan struct{})
	ta := relayAttackAgent(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			close(held)
			<-release
		}
		io.WriteString(w, "{}")
	}, agent.Config{MaxConns: 4}, 0)
	defer close(release)

	busy := relayClient(t, ta.use)
	answered := make(chan error, 1)
	go func() {
		resp, err := busy.Get("http://relay/anthropic/hold")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		answered <- err
	}()
	<-held

	idle := newRawH2(t, rawRelay(t, ta.use))
	closed := make(chan bool, 1)
	go func() { closed <- idle.closedBy(time.Now().Add(20 * time.Second)) }()
	for i := 0; i < 8; i++ {
		if _, err := newClient(ta.useRaw(t)).Status(); err != nil {
			t.Fatalf("status on connection %d: %v", i, err)
		}
	}
	if !<-closed {
		t.Fatal("an idle relay connection stayed open past the connection limit")
	}
	select {
	case err := <-answered:
		t.Fatalf("the relay connection with a request open was closed: %v", err)
	default:
	}
}

// TestAttackRelayNoAnswer: a request that the server side cancels before
// the provider answers was recorded with status 200, and one the provider
// never answered within MaxDuration got an empty 200 answer. One the
// server side cancels before its body is whole, which the provider cannot
// act on, wrote an "error" record, which the audit log's rate limit lets
// through: a server side could write them without end, at no cost, by
// sending headers and a reset.
func TestAttackRelayNoAnswer(t *testing.T) {
	arrived := make(chan struct{}, 1)
	ta := relayAttackAgent(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/partial" {
			arrived <- struct{}{}
		}
		io.Copy(io.Discard, r.Body) // then the end of the call ends r.Context
		select {
		case arrived <- struct{}{}:
		default:
		}
		<-r.Context().Done()
	}, agent.Config{RelayLimits: relay.Limits{MaxDuration: 500 * time.Millisecond}}, 0)
	hc := relayClient(t, ta.use)

	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://relay/anthropic/v1/messages", strings.NewReader("{}"))
		go func() {
			<-arrived
			cancel()
		}()
		if _, err := hc.Do(req); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled request: %v", err)
		}
		waitAudit(t, ta, `"decision":"error","reason":"cancelled: the server side went away before the provider answered"`)
		if strings.Contains(ta.audit.String(), `"status":200`) {
			t.Fatalf("a request the provider never answered is recorded with status 200:\n%s", ta.audit)
		}
	})
	t.Run("cancelled mid-body", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		body, more := io.Pipe()
		defer more.Close()
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://relay/anthropic/v1/partial", body)
		go func() {
			more.Write([]byte(`{"model":`))
			<-arrived
			cancel()
		}()
		if _, err := hc.Do(req); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled request: %v", err)
		}
		waitAudit(t, ta, `"decision":"deny","reason":"the server side went away before its request reached anthropic"`)
		if n := strings.Count(ta.audit.String(), `"decision":"error"`); n != 1 {
			t.Fatalf("%d error records, want the one of the whole request cancelled:\n%s", n, ta.audit)
		}
	})
	t.Run("time limit", func(t *testing.T) {
		resp, err := hc.Post("http://relay/anthropic/v1/messages", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(string(body), "did not answer within") {
			t.Fatalf("no answer within MaxDuration: %d %q, want 504 and why", resp.StatusCode, body)
		}
	})
}

// TestAttackRelayHostsAndLocalOnly: a relayed request passes the checks
// of a get on its own connection: a --local-only credential is not
// relayed to a forwarded connection, and a -h credential only on a
// connection whose verified hops match.
func TestAttackRelayHostsAndLocalOnly(t *testing.T) {
	hostA, hostB := newHostKey(t), newHostKey(t)
	ta := relayAttackAgent(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "{}") }, agent.Config{}, 0)
	lo := apiCred("openrouter", "sk-or-LOCAL")
	lo.LocalOnly = true
	mustAdd(t, ta.client(t), lo)
	onlyA := apiCred("anthropic", "sk-ant-ONLY-A")
	onlyA.Destinations = []protocol.Chain{{{Host: "hostA", Keys: [][]byte{hostA.blob}}}}
	mustAdd(t, ta.client(t), onlyA) // replaces the unconstrained one
	clientVia := func(hosts ...hostKey) *http.Client {
		tr := relay.NewClientTransport(func(ctx context.Context) (net.Conn, error) {
			c := dialRaw(t, ta.use)
			for _, h := range hosts {
				if !bind(t, c, h.bindFrame(t, true)) {
					t.Error("valid session-bind refused")
				}
			}
			return relay.Upgrade(ctx, c, nil, 5*time.Second)
		})
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr}
	}
	for _, c := range []struct {
		name  string
		hosts []hostKey
		path  string
		want  int
	}{
		{"local-only", nil, "/openrouter/chat/completions", http.StatusForbidden},
		{"-h A, no bind", nil, "/anthropic/v1/messages", http.StatusForbidden},
		{"-h A, bound to B", []hostKey{hostB}, "/anthropic/v1/messages", http.StatusForbidden},
		{"-h A, bound to B then A", []hostKey{hostB, hostA}, "/anthropic/v1/messages", http.StatusForbidden},
		{"-h A, bound to A", []hostKey{hostA}, "/anthropic/v1/messages", http.StatusOK},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, err := clientVia(c.hosts...).Post("http://relay"+c.path, "application/json", strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, c.want)
			}
		})
	}
}

// TestAttackRelayOpenCap: a server side opens relay connections with a
// zero window and fills each with requests for no route: every refusal
// waits on a window that never opens, a handler, its goroutine and its
// buffers per request, 100 on each of any number of connections (300
// such connections took 250 MB). Past MaxOpen requests open over all,
// the agent resets a request unanswered rather than hold it.
func TestAttackRelayOpenCap(t *testing.T) {
	ta := relayAttackAgent(t, func(w http.ResponseWriter, r *http.Request) {}, agent.Config{
		RelayLimits: relay.Limits{MaxOpen: 20}}, 0)
	const conns, streams = 4, 100
	before := runtime.NumGoroutine()
	for i := 0; i < conns; i++ {
		h := newRawH2(t, rawRelay(t, ta.use), 0x4, 0)
		for s := uint32(1); s < 2*streams; s += 2 {
			h.get(t, s, "/nowhere/x")
		}
		// Each request is either answered (its headers; its body waits on
		// the window) or reset: then the agent has dealt with it.
		seen := map[uint32]bool{}
		for len(seen) < streams {
			f := h.read(time.Now().Add(20 * time.Second))
			if f == nil {
				t.Fatalf("connection %d: %d of %d requests dealt with: %v", i, len(seen), streams, h.err)
			}
			if f.typ == h2Headers || f.typ == h2RSTStream {
				seen[f.stream] = true
			}
		}
	}
	if grown := runtime.NumGoroutine() - before; grown > 100 {
		t.Fatalf("%d more goroutines for %d unread refusals, over a limit of 20 open requests", grown, conns*streams)
	}
}

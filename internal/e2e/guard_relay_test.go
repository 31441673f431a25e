package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/internal/peercred"
	"github.com/llm-agent/llm-agent/internal/relay"
	"github.com/llm-agent/llm-agent/protocol"
)

// grdRelayClientEnv makes this test binary, copied into the shared
// account and run in the owner's login, the relay client of
// TestGuardRelay: it makes its requests through the guard at
// LLM_AUTH_SOCK and exits, before TestMain builds anything.
const grdRelayClientEnv = "LLM_E2E_RELAY_CLIENT"

func init() {
	if os.Getenv(grdRelayClientEnv) != "" {
		os.Exit(grdRelayClient(os.Getenv("LLM_AUTH_SOCK")))
	}
}

// grdRelayAnswer is the fake provider's answer.
const grdRelayAnswer = "GRD-RELAY-ANSWER"

// grdRelayRequests is how many requests each transport of the relay
// client makes at once.
const grdRelayRequests = 3

// TestGuardRelay: relay@llm-agent through the guard with a real sshd.
// A client in the owner's login speaks HTTP/2 (net/http, prior knowledge)
// over connections that relay@llm-agent turned into streams: one transport
// waits for the agent's SSH_AGENT_SUCCESS before it speaks, the other
// writes the HTTP/2 preface right after the relay frame. Every request
// reaches the fake provider with the owner's key, which the laptop put in
// and the client never saw; a relay the agent refuses leaves an agent
// connection; the guard logs each relay connection, never a credential.
func TestGuardRelay(t *testing.T) {
	up := startFakeUpstream(t, grdRelayAnswer)
	r := newGrdRig(t, "relay")
	a := StartAgent(t, AgentOptions{Debug: true, Audit: true, Args: []string{"--relay-upstream", "anthropic=" + up.URL}})
	token := fwdToken(t, "sk-ant-grdrelay")
	if res := a.Client(t, token, "add", "anthropic"); res.Code != 0 {
		t.Fatalf("add on the laptop: %+v", res)
	}
	owner := r.login("owner", a.Sock)
	g := owner.startGuard()
	guardLog := filepath.Join(filepath.Dir(filepath.Dir(g.Sock)), "guard.log")

	// This test binary, where the account can run it.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(r.user.Home, "relay-client")
	copyFile(t, self, exe, 0o755)
	if err := os.Chown(exe, r.user.UID, r.user.GID); err != nil {
		t.Fatal(err)
	}

	out, rc := owner.Run(grdRelayClientEnv + `=1 "$HOME/relay-client" 2>"$HOME/relay-client.err"`)
	errb, _ := os.ReadFile(filepath.Join(r.user.Home, "relay-client.err"))
	if strings.Contains(out, token) || strings.Contains(string(errb), token) {
		t.Fatal("the relay client saw the owner's key")
	}
	t.Logf("relay client: exit %d\n%s\nstderr: %s", rc, out, errb)
	if rc != 0 {
		t.Fatalf("relay client: exit %d", rc)
	}
	for _, mode := range []string{"after-reply", "pipelined"} {
		if n := strings.Count(out, "@@ok "+mode+" "); n != grdRelayRequests {
			t.Errorf("%s: %d requests answered over HTTP/2 with the provider's answer, want %d", mode, n, grdRelayRequests)
		}
	}
	if !strings.Contains(out, "@@refused-then-status ok") {
		t.Errorf("a relay the agent refused: the connection did not go on as an agent connection")
	}
	if n, _ := up.sawSecret(token); n != 2*grdRelayRequests {
		t.Errorf("the provider saw the owner's key in %d requests, want %d", n, 2*grdRelayRequests)
	}

	logb, _ := os.ReadFile(guardLog)
	opened, refused := 0, 0
	for _, l := range strings.Split(string(logb), "\n") {
		if strings.HasPrefix(l, "guard: relay connection for pid ") {
			switch {
			case strings.Contains(l, " opened ("):
				opened++
			case strings.Contains(l, " refused by the agent: "):
				refused++
			}
		}
	}
	if opened < 2 || refused != 1 {
		t.Errorf("guard.log has %d relay connections opened and %d refused by the agent, want at least 2 and 1:\n%s", opened, refused, logb)
	}
	relayed := 0
	for _, e := range readAudit(t, a.Audit) {
		if e.Op == "relay" && e.Decision == "allow" {
			relayed++
		}
	}
	if relayed != 2*grdRelayRequests {
		t.Errorf("the laptop's audit log has %d allowed relay records, want %d", relayed, 2*grdRelayRequests)
	}
	grdNoSecretIn(t, token, guardLog)
}

// grdRelayClient is the relay client's main: one line per request on
// stdout, errors on stderr; the exit status says whether all went well.
func grdRelayClient(sock string) int {
	if sock == "" {
		fmt.Fprintln(os.Stderr, "relay client: LLM_AUTH_SOCK is not set")
		return 1
	}
	ok := true
	dials := map[string]func(context.Context) (net.Conn, error){
		"after-reply": func(ctx context.Context) (net.Conn, error) {
			c, err := peercred.DialOwned(ctx, sock)
			if err != nil {
				return nil, err
			}
			return relay.Upgrade(ctx, c, nil, 30*time.Second)
		},
		"pipelined": func(ctx context.Context) (net.Conn, error) {
			c, err := peercred.DialOwned(ctx, sock)
			if err != nil {
				return nil, err
			}
			if _, err := c.Write((&protocol.RelayRequest{Protocol: protocol.RelayH2}).Marshal()); err != nil {
				c.Close()
				return nil, err
			}
			return &pipelinedConn{Conn: c}, nil
		},
	}
	for _, mode := range []string{"after-reply", "pipelined"} {
		ok = grdRelayRequestsOver(mode, dials[mode]) && ok
	}

	// A relay the agent refuses (a stream protocol it does not speak)
	// leaves an agent connection, through the guard too.
	c, err := protocol.DialOwned(sock, 5*time.Second)
	if err != nil {
		fmt.Fprintf(os.Stderr, "refused relay: %v\n", err)
		return 1
	}
	defer c.Close()
	reply, err := c.Call((&protocol.RelayRequest{Protocol: "h3"}).Marshal())
	switch {
	case err != nil:
		fmt.Fprintf(os.Stderr, "refused relay: %v\n", err)
		ok = false
	case reply[0] != protocol.MsgExtensionFailure:
		fmt.Fprintf(os.Stderr, "refused relay: reply %d, want a failure\n", reply[0])
		ok = false
	default:
		if _, err := c.Status(); err != nil {
			fmt.Fprintf(os.Stderr, "status after a refused relay: %v\n", err)
			ok = false
		} else {
			fmt.Println("@@refused-then-status ok")
		}
	}
	if !ok {
		return 1
	}
	return 0
}

// grdRelayRequestsOver makes grdRelayRequests requests at once over an
// HTTP/2-only transport whose connections dial makes.
func grdRelayRequestsOver(mode string, dial func(context.Context) (net.Conn, error)) bool {
	protos := new(http.Protocols)
	protos.SetUnencryptedHTTP2(true)
	tr := &http.Transport{
		Protocols: protos,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dial(ctx)
		},
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := true
	for i := 0; i < grdRelayRequests; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			line, err := grdRelayOne(client)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				fmt.Fprintf(os.Stderr, "%s request %d: %v\n", mode, i, err)
				ok = false
				return
			}
			fmt.Printf("@@ok %s %s\n", mode, line)
		}()
	}
	wg.Wait()
	return ok
}

func grdRelayOne(client *http.Client) (string, error) {
	req, err := http.NewRequest(http.MethodPost, "http://agent/anthropic/v1/messages",
		strings.NewReader(`{"model":"claude-fake","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Anthropic-Version", "2023-06-01")
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), grdRelayAnswer) {
		return "", fmt.Errorf("%s %s, %d bytes, with the answer: %v", resp.Proto, resp.Status, len(body), strings.Contains(string(body), grdRelayAnswer))
	}
	return resp.Proto + " " + resp.Status, nil
}

// pipelinedConn is a connection on which the relay frame was sent and its
// reply not yet read: the first Read reads it, and fails unless the agent
// accepted, so the HTTP/2 client writes its preface before the reply.
type pipelinedConn struct {
	net.Conn
	once sync.Once
	err  error
}

func (c *pipelinedConn) Read(p []byte) (int, error) {
	c.once.Do(func() {
		reply, err := protocol.ReadFrame(c.Conn, protocol.MaxReply)
		switch {
		case err != nil:
			c.err = fmt.Errorf("reading the relay reply: %w", err)
		case reply[0] != protocol.MsgSuccess:
			c.err = errors.New("the agent refused the relay")
		}
	})
	if c.err != nil {
		return 0, c.err
	}
	return c.Conn.Read(p)
}

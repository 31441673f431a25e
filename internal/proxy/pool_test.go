package proxy_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/internal/proxy"
	"github.com/llm-agent/llm-agent/protocol"
)

// poolRig is a proxy whose agent sits behind a relay (as the forwarded
// socket sits behind sshd), so that the tests see the connections it
// makes and can cut them. The relay runs in the test process, so the
// test's child processes are its "login sessions": the rig starts one,
// and logout ends it.
type poolRig struct {
	logout    func()
	agentSock string
	front     string // the socket the proxy dials
	relay     *agentRelay
	proxy     *proxy.Proxy
	url       string
	hdr       map[string]string
	seen      func() []seen
}

func newPoolRig(t *testing.T, askpass string, cfg proxy.Config) *poolRig {
	t.Helper()
	_, sock := startAgentAsking(t, askpass)
	add(t, sock, "anthropic", protocol.KindAPI, "key", "sk-ant-POOL")
	up, seen := startUpstream(t)
	front := filepath.Join(t.TempDir(), "forwarded.sock")
	r := &poolRig{agentSock: sock, front: front, relay: relay(t, front, sock), seen: seen, logout: loginSession(t)}
	cfg.Socket = front
	cfg.Upstreams = map[string]string{"anthropic": up.URL, "slow": up.URL}
	r.proxy, r.url = newProxy(t, cfg)
	r.hdr = map[string]string{"x-api-key": r.proxy.DummyKey()}
	return r
}

// loginSession starts a child process of the test, as sshd has one per
// login session; the returned func ends it and waits for it.
func loginSession(t *testing.T) func() {
	t.Helper()
	cmd := exec.Command("sleep", "3600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	end := func() {
		once.Do(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
	}
	t.Cleanup(end)
	return end
}

// request sends one request to provider's route and returns the status
// and the error message, if any.
func (r *poolRig) request(t *testing.T, provider string) (int, string) {
	t.Helper()
	resp, body := do(t, "POST", r.url+"/"+provider+"/v1/messages", r.hdr)
	if resp.StatusCode == 200 {
		return 200, ""
	}
	_, msg := errorBody(t, body)
	return resp.StatusCode, msg
}

// eventually waits up to 5 s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after 5 s: %s", what)
		}
	}
}

// Requests reuse the agent connections the proxy holds: ten requests one
// after another open two (the first request's, and the spare dialled when
// the second took the first), and each still asks the agent. Closing the
// proxy closes them.
func TestPoolReuse(t *testing.T) {
	r := newPoolRig(t, "", proxy.Config{})
	for i := 0; i < 10; i++ {
		if code, msg := r.request(t, "anthropic"); code != 200 {
			t.Fatalf("request %d: %d %s", i+1, code, msg)
		}
	}
	if n := r.relay.Accepted(); n > 2 {
		t.Errorf("ten requests opened %d agent connections; want the first and one spare", n)
	}
	if got := r.seen(); len(got) != 10 || got[9].Header.Get("X-Api-Key") != "sk-ant-POOL" {
		t.Errorf("the upstream got %d requests; want 10 with the credential", len(got))
	}
	r.proxy.Close(time.Second)
	eventually(t, "the closed proxy still holds agent connections", func() bool { return r.relay.Open() == 0 })
}

// Once the login sessions of the socket's server have ended, the held
// connections are closed at once, without a request (ssh waits for every
// open agent channel: a held one would keep the owner's ssh open after
// logout), and connections are no longer held.
func TestPoolLogout(t *testing.T) {
	r := newPoolRig(t, "", proxy.Config{})
	for i := 0; i < 3; i++ {
		if code, msg := r.request(t, "anthropic"); code != 200 {
			t.Fatalf("request %d: %d %s", i+1, code, msg)
		}
	}
	if n := r.relay.Open(); n == 0 {
		t.Fatal("no agent connection held during the login")
	}
	r.logout()
	eventually(t, "agent connections still held after the logout", func() bool { return r.relay.Open() == 0 })
	if code, msg := r.request(t, "anthropic"); code != 200 {
		t.Fatalf("after the logout: %d %s", code, msg)
	}
	eventually(t, "an agent connection held after the logout", func() bool { return r.relay.Open() == 0 })
}

// With MaxIdle negative every request has a fresh connection, as before
// connections were held.
func TestPoolOff(t *testing.T) {
	r := newPoolRig(t, "", proxy.Config{MaxIdle: -1})
	for i := 0; i < 3; i++ {
		if code, msg := r.request(t, "anthropic"); code != 200 {
			t.Fatalf("request %d: %d %s", i+1, code, msg)
		}
	}
	if n := r.relay.Accepted(); n != 3 {
		t.Errorf("three requests opened %d agent connections; want 3", n)
	}
}

// A held connection is closed once unused for IdleTime.
func TestPoolIdleTime(t *testing.T) {
	r := newPoolRig(t, "", proxy.Config{IdleTime: 50 * time.Millisecond})
	if code, msg := r.request(t, "anthropic"); code != 200 {
		t.Fatalf("%d %s", code, msg)
	}
	eventually(t, "an idle agent connection is still held", func() bool { return r.relay.Open() == 0 })
	if code, msg := r.request(t, "anthropic"); code != 200 {
		t.Fatalf("after the idle time: %d %s", code, msg)
	}
}

// flakyConn is an agent connection a test can break where the proxy's
// look at a held connection cannot see it (the socket itself stays open):
// only using it tells.
type flakyConn struct {
	*net.UnixConn
	failWrite, failRead *atomic.Bool
}

func (f *flakyConn) Write(b []byte) (int, error) {
	if f.failWrite.Load() {
		return 0, syscall.EPIPE
	}
	return f.UnixConn.Write(b)
}

func (f *flakyConn) Read(b []byte) (int, error) {
	if f.failRead.Load() {
		return 0, net.ErrClosed
	}
	return f.UnixConn.Read(b)
}

// A held connection that turns out dead is dropped. When it died before
// any byte of the get went out, the get goes again on a fresh connection
// and the request succeeds; when the get was sent, the agent may have seen
// it (and asked the owner), so the request fails rather than asking twice.
func TestPoolDeadConnection(t *testing.T) {
	for _, tc := range []struct {
		name      string
		kill      func(t *testing.T, r *poolRig, held *flakyConn)
		wantCode  int
		wantMsg   string
		wantDials int // for the second request
	}{
		{"closed at the agent's end, seen before use", func(t *testing.T, r *poolRig, _ *flakyConn) {
			r.relay.Drop()
			eventually(t, "the relay's connections are still open", func() bool { return r.relay.Open() == 0 })
		}, 200, "", 1},
		{"dead unseen, nothing written", func(_ *testing.T, _ *poolRig, held *flakyConn) { held.failWrite.Store(true) }, 200, "", 1},
		{"dead after the get was written", func(_ *testing.T, _ *poolRig, held *flakyConn) { held.failRead.Store(true) }, 503, "the agent hung up", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var dials atomic.Int64
			var mu sync.Mutex
			var flaky []*flakyConn
			var r *poolRig
			dial := func(ctx context.Context) (net.Conn, error) {
				var d net.Dialer
				c, err := d.DialContext(ctx, "unix", r.front)
				if err != nil {
					return nil, err
				}
				dials.Add(1)
				f := &flakyConn{UnixConn: c.(*net.UnixConn), failWrite: new(atomic.Bool), failRead: new(atomic.Bool)}
				mu.Lock()
				flaky = append(flaky, f)
				mu.Unlock()
				return f, nil
			}
			// One held connection, so no spare: the dials counted are
			// the requests'.
			r = newPoolRig(t, "", proxy.Config{Dial: dial, MaxIdle: 1})
			if code, msg := r.request(t, "anthropic"); code != 200 {
				t.Fatalf("first request: %d %s", code, msg)
			}
			mu.Lock()
			held := flaky[0]
			mu.Unlock()
			before := dials.Load()
			tc.kill(t, r, held)
			code, msg := r.request(t, "anthropic")
			t.Logf("%d %s", code, msg)
			if code != tc.wantCode || !strings.Contains(msg, tc.wantMsg) {
				t.Errorf("the request on the dead connection: %d %q; want %d %q", code, msg, tc.wantCode, tc.wantMsg)
			}
			if n := dials.Load() - before; n != int64(tc.wantDials) {
				t.Errorf("it dialled %d times; want %d", n, tc.wantDials)
			}
			if code, msg := r.request(t, "anthropic"); code != 200 {
				t.Errorf("the request after: %d %s", code, msg)
			}
		})
	}
}

// confirmRig is a pool rig whose "slow" credential asks the owner, through
// an askpass that waits until release is called and then refuses: a get
// held in a confirm prompt, as for the 25 s an owner may take.
type confirmRig struct {
	*poolRig
	asked   string // exists while the askpass runs
	release func()
}

func newConfirmRig(t *testing.T) *confirmRig {
	t.Helper()
	dir := t.TempDir()
	asked, answer := filepath.Join(dir, "asked"), filepath.Join(dir, "answer")
	askpass := filepath.Join(dir, "askpass")
	// It also gives up when the test's directory goes, or after a minute:
	// it must not outlive the test.
	script := "#!/bin/sh\ntouch '" + asked + "'\ni=0\nwhile [ ! -e '" + answer + "' ] && [ -d '" + dir + "' ] && [ $i -lt 3000 ]; do sleep 0.02; i=$((i+1)); done\nexit 1\n"
	if err := os.WriteFile(askpass, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release := func() { once.Do(func() { os.WriteFile(answer, nil, 0o600) }) }
	t.Cleanup(release)
	r := &confirmRig{poolRig: newPoolRig(t, askpass, proxy.Config{}), asked: asked, release: release}
	c, err := protocol.Dial(r.agentSock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Add(&protocol.AddRequest{
		Credential:  protocol.Credential{Provider: "slow", Kind: protocol.KindAPI, Fields: []protocol.Field{{Name: protocol.FieldKey, Value: []byte("sk-SLOW")}}},
		Constraints: protocol.Constraints{Confirm: true}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// held starts a request whose get waits in the confirm prompt and returns
// once the prompt is up; the request's status and message arrive on the
// channel.
func (r *confirmRig) held(t *testing.T) <-chan [2]string {
	t.Helper()
	done := make(chan [2]string, 1)
	go func() {
		resp, body := do(t, "POST", r.url+"/slow/v1/messages", r.hdr)
		msg := ""
		if resp.StatusCode != 200 {
			_, msg = errorBody(t, body)
		}
		done <- [2]string{resp.Status, msg}
	}()
	eventually(t, "the confirm prompt did not come up", func() bool { _, err := os.Stat(r.asked); return err == nil })
	return done
}

// A get held in a confirm prompt holds up no other request: 8 requests at
// once all finish while it waits.
func TestPoolConcurrentNotSerialised(t *testing.T) {
	r := newConfirmRig(t)
	if code, msg := r.request(t, "anthropic"); code != 200 {
		t.Fatalf("%d %s", code, msg)
	}
	slow := r.held(t)
	var wg sync.WaitGroup
	codes := make([]int, 8)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _ = r.request(t, "anthropic")
		}()
	}
	wg.Wait()
	select {
	case got := <-slow:
		t.Fatalf("the held request ended before the owner answered: %v", got)
	default:
	}
	for i, c := range codes {
		if c != 200 {
			t.Errorf("request %d beside the held one: %d", i+1, c)
		}
	}
	r.release()
	if got := <-slow; !strings.HasPrefix(got[0], "403") {
		t.Errorf("the refused request: %v; want 403", got)
	}
}

// Every request asks the agent, held connection or not: a credential
// removed, or an agent locked, after a request is seen at the next one,
// on the same connection.
func TestPoolSeesChanges(t *testing.T) {
	for _, tc := range []struct {
		name     string
		change   func(*protocol.Client) error
		wantCode int
		wantMsg  string
	}{
		{"removed credential", func(c *protocol.Client) error { return c.Remove("anthropic") }, 403, "refused"},
		{"locked agent", func(c *protocol.Client) error { return c.Lock([]byte("pw")) }, 503, "locked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newPoolRig(t, "", proxy.Config{MaxIdle: 1})
			if code, msg := r.request(t, "anthropic"); code != 200 {
				t.Fatalf("%d %s", code, msg)
			}
			c, err := protocol.Dial(r.agentSock)
			if err != nil {
				t.Fatal(err)
			}
			err = tc.change(c)
			c.Close()
			if err != nil {
				t.Fatal(err)
			}
			code, msg := r.request(t, "anthropic")
			if code != tc.wantCode || !strings.Contains(msg, tc.wantMsg) {
				t.Errorf("the next request: %d %q; want %d %q", code, msg, tc.wantCode, tc.wantMsg)
			}
			if n := r.relay.Accepted(); n != 1 {
				t.Errorf("%d agent connections; want the one held", n)
			}
		})
	}
}

// When the owner disconnects (the forwarded socket and its connections
// go), a get waiting in a confirm prompt fails at once, and so does the
// next request, both with the 503 that says the owner is not connected.
func TestPoolDisconnect(t *testing.T) {
	r := newConfirmRig(t)
	if code, msg := r.request(t, "anthropic"); code != 200 {
		t.Fatalf("%d %s", code, msg)
	}
	slow := r.held(t)
	left := time.Now()
	r.relay.Stop()
	select {
	case got := <-slow:
		t.Logf("the request held in the prompt: %s after %v: %s", got[0], time.Since(left).Round(time.Millisecond), got[1])
		if !strings.HasPrefix(got[0], "503") || !strings.Contains(got[1], "the owner is not connected") {
			t.Errorf("the request held in the prompt: %v; want 503, owner not connected", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the request held in the prompt did not fail when the owner left")
	}
	code, msg := r.request(t, "anthropic")
	if code != 503 || !strings.Contains(msg, "the owner is not connected") || !strings.Contains(msg, "no such socket") {
		t.Errorf("the next request: %d %q; want 503 naming the missing socket", code, msg)
	}
}

package proxy_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/internal/guard"
	"github.com/llm-agent/llm-agent/internal/proxy"
	"github.com/llm-agent/llm-agent/protocol"
)

// agentRelay passes the connections to a socket on to another, as sshd
// and the laptop's ssh pass a forwarded agent's.
type agentRelay struct {
	// Mute holds everything either way, on new connections and open ones
	// alike, until it is cleared (a dead link: the laptop's ssh stopped).
	Mute atomic.Bool

	l        net.Listener
	done     chan struct{}
	accepted atomic.Int64
	mu       sync.Mutex
	conns    map[net.Conn]net.Conn // each client end and its agent end
	stopOnce sync.Once
}

// relay listens on path and passes each connection on to target until
// Stop, which also runs at cleanup.
func relay(t testing.TB, path, target string) *agentRelay {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	r := &agentRelay{l: l, done: make(chan struct{}), conns: map[net.Conn]net.Conn{}}
	t.Cleanup(r.Stop)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			r.accepted.Add(1)
			u, err := net.Dial("unix", target)
			if err != nil {
				c.Close()
				continue
			}
			r.mu.Lock()
			r.conns[c] = u
			r.mu.Unlock()
			go r.pass(u, c)
			go r.pass(c, u)
		}
	}()
	return r
}

// pass copies src to dst, holding each chunk while muted; at the end of
// either it closes both.
func (r *agentRelay) pass(dst, src net.Conn) {
	defer func() {
		dst.Close()
		src.Close()
		r.mu.Lock()
		delete(r.conns, src)
		delete(r.conns, dst)
		r.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for n > 0 && r.Mute.Load() {
			select {
			case <-r.done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
		if n > 0 {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Stop closes the listener (which unlinks the path) and every connection:
// the owner disconnected.
func (r *agentRelay) Stop() {
	r.stopOnce.Do(func() {
		close(r.done)
		r.l.Close()
		r.Drop()
	})
}

// Drop closes every open connection and goes on listening: the agent's
// end of every connection the proxy holds goes away.
func (r *agentRelay) Drop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for c, u := range r.conns {
		c.Close()
		u.Close()
	}
}

// Accepted counts the connections the relay took.
func (r *agentRelay) Accepted() int { return int(r.accepted.Load()) }

// Open counts the connections open now.
func (r *agentRelay) Open() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.conns)
}

func ownerOf(t testing.TB, sock string) string {
	t.Helper()
	c, err := protocol.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	key, err := guard.ProveOwner(c)
	if err != nil {
		t.Fatal(err)
	}
	return guard.OwnerID(key)
}

// A request that finds the laptop silent costs the time-out; the next ones
// fail at once, in the provider's shape; once the laptop answers, the probe
// clears the state within ~2 s.
func TestFailFast(t *testing.T) {
	_, sock := startAgent(t)
	add(t, sock, "anthropic", protocol.KindAPI, "key", "sk-ant-FF")
	up, _ := startUpstream(t)
	front := filepath.Join(t.TempDir(), "front.sock")
	r := relay(t, front, sock)
	p, base := newProxy(t, proxy.Config{Socket: front, Timeout: 500 * time.Millisecond, Upstreams: map[string]string{"anthropic": up.URL}})
	hdr := map[string]string{"x-api-key": p.DummyKey()}
	if resp, body := do(t, "POST", base+"/anthropic/v1/messages", hdr); resp.StatusCode != 200 {
		t.Fatalf("before: %d %s", resp.StatusCode, body)
	}
	r.Mute.Store(true)
	start := time.Now()
	resp, body := do(t, "POST", base+"/anthropic/v1/messages", hdr)
	_, msg := errorBody(t, body)
	t.Logf("first request on a dead link: %d after %v: %s", resp.StatusCode, time.Since(start).Round(time.Millisecond), msg)
	if resp.StatusCode != 503 || !strings.Contains(msg, "did not answer within") {
		t.Errorf("first request: %d %q", resp.StatusCode, msg)
	}
	for i := 0; i < 5; i++ {
		start := time.Now()
		resp, body := do(t, "POST", base+"/anthropic/v1/messages", hdr)
		took := time.Since(start)
		typ, msg := errorBody(t, body)
		if resp.StatusCode != 503 || typ != "anthropic" || !strings.Contains(msg, "failing fast until it answers") || took > 100*time.Millisecond {
			t.Errorf("request %d on a dead link: %d %s after %v: %q; want 503 at once", i+2, resp.StatusCode, typ, took, msg)
		}
	}
	r.Mute.Store(false)
	back := time.Now()
	for {
		resp, _ := do(t, "POST", base+"/anthropic/v1/messages", hdr)
		if resp.StatusCode == 200 {
			t.Logf("answers again %v after the laptop did", time.Since(back).Round(time.Millisecond))
			break
		}
		if time.Since(back) > 5*time.Second {
			t.Fatalf("still %d 5 s after the laptop answers again", resp.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A Follower goes to the owner's stable guard path when the socket it was
// given is gone, and refuses an agent of another owner there, saying what
// it found at each path.
func TestFollower(t *testing.T) {
	_, sock := startAgent(t)
	add(t, sock, "anthropic", protocol.KindAPI, "key", "sk-ant-FOLLOW")
	_, other := startAgent(t)
	add(t, other, "anthropic", protocol.KindAPI, "key", "sk-ant-OTHER")
	owner := ownerOf(t, sock)
	if ownerOf(t, other) == owner {
		t.Fatal("two agents with one owner key")
	}
	up, seen := startUpstream(t)
	dir := t.TempDir()
	gone := filepath.Join(dir, "forwarded.sock")
	base := filepath.Join(dir, "base")
	f := proxy.NewFollower(gone, owner, []string{base})
	p, url := newProxy(t, proxy.Config{Socket: gone, Dial: f.Dial, Upstreams: map[string]string{"anthropic": up.URL}})
	hdr := map[string]string{"x-api-key": p.DummyKey()}

	resp, body := do(t, "POST", url+"/anthropic/v1/messages", hdr)
	_, msg := errorBody(t, body)
	t.Logf("nobody: %d %s", resp.StatusCode, msg)
	if resp.StatusCode != 503 || strings.Count(msg, "no such socket") != 2 || !strings.Contains(msg, gone) {
		t.Errorf("nobody: %d %q", resp.StatusCode, msg)
	}

	stable := guard.StablePath(base, owner)
	relay(t, stable, other)
	resp, body = do(t, "POST", url+"/anthropic/v1/messages", hdr)
	_, msg = errorBody(t, body)
	t.Logf("another owner's agent at the stable path: %d %s", resp.StatusCode, msg)
	if resp.StatusCode != 503 || !strings.Contains(msg, "another owner") {
		t.Errorf("another owner: %d %q", resp.StatusCode, msg)
	}
	os.Remove(stable)

	relay(t, stable, sock)
	resp, body = do(t, "POST", url+"/anthropic/v1/messages", hdr)
	if resp.StatusCode != 200 {
		t.Fatalf("the owner's guard at the stable path: %d %s", resp.StatusCode, body)
	}
	got := seen()
	if len(got) != 1 || got[0].Header.Get("X-Api-Key") != "sk-ant-FOLLOW" {
		t.Errorf("the upstream got %d requests, want 1 with the owner's key", len(got))
	}
}

// A socket that reuses the inode of a guard's socket that proved the owner
// (ext4 hands a freed inode to the next file at once) is not trusted on
// that proof: a co-tenant binding at the stable path after the owner's
// guard exited must prove the owner key itself.
func TestFollowerInodeReuse(t *testing.T) {
	_, sock := startAgent(t)
	add(t, sock, "anthropic", protocol.KindAPI, "key", "sk-ant-REUSE")
	_, other := startAgent(t)
	add(t, other, "anthropic", protocol.KindAPI, "key", "sk-ant-PLANTED")
	owner := ownerOf(t, sock)
	up, seen := startUpstream(t)
	// The stable path on the file system that holds ~/.llm-agent (the
	// test's temporary directory), not on a tmpfs that never reuses inodes.
	dir, err := os.MkdirTemp("", "r18reuse")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	base := filepath.Join(dir, "base")
	stable := guard.StablePath(base, owner)
	gone := filepath.Join(dir, "forwarded.sock")
	f := proxy.NewFollower(gone, owner, []string{base})
	p, url := newProxy(t, proxy.Config{Socket: gone, Dial: f.Dial, Upstreams: map[string]string{"anthropic": up.URL}})
	hdr := map[string]string{"x-api-key": p.DummyKey()}

	for try := 0; ; try++ {
		stopGuard := relay(t, stable, sock).Stop
		st1, err := os.Stat(stable)
		if err != nil {
			t.Fatal(err)
		}
		if resp, body := do(t, "POST", url+"/anthropic/v1/messages", hdr); resp.StatusCode != 200 {
			t.Fatalf("the owner's guard at the stable path: %d %s", resp.StatusCode, body)
		}
		stopGuard() // the owner's guard exits; its socket is unlinked
		waitGone(t, stable)
		// A later moment, as for any file made after the guard's (the
		// kernel's clock for file times ticks every few ms).
		time.Sleep(20 * time.Millisecond)
		relay(t, stable, other) // the co-tenant's socket
		st2, err := os.Stat(stable)
		if err != nil {
			t.Fatal(err)
		}
		if sameFile(st1, st2) {
			t.Logf("the planted socket reuses the guard's inode %d (try %d)", st2.Sys().(*syscall.Stat_t).Ino, try+1)
			break
		}
		if try == 20 {
			t.Fatalf("the file system under %s never reused a socket's inode", dir)
		}
		os.Remove(stable)
	}
	resp, body := do(t, "POST", url+"/anthropic/v1/messages", hdr)
	_, msg := errorBody(t, body)
	t.Logf("a planted socket with the guard's old inode: %d %s", resp.StatusCode, msg)
	if resp.StatusCode != 503 || !strings.Contains(msg, "another owner") {
		t.Errorf("a planted socket with the guard's old inode: %d %q; want 503 naming another owner", resp.StatusCode, msg)
	}
	for _, r := range seen() {
		if r.Header.Get("X-Api-Key") == "sk-ant-PLANTED" {
			t.Errorf("the upstream got a request with the planted agent's key")
		}
	}
}

func sameFile(a, b os.FileInfo) bool {
	x, y := a.Sys().(*syscall.Stat_t), b.Sys().(*syscall.Stat_t)
	return x.Dev == y.Dev && x.Ino == y.Ino
}

func waitGone(t testing.TB, path string) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if _, err := os.Lstat(path); os.IsNotExist(err) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s still exists", path)
}

// A socket that accepts and never answers, planted by a co-tenant at the
// path the proxy started with (the old forwarded socket's, named in the
// proxy's log), neither holds up the owner's guard at the stable path nor
// sends the proxy into failing fast as if the laptop were silent.
func TestFollowerSilentSocket(t *testing.T) {
	_, sock := startAgent(t)
	add(t, sock, "anthropic", protocol.KindAPI, "key", "sk-ant-SILENT")
	owner := ownerOf(t, sock)
	up, _ := startUpstream(t)
	dir := t.TempDir()
	gone := filepath.Join(dir, "forwarded.sock")
	base := filepath.Join(dir, "base")
	relay(t, gone, sock).Mute.Store(true) // silent
	relay(t, guard.StablePath(base, owner), sock)
	f := proxy.NewFollower(gone, owner, []string{base})
	p, url := newProxy(t, proxy.Config{Socket: gone, Dial: f.Dial, Timeout: time.Second, Upstreams: map[string]string{"anthropic": up.URL}})
	hdr := map[string]string{"x-api-key": p.DummyKey()}
	for i := 0; i < 3; i++ {
		start := time.Now()
		resp, body := do(t, "POST", url+"/anthropic/v1/messages", hdr)
		took := time.Since(start)
		t.Logf("request %d with a silent socket at the first path: %d after %v", i+1, resp.StatusCode, took.Round(time.Millisecond))
		if resp.StatusCode != 200 || took > 500*time.Millisecond {
			t.Fatalf("request %d: %d after %v: %s; want 200 from the owner's guard at the stable path, at once", i+1, resp.StatusCode, took, body)
		}
	}
}

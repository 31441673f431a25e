package proxy_test

import (
	"bytes"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/llm-agent/llm-agent/internal/proxy"
	"github.com/llm-agent/llm-agent/protocol"
)

// TestPeerCheckAddrs: the check finds the process behind a loopback TCP
// connection: this test process itself and a child (descendants of the
// caller) pass; another uid is refused by the socket's uid; a connection
// that no longer exists is refused.
func TestPeerCheckAddrs(t *testing.T) {
	pc, err := proxy.NewPeerCheck()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	check := func() error {
		c := <-accepted
		defer c.Close()
		return pc.Check(c.LocalAddr(), c.RemoteAddr())
	}

	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if err := check(); err != nil {
		t.Errorf("this process: %v", err)
	}
	c.Close()

	// A child that connects and waits: bash's /dev/tcp.
	child := func(cred *syscall.Credential) *exec.Cmd {
		cmd := exec.Command("bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/"+portOf(l)+"; sleep 5")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	child(nil)
	if err := check(); err != nil {
		t.Errorf("a child: %v", err)
	}
	if os.Getuid() == 0 {
		child(&syscall.Credential{Uid: 65534, Gid: 65534})
		err := check()
		t.Logf("another uid: %v", err)
		if err == nil || !strings.Contains(err.Error(), "uid 65534 is not the proxy's uid") {
			t.Errorf("another uid: %v, want refused for its uid", err)
		}
	}

	// A connection that is gone: its socket is not found.
	c, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a := <-accepted
	c.Close()
	a.Close()
	if err := pc.Check(a.LocalAddr(), a.RemoteAddr()); err == nil {
		t.Errorf("a closed connection passed the check")
	} else {
		t.Logf("closed connection: %v", err)
	}
}

func portOf(l net.Listener) string { return fmt.Sprint(l.Addr().(*net.TCPAddr).Port) }

// TestPeerRefused: a connection the check refuses gets a 403 in the
// provider's error shape for every request, the upstream sees nothing,
// the refusal is logged once per connection, and the check runs once per
// connection however many requests it carries.
func TestPeerRefused(t *testing.T) {
	_, sock := startAgent(t)
	add(t, sock, "anthropic", protocol.KindAPI, "key", "sk-ant-REAL")
	up, got := startUpstream(t)
	var calls, refuse atomic.Int32
	var logBuf bytes.Buffer
	p, base := newProxy(t, proxy.Config{
		Socket:    sock,
		Upstreams: map[string]string{"anthropic": up.URL},
		Peer: func(local, remote net.Addr) error {
			calls.Add(1)
			if refuse.Load() == 1 {
				return fmt.Errorf("connection from %s: pid 4242 (/usr/bin/evil) belongs to audit session 9", remote)
			}
			return nil
		},
		Refused: log.New(lockedWriter{mu: &sync.Mutex{}, w: &logBuf}, "", 0),
	})
	hdr := map[string]string{"x-api-key": p.DummyKey()}
	for i := 0; i < 3; i++ {
		if resp, body := do(t, "POST", base+"/anthropic/v1/messages", hdr); resp.StatusCode != 200 {
			t.Fatalf("allowed: %d %s", resp.StatusCode, body)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("three keep-alive requests ran the check %d times, want 1", n)
	}
	http.DefaultClient.CloseIdleConnections()
	refuse.Store(1)
	for i := 0; i < 2; i++ {
		resp, body := do(t, "POST", base+"/anthropic/v1/messages", hdr)
		shape, msg := errorBody(t, body)
		if resp.StatusCode != 403 || shape != "anthropic" || !strings.Contains(msg, "not one of the proxy owner's") {
			t.Errorf("refused: %d %s %q", resp.StatusCode, shape, msg)
		}
	}
	if n := len(got()); n != 3 {
		t.Errorf("the upstream got %d requests, want the 3 allowed ones", n)
	}
	lines := strings.Split(strings.TrimSpace(logBuf.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "refused: connection from") || !strings.Contains(lines[0], "/usr/bin/evil") {
		t.Errorf("refusal log: %q, want one line naming the process", logBuf.String())
	}
	http.DefaultClient.CloseIdleConnections()
}

// TestPeerCheckIPv6: a proxy on ::1 identifies its peers too.
func TestPeerCheckIPv6(t *testing.T) {
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("SKIPPED: no IPv6 loopback: %v", err)
	}
	defer l.Close()
	pc, err := proxy.NewPeerCheck()
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := pc.Check(a.LocalAddr(), a.RemoteAddr()); err != nil {
		t.Errorf("this process over ::1: %v", err)
	}
}

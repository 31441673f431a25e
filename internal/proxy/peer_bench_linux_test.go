package proxy_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/internal/proxy"
)

// benchSleepers is how many unrelated processes of our uid are alive
// during BenchmarkPeerCheck: a peer that is not the proxy's descendant is
// found by looking through the open files of every process of the uid, so
// their number is that check's cost.
func benchSleepers() int {
	if n, err := strconv.Atoi(os.Getenv("SLEEPERS")); err == nil && n >= 0 {
		return n
	}
	return 200
}

// BenchmarkPeerCheck: what the peer check adds to a connection, with
// SLEEPERS (200) idle processes of our uid alive. Per iteration: a small
// request through the proxy over a fresh loopback connection without the
// check (unchecked-µs/conn); the check of a connection held by the
// proxy's child, the proxy -- CMD case (child-check-µs); and the check of
// one held by a process outside the proxy's tree started after the
// sleepers, so the last of the uid in /proc's order: the whole scan, as
// for eval mode's tools and for every refusal (scan-check-µs). The check
// runs once per connection, before its first request; keep-alive
// requests do not pay it again.
func BenchmarkPeerCheck(b *testing.B) {
	sleepers := benchSleepers()
	// Not our children: a shell in a session of its own starts them and
	// exits; the session's process group is killed at the end.
	out, err := exec.Command("setsid", "bash", "-c", fmt.Sprintf(
		"for i in $(seq %d); do sleep 3600 </dev/null >/dev/null 2>&1 & done; echo $$", sleepers)).Output()
	if err != nil {
		b.Fatal(err)
	}
	if pgid, _ := strconv.Atoi(strings.TrimSpace(string(out))); pgid > 1 {
		b.Cleanup(func() { syscall.Kill(-pgid, syscall.SIGKILL) })
	}
	_, proxied, dummy, _ := benchRig(b)
	pc, err := proxy.NewPeerCheck()
	if err != nil {
		b.Fatal(err)
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	fetch(b, c, proxied+"/chat/completions", dummy)
	child := benchPeer(b, pc, false)
	outside := benchPeer(b, pc, true)
	if err := child(); err != nil {
		b.Fatalf("the child's connection: %v", err)
	}
	var req, kid, scan time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		fetch(b, c, proxied+"/chat/completions", dummy)
		t1 := time.Now()
		child()
		t2 := time.Now()
		outside() // refused when audit is off; the time is what counts
		req, kid, scan = req+t1.Sub(t0), kid+t2.Sub(t1), scan+time.Since(t2)
	}
	n := float64(b.N)
	b.ReportMetric(float64(sleepers), "sleepers")
	b.ReportMetric(float64(req.Microseconds())/n, "unchecked-µs/conn")
	b.ReportMetric(float64(kid.Microseconds())/n, "child-check-µs")
	b.ReportMetric(float64(scan.Microseconds())/n, "scan-check-µs")
	b.ReportMetric(float64(req+kid)/float64(req), "child-ratio")
	b.ReportMetric(float64(req+scan)/float64(req), "scan-ratio")
}

// benchPeer connects to a listener from bash's /dev/tcp, in a child of
// ours or (outside) in a process reparented away from us, and returns a
// check of that connection as the proxy would make it.
func benchPeer(b *testing.B, pc *proxy.PeerCheck, outside bool) func() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	script := fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%d; exec sleep 3600", l.Addr().(*net.TCPAddr).Port)
	if outside {
		script = "setsid bash -c '" + script + "' </dev/null >/dev/null 2>&1 & echo $!"
		out, err := exec.Command("bash", "-c", script).Output()
		if err != nil {
			b.Fatal(err)
		}
		pid, _ := strconv.Atoi(string(out[:len(out)-1]))
		b.Cleanup(func() {
			if p, err := os.FindProcess(pid); err == nil {
				p.Kill()
			}
		})
	} else {
		cmd := exec.Command("bash", "-c", script)
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	a, err := l.Accept()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.Close() })
	return func() error { return pc.Check(a.LocalAddr(), a.RemoteAddr()) }
}

package bench

import (
	"errors"
	"io"
	"net"
	"sort"
	"sync"
	"testing"
	"time"
)

// A delayPath stands in for a network path with a round-trip time, in user
// space: this kernel has no sch_netem. Each link of the path is a TCP
// relay on loopback that holds every chunk it reads for half the RTT, in
// each direction, before writing it on. The delay counts from the moment
// a chunk arrives (is read), never from when the chunk before it left:
// delaying on send would let TCP autocorking hold back the next small
// segment and add time that is not the product's. The relay's sockets
// have TCP_NODELAY (Go's default), so it holds nothing back itself.
//
// ICMP ping does not cross a user-space relay, so the path's RTT is probed
// with a TCP echo through a link of the same path (probe).
type delayPath struct {
	oneWay time.Duration
}

func newPath(rtt time.Duration) delayPath { return delayPath{oneWay: rtt / 2} }

// link is one relay of a path: connections to addr go on to target.
type link struct {
	addr   string
	ln     net.Listener
	path   delayPath
	target string

	mu     sync.Mutex
	pairs  map[net.Conn]net.Conn // each client end and its target end
	closed bool
	wg     sync.WaitGroup
}

// link starts a relay to target on 127.0.0.1; it is closed at cleanup.
// A path of zero delay needs no relay: target itself is returned.
func (p delayPath) link(tb testing.TB, target string) string {
	tb.Helper()
	if p.oneWay == 0 {
		return target
	}
	return p.startLink(tb, target).addr
}

func (p delayPath) startLink(tb testing.TB, target string) *link {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	l := &link{addr: ln.Addr().String(), ln: ln, path: p, target: target, pairs: map[net.Conn]net.Conn{}}
	l.wg.Add(1)
	go l.accept()
	tb.Cleanup(l.close)
	return l
}

func (l *link) accept() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", l.target)
		if err != nil {
			c.Close()
			continue
		}
		if !l.keep(c, u) {
			return
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			var both sync.WaitGroup
			both.Add(2)
			go func() { defer both.Done(); l.path.pipe(u, c) }()
			go func() { defer both.Done(); l.path.pipe(c, u) }()
			both.Wait()
			l.drop(c)
		}()
	}
}

// keep records a relayed pair for close; false when the link is closed.
func (l *link) keep(c, u net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		u.Close()
		return false
	}
	l.pairs[c] = u
	return true
}

// drop closes the pair of client end c and forgets it.
func (l *link) drop(c net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c.Close()
	if u := l.pairs[c]; u != nil {
		u.Close()
	}
	delete(l.pairs, c)
}

func (l *link) close() {
	l.mu.Lock()
	l.closed = true
	l.ln.Close()
	for c, u := range l.pairs {
		c.Close()
		u.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// chunk is what a pipe read, and when it is due at the other end. A chunk
// with an error is the end of the stream: io.EOF half-closes the other
// side, any other error closes it.
type chunk struct {
	b   []byte
	due time.Time
	err error
}

// pipe copies src to dst, writing each chunk oneWay after it was read. A
// reader goroutine stamps chunks as they arrive; the writer releases them
// in order when due.
func (p delayPath) pipe(dst, src net.Conn) {
	q := make(chan chunk, 1024) // a bounded queue: the path's buffer
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := src.Read(buf)
			now := time.Now()
			if n > 0 {
				select {
				case q <- chunk{b: append([]byte(nil), buf[:n]...), due: now.Add(p.oneWay)}:
				case <-stop:
					return
				}
			}
			if err != nil {
				select {
				case q <- chunk{due: now.Add(p.oneWay), err: err}:
				case <-stop:
				}
				return
			}
		}
	}()
	for c := range q {
		if wait := time.Until(c.due); wait > 0 {
			time.Sleep(wait)
		}
		if c.err != nil {
			if tc, ok := dst.(*net.TCPConn); ok && errors.Is(c.err, io.EOF) {
				tc.CloseWrite()
				return
			}
			dst.Close()
			return
		}
		if _, err := dst.Write(c.b); err != nil {
			src.Close()
			return
		}
	}
}

// startEchoTCP serves a TCP echo on 127.0.0.1 until cleanup. Its
// connections end with their clients' (the links close theirs at
// cleanup).
func startEchoTCP(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

// probe measures the path's RTT: the median of n one-byte TCP echoes
// through a link of the path to echo, one connection, after a warm-up.
func (p delayPath) probe(tb testing.TB, echo string, n int) time.Duration {
	tb.Helper()
	c, err := net.Dial("tcp", p.link(tb, echo))
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	b := []byte{0}
	d := make([]time.Duration, 0, n)
	for i := -2; i < n; i++ {
		t0 := time.Now()
		if _, err := c.Write(b); err != nil {
			tb.Fatalf("RTT probe: %v", err)
		}
		if _, err := io.ReadFull(c, b); err != nil {
			tb.Fatalf("RTT probe: %v", err)
		}
		if i >= 0 {
			d = append(d, time.Since(t0))
		}
	}
	return median(d)
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// The link delays each direction by half the RTT from arrival, keeps the
// order of the bytes, and passes the end of the stream on.
func TestLink(t *testing.T) {
	for _, tc := range []struct {
		name string
		rtt  time.Duration
	}{
		{"no delay", 0},
		{"20ms", 20 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPath(tc.rtt)
			echo := startEchoTCP(t)
			c, err := net.Dial("tcp", p.link(t, echo))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			var want []byte
			t0 := time.Now()
			for i := 0; i < 50; i++ {
				b := []byte{byte(i), byte(i + 1), byte(i + 2)}
				want = append(want, b...)
				if _, err := c.Write(b); err != nil {
					t.Fatal(err)
				}
			}
			c.(*net.TCPConn).CloseWrite()
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatal(err)
			}
			if took := time.Since(t0); took < tc.rtt {
				t.Errorf("the echo came back after %v, before the RTT %v", took, tc.rtt)
			}
			if string(got) != string(want) {
				t.Errorf("echo: got %v, want %v", got, want)
			}
		})
	}
}

package agent_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/agent"
	"github.com/llm-agent/llm-agent/protocol"
)

// loadClients is how many clients the load test runs at once: the
// agent's default connection cap.
const loadClients = 512

// loadDuration is how long the load runs: LLM_AGENT_LOAD_SECONDS if set,
// else 60 s under CI=true (the figure the issue asks for) and 10 s
// otherwise, so that a local go test ./... stays short.
func loadDuration(t *testing.T) time.Duration {
	if v := os.Getenv("LLM_AGENT_LOAD_SECONDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("LLM_AGENT_LOAD_SECONDS=%q: want a positive number of seconds", v)
		}
		return time.Duration(n) * time.Second
	}
	if os.Getenv("CI") == "true" {
		return 60 * time.Second
	}
	return 10 * time.Second
}

// loadSnapshot is the process's resource use: the agent runs in this
// process, so goroutines, descriptors and heap are the agent's plus the
// test's.
type loadSnapshot struct {
	goroutines int
	fds        int
	heapInuse  uint64
	heapAlloc  uint64
}

func (s loadSnapshot) String() string {
	return fmt.Sprintf("%d goroutines, %d fds, HeapInuse %.1f MiB, HeapAlloc %.1f MiB",
		s.goroutines, s.fds, float64(s.heapInuse)/(1<<20), float64(s.heapAlloc)/(1<<20))
}

func loadMeasure(t *testing.T) loadSnapshot {
	t.Helper()
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("counting descriptors: %v", err)
	}
	return loadSnapshot{goroutines: runtime.NumGoroutine(), fds: len(ents), heapInuse: ms.HeapInuse, heapAlloc: ms.HeapAlloc}
}

// loadSettle measures until goroutines and descriptors are back to the
// idle level (they drain as the agent notices closed connections), or
// limit has passed; it returns the last measurement.
func loadSettle(t *testing.T, idle loadSnapshot, limit time.Duration) (loadSnapshot, time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		s := loadMeasure(t)
		if s.goroutines <= idle.goroutines && s.fds <= idle.fds || time.Since(start) > limit {
			return s, time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// loadStats counts the outcomes of the load's requests.
type loadStats struct {
	ops      [5]atomic.Int64 // by loadOp
	notFound atomic.Int64
	reconn   atomic.Int64
	errs     atomic.Int64
	mu       sync.Mutex
	first    []string // the first few unexpected errors
}

const (
	opAdd = iota
	opGetOwn
	opGetOther
	opList
	opRemove
)

var loadOpNames = [...]string{"add", "get own", "get other", "list", "remove"}

func (s *loadStats) unexpected(client int, what string, err error) {
	s.errs.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.first) < 20 {
		s.first = append(s.first, fmt.Sprintf("client %d: %s: %v", client, what, err))
	}
}

// TestLoadChurn runs 512 concurrent clients doing get, list, add and
// remove, reconnecting now and then, for loadDuration. Each client owns one
// provider, so it knows what the agent must answer about it: every reply
// is checked, nothing may fail but the expected not-found, and nothing may
// be lost. After the load, goroutines and descriptors must be back to
// their idle level and the heap near it.
func TestLoadChurn(t *testing.T) {
	d := loadDuration(t)
	// The audit log is written (so its code runs under load) but kept
	// nowhere, so it does not count as heap growth.
	// The debug log is only counted: how often the agent closed a
	// connection at its cap explains transport errors, if any.
	evictions := &lineCounter{match: []byte("connection limit")}
	ta := startAgent(t, agent.Config{Audit: agent.NewAuditLog(io.Discard, nil), Debug: log.New(evictions, "", 0)})
	// Warm up: one connection of each kind of request, so that lazily
	// started machinery counts as idle.
	{
		c := ta.client(t)
		mustAdd(t, c, apiCred("warmup", "k"))
		if cred, err := c.Get("warmup", nil); err != nil {
			t.Fatal(err)
		} else {
			cred.Wipe()
		}
		if _, err := c.List(); err != nil {
			t.Fatal(err)
		}
		if err := c.Remove("warmup"); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	time.Sleep(200 * time.Millisecond)
	idle := loadMeasure(t)
	t.Logf("idle before the load: %v", idle)

	var stats loadStats
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range loadClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			loadClient(i, ta.sock, stop, &stats)
		}()
	}
	start := time.Now()
	time.Sleep(d)
	close(stop)
	wg.Wait()
	elapsed := time.Since(start)

	var total int64
	var perOp []string
	for op := range stats.ops {
		n := stats.ops[op].Load()
		total += n
		perOp = append(perOp, fmt.Sprintf("%s %d", loadOpNames[op], n))
	}
	t.Logf("%d clients for %v: %d requests (%.0f/s): %v; %d expected not-found, %d reconnects, %d unexpected errors",
		loadClients, elapsed.Round(time.Millisecond), total, float64(total)/elapsed.Seconds(), perOp,
		stats.notFound.Load(), stats.reconn.Load(), stats.errs.Load())
	for _, e := range stats.first {
		t.Errorf("unexpected: %s", e)
	}
	t.Logf("the agent closed %d connections at its connection cap", evictions.n.Load())
	if n := evictions.n.Load(); n > 0 && stats.errs.Load() > 0 {
		// Each reconnect closes one connection and opens another; if the
		// agent has not yet noticed the close when it accepts the new one,
		// it is at its cap and closes the longest idle connection, which
		// may be one whose request it has not read yet.
		t.Errorf("with %d clients the agent reached its cap of %d connections and closed %d of them, live ones among them: "+
			"a connection whose request is sent but not yet read counts as idle, and one its client already closed counts against the cap", loadClients, loadClients, n)
	}
	if total < loadClients {
		t.Errorf("only %d requests in %v", total, elapsed)
	}

	// Empty the store, so the heap is compared with an empty agent.
	c := ta.client(t)
	if _, err := c.RemoveAll(); err != nil {
		t.Errorf("remove-all after the load: %v", err)
	}
	c.Close()

	after, took := loadSettle(t, idle, 10*time.Second)
	t.Logf("after the load (settled in %v): %v", took.Round(time.Millisecond), after)
	t.Logf("goroutines %d -> %d, fds %d -> %d, HeapInuse %.1f -> %.1f MiB",
		idle.goroutines, after.goroutines, idle.fds, after.fds, float64(idle.heapInuse)/(1<<20), float64(after.heapInuse)/(1<<20))
	if after.goroutines > idle.goroutines {
		t.Errorf("goroutines grew from %d to %d after the load stopped", idle.goroutines, after.goroutines)
		buf := make([]byte, 1<<20)
		t.Logf("goroutines:\n%s", buf[:runtime.Stack(buf, true)])
	}
	if after.fds > idle.fds {
		t.Errorf("descriptors grew from %d to %d after the load stopped", idle.fds, after.fds)
	}
	if after.heapInuse > idle.heapInuse+32<<20 {
		t.Errorf("HeapInuse %d bytes after the load, idle %d: more than 32 MiB above the idle level", after.heapInuse, idle.heapInuse)
	}
}

// loadClient is one client of TestLoadChurn: it owns provider load-<i> and
// tracks the key it last added (nil: none), so that every reply about it
// can be checked.
func loadClient(i int, sock string, stop <-chan struct{}, s *loadStats) {
	rng := rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
	own := fmt.Sprintf("load-%d", i)
	var key []byte // what the agent holds for own; nil: nothing
	var c *protocol.Client
	left := 0 // requests before the next reconnect
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for {
		select {
		case <-stop:
			return
		default:
		}
		if left == 0 {
			if c != nil {
				c.Close()
				s.reconn.Add(1)
			}
			nc, err := loadDial(sock, stop)
			if errors.Is(err, errLoadStopped) {
				return
			}
			if err != nil {
				s.unexpected(i, "connect", err)
				return
			}
			c = protocol.NewClient(nc)
			c.Timeout = 30 * time.Second
			left = 1 + rng.IntN(40)
		}
		left--
		op := rng.IntN(5)
		s.ops[op].Add(1)
		switch op {
		case opAdd:
			k := fmt.Appendf(nil, "sk-load-%d-%d", i, rng.Uint64())
			if err := c.Add(&protocol.AddRequest{Credential: protocol.Credential{Provider: own, Kind: protocol.KindAPI,
				Fields: []protocol.Field{{Name: protocol.FieldKey, Value: bytes.Clone(k)}}}}); err != nil {
				s.unexpected(i, "add", err)
				left = 0
				continue
			}
			key = k
		case opGetOwn:
			cred, err := c.Get(own, nil)
			switch {
			case key == nil && loadNotFound(err):
				s.notFound.Add(1)
			case err != nil:
				s.unexpected(i, fmt.Sprintf("get own (holding a key: %v)", key != nil), err)
				left = 0
			case key == nil:
				s.unexpected(i, "get own", errors.New("found a removed credential"))
			case !bytes.Equal(cred.Value(protocol.FieldKey), key):
				s.unexpected(i, "get own", errors.New("got a key other than the last one added"))
			}
			if cred != nil {
				cred.Wipe()
			}
		case opGetOther:
			cred, err := c.Get(fmt.Sprintf("load-%d", rng.IntN(loadClients)), nil)
			switch {
			case loadNotFound(err):
				s.notFound.Add(1)
			case err != nil:
				s.unexpected(i, "get other", err)
				left = 0
			}
			if cred != nil {
				cred.Wipe()
			}
		case opList:
			list, err := c.List()
			if err != nil {
				s.unexpected(i, "list", err)
				left = 0
				continue
			}
			found := false
			for _, e := range list {
				if e.Provider == own {
					found = true
				}
			}
			if found != (key != nil) {
				s.unexpected(i, "list", fmt.Errorf("own credential listed: %v, want %v", found, key != nil))
			}
		case opRemove:
			err := c.Remove(own)
			switch {
			case key == nil && loadNotFound(err):
				s.notFound.Add(1)
			case err != nil:
				s.unexpected(i, fmt.Sprintf("remove own (holding a key: %v)", key != nil), err)
				left = 0
			case key == nil:
				s.unexpected(i, "remove own", errors.New("removed a credential that was not there"))
			}
			key = nil
		}
	}
}

// lineCounter counts the log lines holding match, keeping nothing.
type lineCounter struct {
	match []byte
	n     atomic.Int64
}

func (w *lineCounter) Write(p []byte) (int, error) {
	if bytes.Contains(p, w.match) {
		w.n.Add(1)
	}
	return len(p), nil
}

func loadNotFound(err error) bool {
	var f *protocol.Failure
	return errors.As(err, &f) && f.Code == protocol.CodeNotFound
}

// loadDial connects, retrying while the listen backlog is full (EAGAIN):
// that is the kernel's back-pressure, not an error of the agent.
func loadDial(sock string, stop <-chan struct{}) (net.Conn, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		nc, err := net.DialTimeout("unix", sock, 10*time.Second)
		if err == nil || !isEAGAIN(err) || time.Now().After(deadline) {
			return nc, err
		}
		select {
		case <-stop:
			return nil, errLoadStopped
		case <-time.After(time.Millisecond):
		}
	}
}

var errLoadStopped = errors.New("load stopped")

func isEAGAIN(err error) bool { return errors.Is(err, syscall.EAGAIN) }

package bench

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The load generator plays the coding tool on the "server": the
// round-trip report (rtt_test.go) starts this test binary under
// llm-agent-client proxy -- in the owner's ssh session, so that the proxy
// serves it (its peer check admits the proxy's own descendants), and
// drives it over a control connection on loopback, one command at a
// time. Its clock is the test's (one machine), so end times compare.

var (
	loadgenControl = flag.String("loadgen", "", "internal: run as the round-trip report's load generator, driven from this control address")
	loadgenDirect  = flag.String("loadgen-direct", "", "internal: the fake provider's base URL for direct requests")
)

// lgCommand is one command of the control connection.
type lgCommand struct {
	Op     string // ttfb, burst, stream, hold, held, after, quit
	N      int    // pairs, concurrent requests, rounds
	Size   int    // answer size (stream)
	Direct bool   // burst: to the provider directly, not through the proxy
}

// lgResult answers a command. Durations are in nanoseconds, end times
// in Unix nanoseconds.
type lgResult struct {
	Direct, Proxy []int64   // ttfb: time to first byte per pair
	DirectRate    []float64 // stream: MiB/s
	ProxyRate     []float64
	Each          []int64 // burst: each request's whole time; after: one
	Total         int64   // burst: first start to last end
	Ends          []int64 // held: when each held request ended
	Codes         []int   // held, after: the statuses
	Errors        []string
	Err           string // the command failed as a whole
}

// loadgen is the tool's side: its routes and its HTTP client.
type loadgen struct {
	direct, anthropic, slow, key string
	client                       *http.Client

	held chan heldResult
}

type heldResult struct {
	end  time.Time
	code int
	err  error
}

// runLoadgen serves the control connection until quit; it returns the
// exit code.
func runLoadgen(control, direct string) int {
	base := os.Getenv("ANTHROPIC_BASE_URL")
	key := os.Getenv("ANTHROPIC_API_KEY")
	if base == "" || key == "" || direct == "" {
		fmt.Fprintln(os.Stderr, "loadgen: run me under llm-agent-client proxy, with -loadgen-direct")
		return 2
	}
	lg := &loadgen{
		direct:    direct + "/v1/messages",
		anthropic: base + "/v1/messages",
		slow:      strings.TrimSuffix(base, "/anthropic") + "/slow/chat/completions",
		key:       key,
		// Tools keep their connections open; so does this client, up to
		// the largest burst.
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128, DisableCompression: true}},
	}
	c, err := net.Dial("tcp", control)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		return 2
	}
	defer c.Close()
	dec := json.NewDecoder(bufio.NewReader(c))
	enc := json.NewEncoder(c)
	for {
		var cmd lgCommand
		if err := dec.Decode(&cmd); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			return 1
		}
		if cmd.Op == "quit" {
			return 0
		}
		if err := enc.Encode(lg.run(cmd)); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			return 1
		}
	}
}

func (lg *loadgen) run(cmd lgCommand) lgResult {
	var r lgResult
	switch cmd.Op {
	case "ttfb":
		for i := 0; i < cmd.N; i++ {
			// Interleaved, and each pair in turn led by the other side.
			first, second := lg.direct, lg.anthropic
			if i%2 == 1 {
				first, second = second, first
			}
			for _, url := range []string{first, second} {
				ttfb, _, _, err := lg.stream(url, smallAnswer)
				if err != nil {
					r.Errors = append(r.Errors, err.Error())
					continue
				}
				if url == lg.direct {
					r.Direct = append(r.Direct, int64(ttfb))
				} else {
					r.Proxy = append(r.Proxy, int64(ttfb))
				}
			}
		}
	case "burst":
		url := lg.anthropic
		if cmd.Direct {
			url = lg.direct
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := time.Now()
		for i := 0; i < cmd.N; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				t0 := time.Now()
				_, _, _, err := lg.stream(url, smallAnswer)
				took := time.Since(t0)
				mu.Lock()
				defer mu.Unlock()
				r.Each = append(r.Each, int64(took))
				if err != nil {
					r.Errors = append(r.Errors, err.Error())
				}
			}()
		}
		wg.Wait()
		r.Total = int64(time.Since(start))
	case "stream":
		for i := 0; i < cmd.N; i++ {
			first, second := lg.direct, lg.anthropic
			if i%2 == 1 {
				first, second = second, first
			}
			for _, url := range []string{first, second} {
				// From the first byte to the last: the stream, not the
				// time to first byte (the rows above).
				_, n, took, err := lg.stream(url, cmd.Size)
				rate := float64(n) / (1 << 20) / took.Seconds()
				if err != nil {
					r.Errors = append(r.Errors, err.Error())
					continue
				}
				if url == lg.direct {
					r.DirectRate = append(r.DirectRate, rate)
				} else {
					r.ProxyRate = append(r.ProxyRate, rate)
				}
			}
		}
	case "hold":
		// Requests whose credential waits for the owner's confirmation:
		// their gets stay in flight until the owner answers or leaves.
		lg.held = make(chan heldResult, cmd.N)
		for i := 0; i < cmd.N; i++ {
			go func() {
				code, err := lg.status(lg.slow)
				lg.held <- heldResult{time.Now(), code, err}
			}()
		}
	case "held":
		for i := 0; i < cmd.N; i++ {
			select {
			case h := <-lg.held:
				r.Ends = append(r.Ends, h.end.UnixNano())
				r.Codes = append(r.Codes, h.code)
				if h.err != nil {
					r.Errors = append(r.Errors, h.err.Error())
				}
			case <-time.After(30 * time.Second):
				r.Err = fmt.Sprintf("%d held requests still in flight after 30 s", cmd.N-i)
				return r
			}
		}
	case "after":
		t0 := time.Now()
		code, err := lg.status(lg.anthropic)
		r.Each = []int64{int64(time.Since(t0))}
		r.Codes = []int{code}
		if err != nil {
			r.Errors = append(r.Errors, err.Error())
		}
	default:
		r.Err = "unknown command " + cmd.Op
	}
	return r
}

// newRequest builds a streamed request to url asking for size bytes.
func (lg *loadgen) newRequest(url string, size int) (*http.Request, error) {
	req, err := http.NewRequest("POST", url, strings.NewReader(`{"model":"bench","stream":true,"max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Bench-Size", strconv.Itoa(size))
	switch {
	case url == lg.direct:
		req.Header.Set("X-Bench-Direct", "1")
	case url == lg.slow:
		req.Header.Set("Authorization", "Bearer "+lg.key)
	default:
		req.Header.Set("X-Api-Key", lg.key)
	}
	return req, nil
}

// stream sends a streamed request and reads the answer to its end; it
// returns the time to the answer's first body byte, the bytes read after
// it, and the time they took.
func (lg *loadgen) stream(url string, size int) (ttfb time.Duration, n int64, rest time.Duration, err error) {
	req, err := lg.newRequest(url, size)
	if err != nil {
		return 0, 0, 0, err
	}
	t0 := time.Now()
	resp, err := lg.client.Do(req)
	if err != nil {
		return 0, 0, 0, err
	}
	defer resp.Body.Close()
	var one [1]byte
	if _, err := io.ReadFull(resp.Body, one[:]); err != nil {
		return 0, 0, 0, fmt.Errorf("%s: status %d, first byte: %w", url, resp.StatusCode, err)
	}
	t1 := time.Now()
	n, err = io.Copy(io.Discard, resp.Body)
	if err != nil {
		return 0, 0, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, 0, 0, fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	return t1.Sub(t0), n, time.Since(t1), nil
}

// status sends a small request and returns its status once its answer
// has ended.
func (lg *loadgen) status(url string) (int, error) {
	req, err := lg.newRequest(url, smallAnswer)
	if err != nil {
		return 0, err
	}
	resp, err := lg.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil && !errors.Is(err, io.EOF) {
		return resp.StatusCode, err
	}
	return resp.StatusCode, nil
}

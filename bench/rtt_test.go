package bench

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/internal/agenttest"
	"github.com/llm-agent/llm-agent/internal/sshtest"
)

// The round-trip report: what the proxy costs in laptop round trips, with
// a delaying link between the "laptop" (this test process: llm-agent and
// the owner's real ssh) and the "server" (a real sshd on 127.0.0.1: the
// proxy and the tool run in the owner's session there, the agent forwarded
// with ForwardAgent). All traffic stays on this machine.

var (
	rttList           = flag.String("rtt", "", "run the round-trip report at these RTTs between laptop and server (comma-separated, e.g. 5ms,50ms,100ms)")
	rttOut            = flag.String("rtt-out", "", "write the round-trip report's markdown to this file too")
	rttPairs          = flag.Int("rtt-pairs", 30, "interleaved direct/proxy pairs per RTT")
	rttBefore         = flag.String("rtt-before", "", "also measure this llm-agent-client binary (world-executable; an older build), before the tree's at each RTT, and report both")
	rttThink          = flag.Duration("rtt-think", 20*time.Millisecond, "the fake provider's think time before its first byte")
	rttProviderServer = flag.Duration("rtt-provider-server", 0, "RTT between the server and the fake provider (0: next to it)")
	rttProviderLaptop = flag.Duration("rtt-provider-laptop", 30*time.Millisecond, "RTT between the laptop and the fake provider (probed and reported, for the relay)")
	rttClientOnly     = flag.Bool("rtt-client-only", false, "measure only the client's own round trips (get against ssh-add -l), not the proxy's rows")
	rttTTY            = flag.Bool("rtt-tty", true, "give the owner's ssh session a terminal (ssh -tt), as an interactive login has")
)

// slowToken is a credential added with -c: each use waits for the owner's
// confirmation, which the askpass never gives in time, so requests that
// use it keep their get in flight (the disconnect row).
const slowToken = "sk-bench-confirm-0123456789abcdef"

// burstSizes are the concurrent request counts of the report.
var burstSizes = []int{8, 64}

// streamSize is the long answer of the throughput row.
const streamSize = 8 << 20

// rttResult is one RTT's measurements.
type rttResult struct {
	set, before, after time.Duration // the RTT asked for; probed before and after
	client             string        // which llm-agent-client
	relay              bool          // proxy --relay: the laptop calls the provider
	floor              time.Duration // relay: its physical floor
	direct, proxy      []time.Duration
	pairChannels       int               // agent channels opened during the pairs
	single             []time.Duration   // whole time of one request alone
	bursts             map[int][]lgBurst // by size
	rateDirect         []float64
	rateProxy          []float64
	heldCodes          []int
	heldFail           time.Duration // kill to the last held request's end
	afterCode          int
	afterTook          time.Duration
	errors             []string
}

type lgBurst struct {
	total, direct time.Duration // through the proxy; the same burst direct
	errors        int
	channels      int // agent channels sshd opened for it
}

// rttClient is an llm-agent-client build to measure, as proxy or, with
// relay, as proxy --relay.
type rttClient struct {
	name, path string
	relay      bool
}

// rttEnv is what every RTT shares: the laptop's agent, the server, the
// owner's account there, the fake provider and the paths to it.
type rttEnv struct {
	agent        *agenttest.Agent
	server       *sshtest.Server
	user         *sshtest.User
	clients      []rttClient
	loadgen      string // this test binary, executable by the user
	provider     string // the fake provider as the server reaches it
	provFromLap  string // and as the laptop reaches it (relayed requests)
	echo         string
	provServer   time.Duration // probed RTTs to the provider
	provLaptop   time.Duration
	askpass      string
	proxyLogPath string
}

func TestRTT(t *testing.T) {
	if *rttList == "" {
		t.Skip("the round-trip report runs with bench/run (go test -run '^TestRTT$' ./bench/ -args -rtt 5ms,50ms,100ms)")
	}
	sshtest.RequireRoot(t)
	var rtts []time.Duration
	for _, s := range strings.Split(*rttList, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d <= 0 {
			t.Fatalf("-rtt %q: want positive durations such as 50ms", s)
		}
		rtts = append(rtts, d)
	}
	start, load := time.Now(), loadAverage()
	e := setupRTT(t)
	var results []*rttResult
	for _, rtt := range rtts {
		if *rttClientOnly {
			break
		}
		for _, client := range e.clients {
			r := measureRTT(t, e, rtt, client)
			results = append(results, r)
			t.Logf("RTT %v, %s: measured %v, added %.1f ms (%.2f RTT)", rtt, client.name, r.rtt(), ms(r.added()), r.addedRTT())
		}
	}
	var clients []clientRTTResult
	for _, rtt := range rtts {
		r := measureClientRTT(t, e, rtt, *rttPairs)
		clients = append(clients, r)
		t.Logf("RTT %v: client get %v (SSH_AUTH_SOCK), %v (LLM_AUTH_SOCK), ssh-add -l %v", r.rtt, r.median["get, SSH_AUTH_SOCK"], r.median["get, LLM_AUTH_SOCK"], r.median["ssh-add -l"])
	}
	md := rttReport(e, results, time.Since(start), load+" at the start, "+loadAverage()+" at the end") + clientRTTReport(clients, *rttPairs)
	fmt.Print(md)
	if *rttOut != "" {
		if err := os.WriteFile(*rttOut, []byte(md), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func setupRTT(t *testing.T) *rttEnv {
	e := &rttEnv{}
	if *rttBefore != "" {
		e.clients = append(e.clients, rttClient{name: "before", path: *rttBefore})
	}
	e.clients = append(e.clients, rttClient{name: "this tree", path: bins.Client},
		rttClient{name: "relay", path: bins.Client, relay: true})
	dir := sshtest.PublicDir(t, 0o755, nil)
	e.askpass = filepath.Join(dir, "askpass")
	// The owner never answers in time: a confirm-marked get stays in
	// flight for 20 s, then is refused.
	if err := os.WriteFile(e.askpass, []byte("#!/bin/sh\nsleep 20\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	prov := startProvider(t, *rttThink, token, slowToken)
	e.echo = startEchoTCP(t)
	e.provider = newPath(*rttProviderServer).link(t, prov.addr)
	e.provFromLap = newPath(*rttProviderLaptop).link(t, prov.addr)
	e.provServer = newPath(*rttProviderServer).probe(t, e.echo, 20)
	e.provLaptop = newPath(*rttProviderLaptop).probe(t, e.echo, 20)
	// Relayed requests leave from the laptop, through its own path to
	// the provider.
	e.agent = agenttest.Start(t, bins, agenttest.Options{Env: []string{"LLM_AGENT_ASKPASS=" + e.askpass},
		Args: []string{"--relay-upstream", "anthropic=" + providerURL(e.provFromLap), "--relay-upstream", "slow=" + providerURL(e.provFromLap)}})
	if r := e.agent.Client(t, token, "add", "anthropic"); r.Code != 0 {
		t.Fatalf("add: %s", r.Stderr)
	}
	if r := e.agent.Client(t, slowToken, "add", "-c", "slow"); r.Code != 0 {
		t.Fatalf("add -c: %s", r.Stderr)
	}
	e.loadgen = filepath.Join(dir, "bench.test")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := copyFile(self, e.loadgen, 0o755); err != nil {
		t.Fatal(err)
	}
	e.server = sshtest.Start(t, sshtest.Options{Name: "rtthost"})
	e.user = sshtest.NewUser(t, "rtt")
	e.proxyLogPath = filepath.Join(e.user.Home, "rtt-proxy.log")
	return e
}

// channels counts the agent connections sshd has forwarded so far, one
// channel to the laptop each (its DEBUG1 log names every one).
func (e *rttEnv) channels() int {
	b, _ := os.ReadFile(e.server.LogPath)
	return strings.Count(string(b), "[accepted auth socket]")
}

func copyFile(from, to string, mode os.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// control is the test's end of the load generator's control connection.
type control struct {
	t   *testing.T
	enc *json.Encoder
	dec *json.Decoder
}

func (c *control) do(cmd lgCommand) lgResult {
	c.t.Helper()
	if err := c.enc.Encode(cmd); err != nil {
		c.t.Fatalf("load generator: %v", err)
	}
	var r lgResult
	if err := c.dec.Decode(&r); err != nil {
		c.t.Fatalf("load generator (%s): %v", cmd.Op, err)
	}
	if r.Err != "" {
		c.t.Fatalf("load generator (%s): %s", cmd.Op, r.Err)
	}
	return r
}

// measureRTT measures one RTT: the owner logs in through a link of that
// RTT and starts the proxy with the load generator under it; the
// load generator runs the rows; then the owner's ssh is killed.
func measureRTT(t *testing.T, e *rttEnv, rtt time.Duration, client rttClient) *rttResult {
	r := &rttResult{set: rtt, client: client.name, relay: client.relay, bursts: map[int][]lgBurst{}}
	path := newPath(rtt)
	r.before = path.probe(t, e.echo, 20)
	_, port, _ := net.SplitHostPort(path.link(t, e.server.Addr))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// setsid: the owner's disconnect must not take the proxy's session
	// (a terminal's hangup) with it; only the forwarded agent goes.
	mode := fmt.Sprintf("--upstream anthropic=%s --upstream slow=%s", providerURL(e.provider), providerURL(e.provider))
	if client.relay {
		mode = "--relay" // the laptop's --relay-upstream routes them
	}
	remote := fmt.Sprintf("exec setsid -w %s proxy %s -- %s -loadgen %s -loadgen-direct %s >>%s 2>&1 </dev/null",
		client.path, mode, e.loadgen, ln.Addr(), providerURL(e.provider), e.proxyLogPath)
	args := []string{"-o", "ForwardAgent=" + e.agent.Sock, "-o", "Port=" + port}
	if *rttTTY {
		args = append(args, "-tt")
	}
	ssh := e.server.SSH(e.user, args, remote)
	ssh.Env = append(ssh.Env, "SSH_AUTH_SOCK="+e.agent.Sock) // see sshtest: ssh forwards only to a live agent
	var sshOut strings.Builder
	ssh.Stdout, ssh.Stderr = &sshOut, &sshOut
	if err := ssh.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ssh.Process.Kill()
		ssh.Wait()
	}()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(60 * time.Second))
	conn, err := ln.Accept()
	if err != nil {
		log, _ := os.ReadFile(e.proxyLogPath)
		t.Fatalf("the load generator did not call in: %v; ssh: %s; proxy log: %s", err, sshOut.String(), log)
	}
	defer conn.Close()
	c := &control{t: t, enc: json.NewEncoder(conn), dec: json.NewDecoder(bufio.NewReader(conn))}
	keep := func(res lgResult) lgResult {
		r.errors = append(r.errors, res.Errors...)
		return res
	}

	// Warm up: the tool's connections, the proxy's upstream connections
	// and whatever the proxy keeps.
	c.do(lgCommand{Op: "ttfb", N: 3})
	before := e.channels()
	res := keep(c.do(lgCommand{Op: "ttfb", N: *rttPairs}))
	r.pairChannels = e.channels() - before
	r.direct, r.proxy = nanos(res.Direct), nanos(res.Proxy)
	for i := 0; i < 5; i++ {
		res := keep(c.do(lgCommand{Op: "burst", N: 1}))
		r.single = append(r.single, time.Duration(res.Total))
	}
	for _, n := range burstSizes {
		for i := 0; i < 3; i++ {
			before := e.channels()
			res := keep(c.do(lgCommand{Op: "burst", N: n}))
			opened := e.channels() - before
			d := keep(c.do(lgCommand{Op: "burst", N: n, Direct: true}))
			r.bursts[n] = append(r.bursts[n], lgBurst{total: time.Duration(res.Total), direct: time.Duration(d.Total), errors: len(res.Errors), channels: opened})
			t.Logf("RTT %v: %d at once: %v through the proxy (slowest request %v, %d channels), %v direct", rtt, n,
				time.Duration(res.Total).Round(time.Millisecond/10), slices.Max(nanos(res.Each)).Round(time.Millisecond/10), opened, time.Duration(d.Total).Round(time.Millisecond/10))
		}
	}

	res = keep(c.do(lgCommand{Op: "stream", N: 9, Size: streamSize}))
	r.rateDirect, r.rateProxy = res.DirectRate, res.ProxyRate
	r.after = path.probe(t, e.echo, 20)
	// The relay's floor: one laptop round trip, plus the laptop's own
	// round trip to the provider, less the server's (which the direct
	// requests pay too).
	r.floor = r.rtt() + e.provLaptop - e.provServer

	// The owner leaves while gets wait for the owner's confirmation.
	const held = 8
	c.do(lgCommand{Op: "hold", N: held})
	time.Sleep(time.Second + 4*rtt)
	killed := time.Now()
	ssh.Process.Kill()
	res = c.do(lgCommand{Op: "held", N: held})
	r.heldCodes = res.Codes
	for _, end := range res.Ends {
		r.heldFail = max(r.heldFail, time.Unix(0, end).Sub(killed))
	}
	res = c.do(lgCommand{Op: "after"})
	r.afterCode, r.afterTook = res.Codes[0], time.Duration(res.Each[0])
	c.enc.Encode(lgCommand{Op: "quit"})

	if len(r.errors) > 0 {
		t.Logf("RTT %v: %d failed requests, the first: %s", rtt, len(r.errors), r.errors[0])
	}
	return r
}

func nanos(v []int64) []time.Duration {
	d := make([]time.Duration, len(v))
	for i, n := range v {
		d[i] = time.Duration(n)
	}
	return d
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// rtt is the path's RTT as probed, the mean of before and after.
func (r *rttResult) rtt() time.Duration { return (r.before + r.after) / 2 }

// added is what the proxy adds to the time to first byte: the difference
// of the medians.
func (r *rttResult) added() time.Duration { return median(r.proxy) - median(r.direct) }

func (r *rttResult) addedRTT() float64 { return float64(r.added()) / float64(r.rtt()) }

// target is the bound on added: 1.1 RTT + 2 ms for the proxy,
// the physical floor + 2 ms for the relay.
func (r *rttResult) target() time.Duration {
	if r.relay {
		return r.floor + 2*time.Millisecond
	}
	return time.Duration(1.1*float64(r.rtt())) + 2*time.Millisecond
}

func medianF(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

// rttReport renders the results as the report's markdown section.
// loadAverage is the 1-minute load average, to say how quiet the machine
// was.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

func rttReport(e *rttEnv, rs []*rttResult, took time.Duration, load string) string {
	var b strings.Builder
	tty := "with a terminal (`ssh -tt`, as an interactive login)"
	if !*rttTTY {
		tty = "without a terminal"
	}
	fmt.Fprintf(&b, "\n## Round trips: the proxy over ssh with a delay between laptop and server\n\n")
	args := "-rtt " + *rttList
	if *rttBefore != "" {
		args += " -rtt-before OLD-llm-agent-client"
	}
	fmt.Fprintf(&b, "`go test -run '^TestRTT$' ./bench/ -args %s` (part of `bench/run`; %s on this machine, as root, on %s, 1-minute load average %s). ", args, took.Round(time.Second), time.Now().UTC().Format("2006-01-02"), load)
	fmt.Fprintf(&b, "The laptop is the test process: llm-agent and the owner's real `ssh` %s, forwarding the agent with `ForwardAgent`, to a real sshd on 127.0.0.1 through a user-space delaying TCP relay that holds every chunk RTT/2 in each direction, counted from its arrival. ", tty)
	fmt.Fprintf(&b, "The server is that ssh session: `llm-agent-client proxy -- ` a load generator (this test binary) as the tool; rows marked relay run `proxy --relay`, and the agent on the laptop calls the provider through the laptop's own path to it. ")
	fmt.Fprintf(&b, "The fake provider sits next to the server (probed RTT %.2f ms from the server, %.2f ms from the laptop) and thinks %v before its first byte. ", ms(e.provServer), ms(e.provLaptop), *rttThink)
	fmt.Fprintf(&b, "RTT is measured, not assumed: the median of 20 one-byte TCP echoes through a relay of the same path, before and after the rows (ICMP ping does not cross a user-space relay). ")
	if *rttBefore != "" {
		fmt.Fprintf(&b, "Rows marked before measure the build given with -rtt-before, beside this tree's in the same run. ")
	}
	fmt.Fprintf(&b, "Added time to first byte is the proxy's median minus the direct median over %d interleaved pairs of a small streamed request (the tool's connections kept open, as tools do), after 3 pairs of warm-up; channels are the agent connections sshd forwarded to the laptop during the pairs (from its log). The relay's floor is one laptop RTT plus the laptop's probed RTT to the provider minus the server's: what a request must pay when the laptop makes the call.\n\n", *rttPairs)

	fmt.Fprintf(&b, "| RTT set | proxy | RTT measured | direct TTFB p50 | proxy TTFB p50 | added | added / RTT | target: proxy ≤ 1.1 RTT + 2 ms, relay ≤ floor + 2 ms | met | channels |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "| %v | %s | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.2f | %.1f ms | %s | %d |\n", r.set, r.client, ms(r.rtt()), ms(median(r.direct)), ms(median(r.proxy)),
			ms(r.added()), r.addedRTT(), ms(r.target()), yesNo(r.added() <= r.target()), r.pairChannels)
	}

	fmt.Fprintf(&b, "\nConcurrent requests through the proxy, each a small streamed request read to its end, all started at once: 3 bursts of each size in a row, each followed by the same burst sent directly to the provider. The first burst of a size opens the agent connections it cannot find held (channels, and errors, are summed over the 3); total is the median of the 3, and one request alone the median of 5. The burst is serialised when it takes twice one request or more. Laptop and server share this machine's %d cores: the direct burst shows what the burst alone costs it.\n\n", runtime.NumCPU())
	fmt.Fprintf(&b, "| RTT measured | proxy | at once | errors | channels | first burst | proxy total | one request | total / one | serialised | direct total |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rs {
		one := median(r.single)
		for _, n := range burstSizes {
			var totals, directs []time.Duration
			errs, chans := 0, 0
			for _, x := range r.bursts[n] {
				totals = append(totals, x.total)
				directs = append(directs, x.direct)
				errs += x.errors
				chans += x.channels
			}
			tot := median(totals)
			ratio := float64(tot) / float64(one)
			fmt.Fprintf(&b, "| %.1f ms | %s | %d | %d | %d | %.1f ms | %.1f ms | %.1f ms | %.2f | %s | %.1f ms |\n", ms(r.rtt()), r.client, n, errs, chans, ms(totals[0]), ms(tot), ms(one), ratio,
				map[bool]string{true: "YES", false: "no"}[ratio >= 2], ms(median(directs)))
		}
	}
	fmt.Fprintf(&b, "\nStreaming throughput of an %d MiB answer from its first byte to its last (median of 9 interleaved), and the owner's disconnect: %d requests whose gets wait for the owner's confirmation when the owner's `ssh` is killed (SIGKILL); the time from the kill until the last of them has failed, and how long the next request then takes to fail.\n\n", streamSize>>20, 8)
	fmt.Fprintf(&b, "| RTT measured | proxy | direct MiB/s | proxy MiB/s | ratio | target ≥ 0.9 | held requests: statuses | all failed within | target ≤ 1 s | next request |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rs {
		d, p := medianF(r.rateDirect), medianF(r.rateProxy)
		ratio := 0.0
		if d > 0 {
			ratio = p / d
		}
		fmt.Fprintf(&b, "| %.1f ms | %s | %.0f | %.0f | %.3f | %s | %s | %.0f ms | %s | %d in %.1f ms |\n", ms(r.rtt()), r.client, d, p, ratio, yesNo(ratio >= 0.9),
			codes(r.heldCodes), ms(r.heldFail), yesNo(len(r.heldCodes) == 8 && allFailed(r.heldCodes) && r.heldFail <= time.Second), r.afterCode, ms(r.afterTook))
	}
	var errs []string
	for _, r := range rs {
		for _, e := range r.errors {
			errs = append(errs, fmt.Sprintf("%v, %s: %s", r.set, r.client, e))
		}
	}
	if len(errs) > 0 {
		fmt.Fprintf(&b, "\n%d requests failed; the first: %s\n", len(errs), errs[0])
	}
	return b.String()
}

func codes(c []int) string {
	count := map[int]int{}
	var keys []int
	for _, v := range c {
		if count[v] == 0 {
			keys = append(keys, v)
		}
		count[v]++
	}
	sort.Ints(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d× %d", count[k], k))
	}
	return strings.Join(parts, ", ")
}

func allFailed(c []int) bool {
	for _, v := range c {
		if v < 400 {
			return false
		}
	}
	return true
}

package bench

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	sshagent "golang.org/x/crypto/ssh/agent"

	"github.com/llm-agent/llm-agent/internal/agenttest"
	"github.com/llm-agent/llm-agent/internal/sshtest"
	"github.com/llm-agent/llm-agent/protocol"
)

var report = flag.Bool("report", false, "run the full report (bench/run) and write bench/RESULTS.md")

var bins agenttest.Bins

func TestMain(m *testing.M) {
	flag.Parse()
	if *loadgenControl != "" {
		// Started by TestRTT under the proxy, as the tool.
		os.Exit(runLoadgen(*loadgenControl, *loadgenDirect))
	}
	// Only the reports and the benchmarks need the binaries.
	if *report || *rttList != "" || flag.Lookup("test.bench").Value.String() != "" {
		b, err := agenttest.Build("..")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		bins = b
		defer os.RemoveAll(b.Dir)
	}
	code := m.Run()
	os.RemoveAll(bins.Dir)
	os.Exit(code)
}

// token is the credential the benchmarks fetch: a typical API key length.
const token = "sk-bench-0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab"

// fixture is what every row needs: an llm-agent with one credential, an
// ssh-agent with one ed25519 key, and an echo server, all on Unix sockets.
type fixture struct {
	llm     *agenttest.Agent
	sshSock string
	sshKey  ed25519.PublicKey
	echo    string
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	f := &fixture{llm: agenttest.Start(tb, bins, agenttest.Options{})}
	if r := f.llm.Client(tb, token, "add", "anthropic"); r.Code != 0 {
		tb.Fatalf("add: %s", r.Stderr)
	}
	dir := tb.TempDir()
	f.sshSock = filepath.Join(dir, "ssh-agent.sock")
	sshtest.StartSSHAgent(tb, f.sshSock, nil, nil)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	f.sshKey = pub
	c := dial(tb, f.sshSock)
	if err := sshagent.NewClient(c).Add(sshagent.AddedKey{PrivateKey: priv}); err != nil {
		tb.Fatalf("adding a key to ssh-agent: %v", err)
	}
	c.Close()
	f.echo = startEcho(tb, filepath.Join(dir, "echo.sock"))
	return f
}

func dial(tb testing.TB, path string) net.Conn {
	tb.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// startEcho serves length-prefixed frames back unchanged: the floor of a
// request/reply over a Unix socket.
func startEcho(tb testing.TB, path string) string {
	return agenttest.ServeUnix(tb, path, func(c net.Conn) {
		for {
			body, err := protocol.ReadFrame(c, protocol.MaxFrame)
			if err != nil {
				return
			}
			out := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
			if _, err := c.Write(append(out, body...)); err != nil {
				return
			}
		}
	})
}

// stats summarises latencies.
type stats struct {
	n         int
	p50, p99  time.Duration
	perSecond float64
}

func summarize(d []time.Duration) stats {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	if len(d) == 0 {
		return stats{}
	}
	return stats{n: len(d), p50: d[len(d)/2], p99: d[len(d)*99/100]}
}

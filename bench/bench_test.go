package bench

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/ssh"
	sshagent "golang.org/x/crypto/ssh/agent"

	"github.com/llm-agent/llm-agent/agent"
	"github.com/llm-agent/llm-agent/internal/agenttest"
	"github.com/llm-agent/llm-agent/memsafe"
	"github.com/llm-agent/llm-agent/protocol"
)

// op is one request/reply of a row, on an open connection.
type op func() error

func getOp(tb testing.TB, sock string) (op, func()) {
	c, err := protocol.Dial(sock)
	if err != nil {
		tb.Fatal(err)
	}
	return func() error {
		cred, err := c.Get("anthropic", nil)
		if err != nil {
			return err
		}
		cred.Wipe()
		return nil
	}, func() { c.Close() }
}

func echoOp(tb testing.TB, sock string) (op, func()) {
	c := dial(tb, sock)
	req := protocol.SimpleExtension(protocol.ExtStatus)
	return func() error {
		if _, err := c.Write(req); err != nil {
			return err
		}
		_, err := protocol.ReadFrame(c, protocol.MaxFrame)
		return err
	}, func() { c.Close() }
}

func sshListOp(tb testing.TB, sock string) (op, func()) {
	c := dial(tb, sock)
	a := sshagent.NewClient(c)
	return func() error { _, err := a.List(); return err }, func() { c.Close() }
}

func sshSignOp(tb testing.TB, sock string, key ssh.PublicKey) (op, func()) {
	c := dial(tb, sock)
	a := sshagent.NewClient(c)
	data := []byte("a typical 32-byte session hash..")
	return func() error { _, err := a.Sign(key, data); return err }, func() { c.Close() }
}

func sshPub(tb testing.TB, f *fixture) ssh.PublicKey {
	k, err := ssh.NewPublicKey(f.sshKey)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func runOp(b *testing.B, o op, done func()) {
	defer done()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := o(); err != nil {
			b.Fatal(err)
		}
	}
}

// Row 1: one request/reply on an open connection.
func BenchmarkRow1(b *testing.B) {
	f := newFixture(b)
	b.Run("floor=echo", func(b *testing.B) { o, d := echoOp(b, f.echo); runOp(b, o, d) })
	b.Run("llm-agent=get", func(b *testing.B) { o, d := getOp(b, f.llm.Sock); runOp(b, o, d) })
	b.Run("ssh-agent=list", func(b *testing.B) { o, d := sshListOp(b, f.sshSock); runOp(b, o, d) })
	b.Run("ssh-agent=sign-ed25519", func(b *testing.B) { o, d := sshSignOp(b, f.sshSock, sshPub(b, f)); runOp(b, o, d) })
}

// throughput runs total gets spread over clients connections and returns
// the number of errors.
func throughput(tb testing.TB, sock string, clients, total int) int64 {
	var errs, next atomic.Int64
	var wg sync.WaitGroup
	conns := make([]*protocol.Client, clients)
	for i := range conns {
		c, err := protocol.Dial(sock)
		if err != nil {
			tb.Fatal(err)
		}
		conns[i] = c
	}
	for _, c := range conns {
		wg.Add(1)
		go func(c *protocol.Client) {
			defer wg.Done()
			defer c.Close()
			for next.Add(1) <= int64(total) {
				cred, err := c.Get("anthropic", nil)
				if err != nil {
					errs.Add(1)
					continue
				}
				cred.Wipe()
			}
		}(c)
	}
	wg.Wait()
	return errs.Load()
}

// Row 4: gets per second with 1, 8, 64 and 512 concurrent clients.
func BenchmarkRow4Throughput(b *testing.B) {
	f := newFixture(b)
	for _, n := range []int{1, 8, 64, 512} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			b.ResetTimer()
			errs := throughput(b, f.llm.Sock, n, b.N)
			b.ReportMetric(float64(errs), "errors")
			if errs != 0 {
				b.Errorf("%d errors", errs)
			}
		})
	}
}

// BenchmarkInProcessGet runs the agent in the benchmark's own process, so
// that a CPU profile (bench/run) shows the agent's side of a get too.
func BenchmarkInProcessGet(b *testing.B) {
	// The admin socket: the benchmark adds a credential.
	sock := agenttest.Serve(b, agent.Config{Budget: memsafe.NewBudget(-1)}).Admin
	c, err := protocol.Dial(sock)
	if err != nil {
		b.Fatal(err)
	}
	err = c.Add(&protocol.AddRequest{Credential: protocol.Credential{Provider: "anthropic", Kind: protocol.KindAPI,
		Fields: []protocol.Field{{Name: protocol.FieldKey, Value: []byte(token)}}}})
	c.Close()
	if err != nil {
		b.Fatal(err)
	}
	o, done := getOp(b, sock)
	runOp(b, o, done)
}

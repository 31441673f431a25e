package agent_test

import (
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/agent"
	"github.com/llm-agent/llm-agent/protocol"
)

// fuzzServer is one agent per fuzz process, reused across inputs. It is
// replaced only when an input leaves it locked (the passphrase is somewhere
// in the input; guessing it back is not the point).
type fuzzServer struct {
	dir  string
	n    int
	a    *agent.Agent
	sock string // admin
	use  string // LLM_AUTH_SOCK
	done chan error
}

func (s *fuzzServer) start(tb testing.TB) {
	s.n++
	s.use = filepath.Join(s.dir, "agent.sock")
	s.sock = s.use + ".admin"
	os.Remove(s.sock)
	os.Remove(s.use)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: s.sock, Net: "unix"})
	if err != nil {
		tb.Fatal(err)
	}
	u, err := net.ListenUnix("unix", &net.UnixAddr{Name: s.use, Net: "unix"})
	if err != nil {
		tb.Fatal(err)
	}
	s.a = agent.New(agent.Config{
		Budget:         memlockBudget(),
		MaxConns:       64,
		MaxCredentials: 64,
		IdleTimeout:    500 * time.Millisecond,
		FrameTimeout:   200 * time.Millisecond,
		// Refreshes (seeds add oauth credentials of real providers) go
		// nowhere, fast: nothing listens on port 1.
		OAuthEndpoints: map[string]string{"openai": "http://127.0.0.1:1/", "anthropic": "http://127.0.0.1:1/", "github-copilot": "http://127.0.0.1:1/"},
		RefreshTimeout: 100 * time.Millisecond,
	})
	s.done = make(chan error, 1)
	go func(a *agent.Agent, done chan error) { done <- a.Serve(u, l) }(s.a, s.done)
}

func (s *fuzzServer) stop(tb testing.TB) {
	s.a.Close()
	if err := <-s.done; err != nil {
		tb.Errorf("Serve: %v", err)
	}
}

// FuzzConn sends each input as raw bytes on a fresh connection to a real
// agent, on the use socket (LLM_AUTH_SOCK) and then on the admin socket,
// reads whatever comes back, and then checks that the agent still answers
// a list on a new connection: no crash, no hang, no wedged agent.
func FuzzConn(f *testing.F) {
	// x/crypto's ServeAgent logs unknown opcodes through the log package.
	log.SetOutput(io.Discard)
	f.Cleanup(func() { log.SetOutput(os.Stderr) })
	dir, err := os.MkdirTemp("", "llm-fuzz-")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { os.RemoveAll(dir) })
	s := &fuzzServer{dir: dir}
	s.start(f)
	f.Cleanup(func() { s.stop(f) })

	f.Fuzz(func(t *testing.T, data []byte) {
		for _, path := range []string{s.use, s.sock} {
			c, err := net.DialTimeout("unix", path, 2*time.Second)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			// Write in the background: the agent may answer (and stop
			// reading) before the input is all sent.
			go func() {
				c.SetWriteDeadline(time.Now().Add(3 * time.Second))
				c.Write(data)
				c.(*net.UnixConn).CloseWrite()
			}()
			c.SetReadDeadline(time.Now().Add(3 * time.Second))
			io.Copy(io.Discard, c) // EOF once the agent has served the input; slow unlocks may time out
			c.Close()
		}

		cl, err := protocol.Dial(s.sock)
		if err != nil {
			t.Fatalf("agent gone: dial: %v", err)
		}
		cl.Timeout = 5 * time.Second
		_, err = cl.List()
		if err != nil && failureCode(err) != protocol.CodeLocked {
			cl.Close()
			t.Fatalf("agent does not answer a list: %v", err)
		}
		locked := err != nil
		cl.Close()
		s.a.RemoveAll()
		if locked {
			s.stop(t)
			s.start(t)
		}
	})
}

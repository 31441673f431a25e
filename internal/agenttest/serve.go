package agenttest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/llm-agent/llm-agent/agent"
	"github.com/llm-agent/llm-agent/protocol"
)

// Served is an agent.Agent served inside the test process, on the two
// sockets the daemon has: the use-only one and the admin one beside it.
type Served struct {
	*agent.Agent
	Use   string // the use-only socket, as printed in LLM_AUTH_SOCK
	Admin string // the management socket (Use + ".admin")
}

// Serve serves agent.New(cfg) on both sockets in a fresh private directory
// until cleanup, when it closes the agent and fails t if serving failed.
// The directory is made under os.TempDir rather than t.TempDir: a socket
// path must stay within the 108 bytes of sun_path, and long test names
// would overflow it.
func Serve(t testing.TB, cfg agent.Config) *Served {
	t.Helper()
	dir, err := os.MkdirTemp("", "llm-agent-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &Served{Use: filepath.Join(dir, "agent.sock"), Admin: filepath.Join(dir, "agent.sock.admin")}
	use, err := listen(s.Use)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := listen(s.Admin)
	if err != nil {
		use.Close()
		t.Fatal(err)
	}
	if cfg.CommandClients == nil {
		// The tests' clients run in the test binary itself.
		if exe, err := os.Executable(); err == nil {
			cfg.CommandClients = []string{exe}
		}
	}
	s.Agent = agent.New(cfg)
	done := make(chan error, 1)
	go func() { done <- s.Serve(use, admin) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("serving the in-process agent: %v", err)
		}
	})
	return s
}

// ServeUnix listens on the Unix socket path and runs handle on each
// connection in a goroutine of its own, closing the connection when handle
// returns. At cleanup it closes the listener and every open connection and
// waits for the handlers, so none outlives the test. It returns path.
func ServeUnix(t testing.TB, path string, handle func(net.Conn)) string {
	t.Helper()
	l, err := listen(path)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		open   = make(map[net.Conn]bool)
		closed bool
		wg     sync.WaitGroup
	)
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		closed = true
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed {
				c.Close() // accepted while cleanup ran: handle sees it closed
			}
			open[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					mu.Lock()
					delete(open, c)
					mu.Unlock()
					c.Close()
				}()
				handle(c)
			}()
		}
	}()
	return path
}

func listen(path string) (*net.UnixListener, error) {
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	return l, nil
}

// ParseSessionBind decodes a whole session-bind frame (length prefix
// included), as an SSH client sends it to an agent.
func ParseSessionBind(t testing.TB, frame []byte) *protocol.SessionBind {
	t.Helper()
	if len(frame) < 4 {
		t.Fatalf("session-bind frame of %d bytes has no length prefix", len(frame))
	}
	_, payload, err := protocol.ParseExtension(frame[4:])
	if err != nil {
		t.Fatalf("parsing the extension frame: %v", err)
	}
	b, err := protocol.ParseSessionBind(payload)
	if err != nil {
		t.Fatalf("parsing the session-bind: %v", err)
	}
	return b
}

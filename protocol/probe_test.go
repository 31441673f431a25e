package protocol_test

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	sshagent "golang.org/x/crypto/ssh/agent"

	"github.com/llm-agent/llm-agent/agent"
	"github.com/llm-agent/llm-agent/internal/agenttest"
	"github.com/llm-agent/llm-agent/protocol"
)

// recorder notes the order of a connection's writes and reads, to see
// whether the probe and the request went out before the first reply was
// waited for.
type recorder struct {
	net.Conn
	mu  sync.Mutex
	ops []byte // 'w' or 'r', one per call, runs collapsed
}

func (r *recorder) note(op byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ops) == 0 || r.ops[len(r.ops)-1] != op {
		r.ops = append(r.ops, op)
	}
}

func (r *recorder) Write(b []byte) (int, error) { r.note('w'); return r.Conn.Write(b) }
func (r *recorder) Read(b []byte) (int, error)  { r.note('r'); return r.Conn.Read(b) }

func dialRecorded(t *testing.T, sock string) (*protocol.Client, *recorder) {
	t.Helper()
	nc, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{Conn: nc}
	c := protocol.NewClient(rec)
	c.Timeout = 10 * time.Second
	t.Cleanup(func() { c.Close() })
	return c, rec
}

// plainAgent serves an x/crypto keyring, as a plain ssh-agent would, on
// a fresh socket, and returns the keyring behind it.
func plainAgent(t *testing.T) (sock string, keyring sshagent.Agent) {
	t.Helper()
	sock = filepath.Join(t.TempDir(), "plain.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	keyring = sshagent.NewKeyring()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); sshagent.ServeAgent(keyring, c) }()
		}
	}()
	return sock, keyring
}

// TestProbe: after Probe, a request of ours goes out right behind the
// probe (one round trip) and is answered as usual by llm-agent; a plain
// SSH agent fails it with ErrNotLLMAgent and is left as it was; a request
// a plain agent would act on (lock) is not sent to one at all.
func TestProbe(t *testing.T) {
	llm := agenttest.Serve(t, agent.Config{})
	admin := dial(t, llm.Admin)
	if err := admin.Add(&protocol.AddRequest{Credential: cred("anthropic", "api", "key", mKey)}); err != nil {
		t.Fatal(err)
	}
	plain, keyring := plainAgent(t)

	for _, tt := range []struct {
		name      string
		llm       bool
		call      func(c *protocol.Client) error
		pipelined bool
	}{
		{"get", true, func(c *protocol.Client) error {
			cr, err := c.Get("anthropic", nil)
			if err == nil {
				cr.Wipe()
			}
			return err
		}, true},
		{"list", true, func(c *protocol.Client) error { _, err := c.List(); return err }, true},
		{"get of nothing", true, func(c *protocol.Client) error {
			_, err := c.Get("nosuch", nil)
			if failureCode(err) == 0 {
				return errors.New("want a failure, got " + errString(err))
			}
			return nil
		}, true},
		{"query (standard extension)", true, func(c *protocol.Client) error { _, err := c.Query(); return err }, false},
		{"get", false, func(c *protocol.Client) error { _, err := c.Get("anthropic", nil); return err }, true},
		{"status", false, func(c *protocol.Client) error { _, err := c.Status(); return err }, true},
		{"lock", false, func(c *protocol.Client) error { return c.Lock([]byte("pass")) }, false},
	} {
		t.Run(map[bool]string{true: "llm-agent", false: "plain"}[tt.llm]+"/"+tt.name, func(t *testing.T) {
			sock := plain
			if tt.llm {
				sock = llm.Use
			}
			c, rec := dialRecorded(t, sock)
			c.Probe()
			err := tt.call(c)
			switch {
			case tt.llm && err != nil:
				t.Fatalf("%v", err)
			case !tt.llm && !errors.Is(err, protocol.ErrNotLLMAgent):
				t.Fatalf("err %v, want ErrNotLLMAgent", err)
			}
			// Pipelined: every write before the first read. Else the
			// request waits for the probe's answer, and a plain agent
			// never sees it.
			want := "wr"
			if !tt.pipelined && tt.llm {
				want = "wrwr"
			}
			if got := string(rec.ops); got != want {
				t.Errorf("writes and reads %q, want %q", got, want)
			}
			// The connection is left in step: the next exchange gets its
			// own reply, not one left over.
			if _, err := c.Call([]byte{0, 0, 0, 1, protocol.MsgRequestIdentities}); err != nil {
				t.Errorf("the next exchange: %v", err)
			}
			if !tt.llm {
				if _, err := keyring.List(); err != nil {
					t.Errorf("the plain agent was changed: List: %v", err)
				}
			}
		})
	}
}

// TestProbeOpenSSH: the same against OpenSSH's own ssh-agent, when there
// is one.
func TestProbeOpenSSH(t *testing.T) {
	path, err := exec.LookPath("ssh-agent")
	if err != nil {
		t.Skip("no ssh-agent on PATH (apt-get install -y openssh-client)")
	}
	sock := filepath.Join(t.TempDir(), "ssh.sock")
	cmd := exec.Command(path, "-D", "-a", sock)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; i < 500; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, lock := range []bool{false, true} {
		c := dial(t, sock)
		c.Probe()
		if lock {
			err = c.Lock([]byte("pass"))
		} else {
			_, err = c.Get("anthropic", nil)
		}
		if !errors.Is(err, protocol.ErrNotLLMAgent) {
			t.Errorf("lock %v: %v, want ErrNotLLMAgent", lock, err)
		}
		if body, err := c.Call([]byte{0, 0, 0, 1, protocol.MsgRequestIdentities}); err != nil || body[0] != 12 {
			t.Errorf("lock %v: ssh-agent after the probe: %v, reply %v; want SSH_AGENT_IDENTITIES_ANSWER (not locked, in step)", lock, err, body)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}

package protocol_test

import (
	"errors"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/agent"
	"github.com/llm-agent/llm-agent/internal/agenttest"
	"github.com/llm-agent/llm-agent/protocol"
)

func dial(t *testing.T, sock string) *protocol.Client {
	t.Helper()
	c, err := protocol.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	c.Timeout = 10 * time.Second
	t.Cleanup(func() { c.Close() })
	return c
}

func failureCode(err error) uint32 {
	var f *protocol.Failure
	if errors.As(err, &f) {
		return f.Code
	}
	return 0
}

func TestClient(t *testing.T) {
	sock := agenttest.Serve(t, agent.Config{}).Admin
	c := dial(t, sock)

	names, err := c.Query()
	if err != nil || !slices.Equal(names, protocol.Extensions) {
		t.Fatalf("Query = %q, %v", names, err)
	}
	st, err := c.Status()
	if err != nil || st.Locked || st.Forwarded || st.Count != 0 || st.Version != agent.Version {
		t.Fatalf("Status = %+v, %v", st, err)
	}

	adds := sampleAdds(t)
	for _, name := range []string{"api", "oauth", "wellknown"} {
		if err := c.Add(adds[name]); err != nil {
			t.Fatalf("Add %s: %v", name, err)
		}
	}
	// Re-adding replaces.
	if err := c.Add(&protocol.AddRequest{Credential: cred("anthropic", "api", "key", mKey)}); err != nil {
		t.Fatalf("re-Add: %v", err)
	}
	list, err := c.List()
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var got []string
	for _, e := range list {
		got = append(got, e.Provider+"/"+e.Kind)
	}
	if want := []string{"anthropic/api", "example/wellknown", "openai/oauth"}; !slices.Equal(got, want) {
		t.Fatalf("List = %q, want %q", got, want)
	}

	cr, err := c.Get("anthropic", &protocol.Requester{PID: 1, Exe: "/bin/test"})
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if cr.Provider != "anthropic" || cr.Kind != "api" || string(cr.Value("key")) != mKey {
		t.Errorf("Get returned provider %q kind %q; key matches: %v", cr.Provider, cr.Kind, string(cr.Value("key")) == mKey)
	}
	cr.Wipe()

	oauth, err := c.Get("openai", nil)
	if err != nil {
		t.Fatalf("Get openai: %v", err)
	}
	if oauth.Value("refresh") != nil {
		t.Errorf("get handed out the refresh token")
	}
	if string(oauth.Value("access")) != "at-FAKE" {
		t.Errorf("access token not returned")
	}

	if _, err := c.Get("nobody", nil); failureCode(err) != protocol.CodeNotFound {
		t.Errorf("Get of a missing provider: %v", err)
	}
	if err := c.Add(&protocol.AddRequest{Credential: cred("x", "api")}); failureCode(err) != protocol.CodeBadRequest {
		t.Errorf("Add of an invalid credential: %v", err)
	}
	if err := c.Remove("example"); err != nil {
		t.Errorf("Remove: %v", err)
	}
	if err := c.Remove("example"); failureCode(err) != protocol.CodeNotFound {
		t.Errorf("second Remove: %v", err)
	}

	if err := c.Lock([]byte("pw")); err != nil {
		t.Fatalf("Lock: %v", err)
	}
	if err := c.Lock([]byte("pw")); !errors.Is(err, protocol.ErrLockFailed) {
		t.Errorf("Lock while locked: %v", err)
	}
	if _, err := c.List(); failureCode(err) != protocol.CodeLocked {
		t.Errorf("List while locked: %v", err)
	}
	if st, err := c.Status(); err != nil || !st.Locked || st.Count != 2 {
		t.Errorf("Status while locked = %+v, %v", st, err)
	}
	if err := c.Unlock([]byte("wrong")); !errors.Is(err, protocol.ErrLockFailed) {
		t.Errorf("Unlock with a wrong passphrase: %v", err)
	}
	if err := c.Unlock([]byte("pw")); err != nil {
		t.Fatalf("Unlock: %v", err)
	}

	n, err := c.RemoveAll()
	if err != nil || n != 2 {
		t.Errorf("RemoveAll = %d, %v", n, err)
	}
	if list, err := c.List(); err != nil || len(list) != 0 {
		t.Errorf("List after RemoveAll = %v, %v", list, err)
	}
}

// A second client on the same agent sees what the first added.
func TestClientsShareTheAgent(t *testing.T) {
	sock := agenttest.Serve(t, agent.Config{}).Admin
	if err := dial(t, sock).Add(sampleAdds(t)["api"]); err != nil {
		t.Fatal(err)
	}
	st, err := dial(t, sock).Status()
	if err != nil || st.Count != 1 {
		t.Fatalf("Status = %+v, %v", st, err)
	}
}

// The client gives up on an agent that does not answer, within its Timeout.
func TestClientTimeout(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "mute.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			defer c.Close()
			time.Sleep(5 * time.Second)
		}
	}()
	c, err := protocol.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Timeout = 200 * time.Millisecond
	start := time.Now()
	_, err = c.Status()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Status on a mute agent: %v, want a timeout", err)
	}
	t.Logf("gave up after %v", time.Since(start).Round(time.Millisecond))
}

// A plain SSH agent answers extensions with SSH_AGENT_FAILURE; the client
// turns that into a *Failure, and the unknown reply byte into an error.
func TestClientAgainstPlainAgent(t *testing.T) {
	for _, tt := range []struct {
		reply []byte
		code  uint32
	}{
		{protocol.FailureFrame(), protocol.CodeFailed},
		{[]byte{0, 0, 0, 1, 99}, 0},
	} {
		server, client := net.Pipe()
		go func() {
			defer server.Close()
			if _, err := protocol.ReadFrame(server, protocol.MaxFrame); err == nil {
				server.Write(tt.reply)
			}
		}()
		c := protocol.NewClient(client)
		_, err := c.Query()
		if err == nil || failureCode(err) != tt.code {
			t.Errorf("reply %x: %v (code %d), want code %d", tt.reply, err, failureCode(err), tt.code)
		}
		c.Close()
	}
}

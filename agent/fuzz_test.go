package agent_test

import (
	"bytes"
	"crypto/ed25519"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

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

	for _, seed := range connSeeds(f) {
		f.Add(seed)
	}
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

// fixedKey is a deterministic ed25519 key, so the seeds do not change
// from run to run.
func fixedKey(t testing.TB, seed byte) (ed25519.PrivateKey, ssh.Signer) {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return priv, s
}

func frames(fs ...[]byte) []byte { return bytes.Join(fs, nil) }

func msgFrame(body []byte) []byte {
	return append([]byte{byte(len(body) >> 24), byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
}

func lockFrame(msg byte, pass string) []byte {
	return msgFrame(append([]byte{msg}, ssh.Marshal(struct{ P string }{pass})...))
}

// connSeeds are byte streams a client could send: whole sessions made of
// valid requests, and a few broken ones.
func connSeeds(t testing.TB) [][]byte {
	_, host := fixedKey(t, 0x11)
	bindFrame := func(sidByte byte, forwarding bool) []byte {
		sid := bytes.Repeat([]byte{sidByte}, 32)
		sig, err := host.Sign(nil, sid) // ed25519: deterministic
		if err != nil {
			t.Fatal(err)
		}
		return (&protocol.SessionBind{HostKey: host.PublicKey().Marshal(), SessionID: sid, Signature: ssh.Marshal(sig), Forwarding: forwarding}).Marshal()
	}
	bindFwd, bindAuth := bindFrame(0xab, true), bindFrame(0xcd, false)

	add := apiCred("anthropic", "sk-ant-FAKE-seed").Marshal()
	constrained := apiCred("openrouter", "sk-or-FAKE-seed")
	constrained.Lifetime = 60
	constrained.LocalOnly = true
	constrained.Destinations = []protocol.Chain{{{Host: "gpu1", Keys: [][]byte{host.PublicKey().Marshal()}}}}
	oauth := &protocol.AddRequest{Credential: protocol.Credential{Provider: "openai", Kind: "oauth", Fields: []protocol.Field{
		{Name: "refresh", Value: []byte("rt-FAKE")}, {Name: "access", Value: []byte("at-FAKE")}, {Name: "expires", Value: []byte("1")}}}}
	get := func(p string) []byte { return (&protocol.GetRequest{Provider: p}).Marshal() }
	ext := protocol.SimpleExtension

	keyPriv, keySigner := fixedKey(t, 0x22)
	addKey := msgFrame(append([]byte{protocol.MsgAddIdentity}, ssh.Marshal(struct {
		Type     string
		Pub      []byte
		Priv     []byte
		Comments string
	}{ssh.KeyAlgoED25519, keyPriv.Public().(ed25519.PublicKey), keyPriv, "seed key"})...))
	signReq := msgFrame(append([]byte{protocol.MsgSignRequest}, ssh.Marshal(struct {
		Key   []byte
		Data  []byte
		Flags uint32
	}{keySigner.PublicKey().Marshal(), []byte("data"), 0})...))

	return [][]byte{
		ext(protocol.ExtQuery),
		frames(add, get("anthropic"), ext(protocol.ExtList), ext(protocol.ExtStatus)),
		frames(add, (&protocol.RemoveRequest{Provider: "anthropic"}).Marshal(), ext(protocol.ExtRemoveAll)),
		frames(oauth.Marshal(), get("openai")),
		frames(constrained.Marshal(), get("openrouter"), ext(protocol.ExtList)),
		// a wrong passphrase in between
		frames(add, lockFrame(protocol.MsgLock, "pw"), get("anthropic"), lockFrame(protocol.MsgUnlock, "no"), lockFrame(protocol.MsgUnlock, "pw"), get("anthropic")),
		// after a forwarding bind: what a forwarded connection may and may not do
		frames(constrained.Marshal(), add, bindFwd, ext(protocol.ExtList), get("openrouter"), get("anthropic"), add, ext(protocol.ExtRemoveAll)),
		frames(bindAuth, bindFwd, ext(protocol.ExtStatus)),
		// the SSH-key side, locally and forwarded
		frames(msgFrame([]byte{protocol.MsgRequestIdentities}), addKey, signReq, msgFrame([]byte{protocol.MsgRemoveAllIdentities})),
		frames(bindFwd, addKey, msgFrame([]byte{protocol.MsgRequestIdentities})),
		frames(ext("nope@llm-agent"), ext("nope@example.com")),
		msgFrame([]byte{200, 1, 2, 3}),
		// broken: oversize, zero and truncated frames, a short header,
		// extensions without their payload
		{0, 4, 0, 1, protocol.MsgExtension},
		{0, 0, 0, 0},
		add[:len(add)-3],
		{0, 0},
		frames(ext(protocol.ExtAdd), ext(protocol.ExtStatus)),
		frames(ext(protocol.ExtSessionBind), ext(protocol.ExtStatus)),
	}
}

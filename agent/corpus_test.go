package agent_test

import (
	"bytes"
	"crypto/ed25519"
	"flag"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/llm-agent/llm-agent/internal/fuzzseed"
	"github.com/llm-agent/llm-agent/protocol"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the generated seed files in testdata/fuzz")

// TestSeedCorpus keeps testdata/fuzz/FuzzConn in step with the protocol's
// Marshal functions; -update-corpus rewrites the generated files. Other
// files there (crashers kept as regression seeds) are left alone.
func TestSeedCorpus(t *testing.T) {
	files := map[string][]byte{}
	for name, data := range connSeeds(t) {
		files[name] = fuzzseed.Bytes(data)
	}
	fuzzseed.Check(t, "./agent/", "FuzzConn", files, *updateCorpus)
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
func connSeeds(t testing.TB) map[string][]byte {
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

	return map[string][]byte{
		"query":            ext(protocol.ExtQuery),
		"add_get_list":     frames(add, get("anthropic"), ext(protocol.ExtList), ext(protocol.ExtStatus)),
		"add_remove":       frames(add, (&protocol.RemoveRequest{Provider: "anthropic"}).Marshal(), ext(protocol.ExtRemoveAll)),
		"oauth_get":        frames(oauth.Marshal(), get("openai")),
		"constrained":      frames(constrained.Marshal(), get("openrouter"), ext(protocol.ExtList)),
		"lock_unlock":      frames(add, lockFrame(protocol.MsgLock, "pw"), get("anthropic"), lockFrame(protocol.MsgUnlock, "no"), lockFrame(protocol.MsgUnlock, "pw"), get("anthropic")),
		"forwarded":        frames(constrained.Marshal(), add, bindFwd, ext(protocol.ExtList), get("openrouter"), get("anthropic"), add, ext(protocol.ExtRemoveAll)),
		"auth_bind":        frames(bindAuth, bindFwd, ext(protocol.ExtStatus)),
		"ssh_keys":         frames(msgFrame([]byte{protocol.MsgRequestIdentities}), addKey, signReq, msgFrame([]byte{protocol.MsgRemoveAllIdentities})),
		"ssh_keys_fwd":     frames(bindFwd, addKey, msgFrame([]byte{protocol.MsgRequestIdentities})),
		"unknown_ext":      frames(ext("nope@llm-agent"), ext("nope@example.com")),
		"unknown_msg":      msgFrame([]byte{200, 1, 2, 3}),
		"err_oversize":     {0, 4, 0, 1, protocol.MsgExtension},
		"err_zero_frame":   {0, 0, 0, 0},
		"err_truncated":    add[:len(add)-3],
		"err_bad_add":      frames(ext(protocol.ExtAdd), ext(protocol.ExtStatus)),
		"err_bad_bind":     frames(ext(protocol.ExtSessionBind), ext(protocol.ExtStatus)),
		"err_short_header": {0, 0},
	}
}

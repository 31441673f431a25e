package keychain

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/llm-agent/llm-agent/protocol"
)

// FuzzDecode: whatever the security tool prints, decode and ParseLogin
// return an error or a Claude Code login, never panic, and decode never
// grows the buffer: the answer stays where it was read.
func FuzzDecode(f *testing.F) {
	login := []byte(`{"claudeAiOauth":{"accessToken":"at-FAKE","refreshToken":"rt-FAKE","expiresAt":4102444800000}}`)
	pretty := []byte("{\n  \"claudeAiOauth\": {\"refreshToken\": \"rt-FAKE\"}\n}")
	for _, seed := range [][]byte{
		append(append([]byte(nil), login...), '\n'),
		[]byte(hex.EncodeToString(pretty) + "\n"),
		[]byte(`{"mcpOAuth":{}}`),
		[]byte("abc\n"),
		[]byte("7b7\n"),
		[]byte("7g\n"),
		{},
		[]byte("\n"),
		[]byte("   {\"claudeAiOauth\":1}"),
	} {
		f.Add(seed)
	}
	item := protocol.KeychainItem{Service: "Claude Code-credentials", Account: "alice"}
	f.Fuzz(func(t *testing.T, out []byte) {
		buf := bytes.Clone(out)
		data, err := decode(buf)
		if err != nil {
			return
		}
		if len(data) > len(out) || (len(data) > 0 && &data[0] != &buf[0]) {
			t.Fatalf("decode moved or grew the answer: %d bytes from %d", len(data), len(out))
		}
		entries, err := ParseLogin(item, data)
		for i := range entries {
			if entries[i].Provider != "anthropic" {
				t.Fatalf("a Claude Code login of provider %q", entries[i].Provider)
			}
			entries[i].Wipe()
		}
		_ = err
	})
}

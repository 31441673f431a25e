package protocol_test

import (
	"strings"
	"testing"

	"github.com/llm-agent/llm-agent/protocol"
)

func TestSourceValidate(t *testing.T) {
	cmd := func(kind string, fields []protocol.Field, c protocol.Constraints) *protocol.AddRequest {
		if c.Command == "" {
			c.Command = "op read op://Private/Anthropic/key"
		}
		return &protocol.AddRequest{Credential: protocol.Credential{Provider: "anthropic", Kind: kind, Fields: fields}, Constraints: c}
	}
	oauth := func(provider string, k *protocol.KeychainItem, wb *protocol.WriteBack) *protocol.AddRequest {
		return &protocol.AddRequest{
			Credential:  protocol.Credential{Provider: provider, Kind: protocol.KindOAuth, Fields: []protocol.Field{field("refresh", "rt-FAKE")}},
			Constraints: protocol.Constraints{Keychain: k, WriteBack: wb},
		}
	}
	item := &protocol.KeychainItem{Service: "Claude Code-credentials", Account: "alice"}
	for _, tc := range []struct {
		name string
		req  *protocol.AddRequest
		want string // "" means valid
	}{
		{"api command", cmd(protocol.KindAPI, nil, protocol.Constraints{Lifetime: 60}), ""},
		{"wellknown command", cmd(protocol.KindWellKnown, []protocol.Field{field("key", "EXAMPLE_TOKEN")}, protocol.Constraints{}), ""},
		{"wellknown without variable", cmd(protocol.KindWellKnown, nil, protocol.Constraints{}), `needs a non-empty "key"`},
		{"api with key too", cmd(protocol.KindAPI, []protocol.Field{field("key", "sk-FAKE")}, protocol.Constraints{}), "the command prints it"},
		{"oauth command", cmd(protocol.KindOAuth, nil, protocol.Constraints{}), "not oauth"},
		{"command with write-back", cmd(protocol.KindAPI, nil, protocol.Constraints{WriteBack: &protocol.WriteBack{Path: "/a", Format: "opencode"}}), "nothing to write back"},
		{"command with newline", cmd(protocol.KindAPI, nil, protocol.Constraints{Command: "a\nb"}), "control character"},
		{"command too long", cmd(protocol.KindAPI, nil, protocol.Constraints{Command: strings.Repeat("x", protocol.MaxTextLen+1)}), "longer than"},
		{"keychain", oauth("anthropic", item, nil), ""},
		{"keychain other provider", oauth("openai", item, nil), "anthropic oauth credential"},
		{"keychain empty account", oauth("anthropic", &protocol.KeychainItem{Service: "s"}, nil), "account is empty"},
		{"keychain control", oauth("anthropic", &protocol.KeychainItem{Service: "s\x1b", Account: "a"}, nil), "security -i could misread"},
		{"keychain quote", oauth("anthropic", &protocol.KeychainItem{Service: `Claude "x"`, Account: "a"}, nil), "security -i could misread"},
		{"keychain backslash", oauth("anthropic", &protocol.KeychainItem{Service: "s", Account: `a\b`}, nil), "security -i could misread"},
		{"keychain non-ascii", oauth("anthropic", &protocol.KeychainItem{Service: "s", Account: "é"}, nil), "security -i could misread"},
		{"keychain and file", oauth("anthropic", item, &protocol.WriteBack{Path: "/a.json", Format: "claude"}), "not both"},
	} {
		wantValid(t, tc.name, tc.req.Validate(), tc.want)
	}
}

func TestSourceParse(t *testing.T) {
	for _, name := range []string{"command", "keychain"} {
		req := sampleAdds(t)[name]
		frame := req.Marshal()
		_, payload, err := protocol.ParseExtension(frame[4:])
		if err != nil {
			t.Fatal(err)
		}
		got, err := protocol.ParseAddRequest(payload)
		if err != nil || got.Command != req.Command || (req.Keychain != nil) != (got.Keychain != nil) ||
			(req.Keychain != nil && *got.Keychain != *req.Keychain) {
			t.Fatalf("%s: round trip: %+v, %v", name, got, err)
		}
	}
	empty := []byte{255, 0, 0, 0, byte(len(protocol.ConstraintCommand))}
	empty = append(empty, protocol.ConstraintCommand...)
	empty = append(empty, 0, 0, 0, 0)
	base := sampleAdds(t)["api"].Marshal()
	_, payload, _ := protocol.ParseExtension(base[4:])
	if _, err := protocol.ParseAddRequest(append(append([]byte(nil), payload...), empty...)); err == nil || !strings.Contains(err.Error(), "empty command") {
		t.Errorf("empty command: %v", err)
	}
	twice := append(append(append([]byte(nil), payload...), empty[:len(empty)-4]...), 0, 0, 0, 1, 'x')
	twice = append(twice, twice[len(payload):]...)
	if _, err := protocol.ParseAddRequest(twice); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("command given twice: %v", err)
	}
}

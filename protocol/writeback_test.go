package protocol_test

import (
	"strings"
	"testing"

	"github.com/llm-agent/llm-agent/protocol"
)

func TestWriteBackValidate(t *testing.T) {
	oauth := func(provider string, wb *protocol.WriteBack) *protocol.AddRequest {
		return &protocol.AddRequest{
			Credential:  protocol.Credential{Provider: provider, Kind: protocol.KindOAuth, Fields: []protocol.Field{field("refresh", "rt-FAKE")}},
			Constraints: protocol.Constraints{WriteBack: wb},
		}
	}
	for _, tc := range []struct {
		name string
		req  *protocol.AddRequest
		want string // "" means valid
	}{
		{"opencode", oauth("github-copilot", &protocol.WriteBack{Path: "/home/u/.local/share/opencode/auth.json", Format: "opencode"}), ""},
		{"claude", oauth("anthropic", &protocol.WriteBack{Path: "/home/u/.claude/.credentials.json", Format: "claude"}), ""},
		{"codex", oauth("openai", &protocol.WriteBack{Path: "/home/u/.codex/auth.json", Format: "codex"}), ""},
		{"none", oauth("openai", nil), ""},
		{"relative", oauth("openai", &protocol.WriteBack{Path: "auth.json", Format: "opencode"}), "absolute"},
		{"unclean", oauth("openai", &protocol.WriteBack{Path: "/home/u/../v/auth.json", Format: "opencode"}), "clean"},
		{"format", oauth("openai", &protocol.WriteBack{Path: "/a.json", Format: "yaml"}), "unknown write-back format"},
		{"claude provider", oauth("openai", &protocol.WriteBack{Path: "/a.json", Format: "claude"}), "holds the anthropic credential"},
		{"codex provider", oauth("anthropic", &protocol.WriteBack{Path: "/a.json", Format: "codex"}), "holds the openai credential"},
		{"api kind", &protocol.AddRequest{
			Credential:  protocol.Credential{Provider: "openai", Kind: protocol.KindAPI, Fields: []protocol.Field{field("key", "sk-FAKE")}},
			Constraints: protocol.Constraints{WriteBack: &protocol.WriteBack{Path: "/a.json", Format: "opencode"}},
		}, "oauth credentials only"},
		{"bad credential first", oauth("", &protocol.WriteBack{Path: "/a.json", Format: "opencode"}), "provider name is empty"},
	} {
		wantValid(t, tc.name, tc.req.Validate(), tc.want)
	}
}

// wantValid checks a Validate error against want: "" for none, else a
// part of its message.
func wantValid(t *testing.T, name string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s: %v", name, err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Errorf("%s: %v, want an error saying %q", name, err, want)
	}
}

func TestWriteBackParse(t *testing.T) {
	req := sampleAdds(t)["write-back"]
	frame := req.Marshal()
	_, payload, err := protocol.ParseExtension(frame[4:])
	if err != nil {
		t.Fatal(err)
	}
	got, err := protocol.ParseAddRequest(payload)
	if err != nil || got.WriteBack == nil || *got.WriteBack != *req.WriteBack {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	// Twice, or cut short, is malformed.
	wb := []byte{255, 0, 0, 0, byte(len(protocol.ConstraintWriteBack))}
	wb = append(wb, protocol.ConstraintWriteBack...)
	wb = append(wb, 0, 0, 0, 2, '/', 'a', 0, 0, 0, 8)
	wb = append(wb, "opencode"...)
	if _, err := protocol.ParseAddRequest(append(append([]byte(nil), payload...), wb...)); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("write-back given twice: %v", err)
	}
	if _, err := protocol.ParseAddRequest(payload[:len(payload)-3]); err == nil {
		t.Errorf("truncated write-back constraint accepted")
	}
}

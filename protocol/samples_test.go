package protocol_test

import (
	"testing"

	"github.com/llm-agent/llm-agent/protocol"
)

// Sample messages shared by the round-trip tests and the fuzz seeds. The
// values are fake; none is a real secret.

func field(name, value string) protocol.Field {
	return protocol.Field{Name: name, Value: []byte(value)}
}

func sampleAdds(t testing.TB) map[string]*protocol.AddRequest {
	a, b := newHostKey(t, 1), newHostKey(t, 2)
	return map[string]*protocol.AddRequest{
		"api": {Credential: protocol.Credential{Provider: "anthropic", Kind: protocol.KindAPI,
			Fields: []protocol.Field{field("key", "sk-ant-FAKE-0001")}}},
		"oauth": {Credential: protocol.Credential{Provider: "openai", Kind: protocol.KindOAuth, Fields: []protocol.Field{
			field("refresh", "rt-FAKE"), field("access", "at-FAKE"), field("expires", "4102444800000"),
			field("accountId", "acct-0000"), field("enterpriseUrl", "github.example.com"), field("extra", `{"x":1}`)}}},
		"wellknown": {Credential: protocol.Credential{Provider: "example", Kind: protocol.KindWellKnown,
			Fields: []protocol.Field{field("key", "EXAMPLE_TOKEN"), field("token", "tok-FAKE")}}},
		"constrained": {
			Credential: protocol.Credential{Provider: "openrouter", Kind: protocol.KindAPI,
				Fields: []protocol.Field{field("key", "sk-or-FAKE")}},
			Constraints: protocol.Constraints{Lifetime: 3600, Confirm: true, LocalOnly: true, Destinations: []protocol.Chain{
				{{Host: "gpu1", Keys: [][]byte{a.blob}}},
				{{Host: "bastion", Keys: [][]byte{a.blob, b.blob}}, {Host: "gpu2", Keys: [][]byte{b.blob}}},
			}},
		},
		"empty-fields": {Credential: protocol.Credential{Provider: "p", Kind: "api"}},
		"write-back": {
			Credential: protocol.Credential{Provider: "anthropic", Kind: protocol.KindOAuth, Fields: []protocol.Field{
				field("refresh", "rt-FAKE"), field("access", "at-FAKE"), field("expires", "4102444800000")}},
			Constraints: protocol.Constraints{Confirm: true, WriteBack: &protocol.WriteBack{Path: "/home/u/.claude/.credentials.json", Format: "claude"}},
		},
		"keychain": {
			Credential: protocol.Credential{Provider: "anthropic", Kind: protocol.KindOAuth, Fields: []protocol.Field{
				field("refresh", "rt-FAKE"), field("access", "at-FAKE"), field("expires", "4102444800000")}},
			Constraints: protocol.Constraints{Keychain: &protocol.KeychainItem{Service: "Claude Code-credentials", Account: "alice"}},
		},
		"command": {
			Credential:  protocol.Credential{Provider: "anthropic", Kind: protocol.KindAPI},
			Constraints: protocol.Constraints{Lifetime: 1800, Command: "op read op://Private/Anthropic/key"},
		},
		"command-wellknown": {
			Credential:  protocol.Credential{Provider: "example", Kind: protocol.KindWellKnown, Fields: []protocol.Field{field("key", "EXAMPLE_TOKEN")}},
			Constraints: protocol.Constraints{Command: "pass show example/token | head -n1"},
		},
		"budget": {
			Credential:  protocol.Credential{Provider: "anthropic", Kind: protocol.KindAPI, Fields: []protocol.Field{field("key", "sk-ant-FAKE-0002")}},
			Constraints: protocol.Constraints{TokensPerDay: 2_000_000},
		},
	}
}

func sampleGets() map[string]*protocol.GetRequest {
	return map[string]*protocol.GetRequest{
		"plain": {Provider: "anthropic"},
		"requester": {Provider: "openai", Requester: &protocol.Requester{
			PID: 4242, UID: 1000, Exe: "/usr/bin/claude", Argv0: "claude", Cwd: "/home/u/src", Hostname: "gpu1"}},
		"empty-requester": {Provider: "x", Requester: &protocol.Requester{}},
	}
}

func sampleEntries() map[string][]protocol.Entry {
	return map[string][]protocol.Entry{
		"none": {},
		"two": {
			{Provider: "anthropic", Kind: "api", Added: 1700000000, Expires: 1700003600, Confirm: true},
			{Provider: "openai", Kind: "oauth", Added: 1700000001, LocalOnly: true, Destinations: []string{"gpu1", "bastion>gpu2"},
				AccessExpires: 1766390400000, HasRefresh: true},
		},
		"negative-times": {{Provider: "p", Kind: "api", Added: -1, Expires: -2, AccessExpires: -3}},
		"needs-login":    {{Provider: "openai", Kind: "oauth", Added: 1700000000, AccessExpires: 1700000001000, HasRefresh: true, NeedsLogin: true}},
		"command": {
			{Provider: "anthropic", Kind: "api", Added: 1700000000, Command: "op read op://Private/Anthropic/key", HasValue: true, ValueExpires: 1700001800},
			{Provider: "google-vertex", Kind: "api", Added: 1700000000, Command: "gcloud auth print-access-token", Attention: "the command exited with status 1"},
		},
	}
}

func sampleCreds() map[string]*protocol.Credential {
	return map[string]*protocol.Credential{
		"api":       {Provider: "anthropic", Kind: "api", Fields: []protocol.Field{field("key", "sk-ant-FAKE")}},
		"oauth":     {Provider: "openai", Kind: "oauth", Fields: []protocol.Field{field("access", "at-FAKE"), field("expires", "1")}},
		"wellknown": {Provider: "e", Kind: "wellknown", Fields: []protocol.Field{field("key", "E"), field("token", "t")}},
		"no-fields": {Provider: "e", Kind: "api"},
		"empty-value": {Provider: "e", Kind: "api", Fields: []protocol.Field{
			{Name: "key", Value: []byte{}}}},
	}
}

func sampleStatuses() map[string]protocol.Status {
	return map[string]protocol.Status{
		"zero":      {},
		"locked":    {Locked: true, Count: 3, Version: "0.1.0"},
		"forwarded": {Count: 1 << 31, Forwarded: true, Version: "v"},
	}
}

func sampleFailures() map[string]protocol.Failure {
	return map[string]protocol.Failure{
		"not-found": {Code: protocol.CodeNotFound, Message: `no credential for "x"`},
		"locked":    {Code: protocol.CodeLocked, Message: "agent is locked"},
		"odd-code":  {Code: 0xffffffff, Message: "é ü"},
	}
}

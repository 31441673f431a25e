package clientcmd

import (
	"strings"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/protocol"
)

func TestListOutput(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	oauth := protocol.Entry{Provider: "anthropic", Kind: "oauth", Added: now.Unix() - 60,
		AccessExpires: now.Add(90 * time.Second).UnixMilli(), HasRefresh: true}
	api := protocol.Entry{Provider: "openai", Kind: "api", Added: now.Unix(), Expires: now.Unix() + 3600,
		Confirm: true, LocalOnly: true, Destinations: []string{"a>b"}}
	stale := protocol.Entry{Provider: "x", Kind: "oauth", Added: now.Unix(), AccessExpires: now.Add(-time.Second).UnixMilli(), NeedsLogin: true}
	held := protocol.Entry{Provider: "anthropic", Kind: "api", Added: now.Unix(), Command: `op read "op://Private/Anthropic/key"`,
		HasValue: true, ValueExpires: now.Unix() + 1740}
	kept := protocol.Entry{Provider: "b", Kind: "api", Added: now.Unix(), Command: "pass show b", HasValue: true}
	notRun := protocol.Entry{Provider: "c", Kind: "wellknown", Added: now.Unix(), Command: "vault kv get -field=token secret/c"}
	failed := protocol.Entry{Provider: "d", Kind: "api", Added: now.Unix(), Command: "gcloud auth print-access-token", Attention: "the command exited with status 1"}
	tests := []struct {
		name        string
		entries     []protocol.Entry
		table, json string
	}{
		{"none", nil, "", "[]\n"},
		{"oauth", []protocol.Entry{oauth},
			"anthropic  oauth  forever  access token expires in 1m30s, refresh token held by the agent\n",
			`[
  {
    "provider": "anthropic",
    "kind": "oauth",
    "added": "2023-11-14T22:12:20Z",
    "confirm": false,
    "localOnly": false,
    "accessExpires": "2023-11-14T22:14:50Z",
    "hasRefresh": true
  }
]
`},
		{"constrained", []protocol.Entry{api},
			"openai  api  1h0m0s left  confirm, local-only, host a>b\n",
			`[
  {
    "provider": "openai",
    "kind": "api",
    "added": "2023-11-14T22:13:20Z",
    "expires": "2023-11-14T23:13:20Z",
    "confirm": true,
    "localOnly": true,
    "destinations": [
      "a\u003eb"
    ]
  }
]
`},
		{"needs login", []protocol.Entry{stale},
			"x  oauth  forever  access token expired, NEEDS A NEW LOGIN (see get)\n", ""},
		{"from command", []protocol.Entry{held},
			"anthropic  api  forever  from command \"op read \\\"op://Private/Anthropic/key\\\"\", value held, forgotten in 29m0s\n",
			`[
  {
    "provider": "anthropic",
    "kind": "api",
    "added": "2023-11-14T22:13:20Z",
    "confirm": false,
    "localOnly": false,
    "command": "op read \"op://Private/Anthropic/key\"",
    "hasValue": true,
    "valueExpires": "2023-11-14T22:42:20Z"
  }
]
`},
		{"command states", []protocol.Entry{kept, notRun, failed},
			`b  api        forever  from command "pass show b", value held until removed
c  wellknown  forever  from command "vault kv get -field=token secret/c", no value held: the next get runs the command
d  api        forever  from command "gcloud auth print-access-token", needs attention: the command exited with status 1 (see get)
`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var table strings.Builder
			if err := listTable(&table, tt.entries, now); err != nil {
				t.Fatal(err)
			}
			if table.String() != tt.table {
				t.Errorf("table:\n%q\nwant\n%q", table.String(), tt.table)
			}
			if tt.json == "" {
				return
			}
			var js strings.Builder
			if err := listJSON(&js, tt.entries); err != nil {
				t.Fatal(err)
			}
			if js.String() != tt.json {
				t.Errorf("json:\n%s\nwant\n%s", js.String(), tt.json)
			}
		})
	}
}

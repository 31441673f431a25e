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

package protocol_test

import (
	"strings"
	"testing"

	"github.com/llm-agent/llm-agent/protocol"
)

// Marker values: if one shows up in an error message, Validate leaked a
// field value. They are fake and distinct so that a leak names the field.
const (
	mKey     = "MARKER-KEY-5a1f0c"
	mRefresh = "MARKER-REFRESH-93be"
	mAccess  = "MARKER-ACCESS-07d2"
	mToken   = "MARKER-TOKEN-c4e8"
	mAccount = "MARKER-ACCOUNT-11aa"
	mExtra   = `{"MARKER-EXTRA-3f3f":1}`
	mBadNum  = "MARKER-NOT-A-NUMBER"
	mControl = "MARKER-CTRL-\x01-99"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		cred   protocol.Credential
		errHas string // "" means valid
	}{
		{"api", cred("anthropic", "api", "key", mKey), ""},
		{"api with extra", cred("anthropic", "api", "key", mKey, "extra", mExtra), ""},
		{"api without key", cred("anthropic", "api"), `non-empty "key"`},
		{"api with empty key", cred("anthropic", "api", "key", ""), `non-empty "key"`},
		{"api with refresh", cred("anthropic", "api", "key", mKey, "refresh", mRefresh), `"refresh" does not belong`},
		{"api with key twice", cred("anthropic", "api", "key", mKey, "key", mAccess), `"key" given twice`},
		{"oauth full", cred("openai", "oauth", "refresh", mRefresh, "access", mAccess, "expires", "1766390400000",
			"accountId", mAccount, "enterpriseUrl", "ghe.example.com", "extra", mExtra), ""},
		{"oauth refresh only", cred("openai", "oauth", "refresh", mRefresh), ""},
		{"oauth negative expires", cred("openai", "oauth", "refresh", mRefresh, "expires", "-5"), ""},
		{"oauth without refresh", cred("openai", "oauth", "access", mAccess), `non-empty "refresh"`},
		{"oauth non-numeric expires", cred("openai", "oauth", "refresh", mRefresh, "expires", mBadNum), `"expires" is not a decimal number`},
		{"oauth expires overflow", cred("openai", "oauth", "refresh", mRefresh, "expires", "99999999999999999999"), `"expires" is not a decimal`},
		{"oauth empty expires", cred("openai", "oauth", "refresh", mRefresh, "expires", ""), `"expires" is not a decimal`},
		{"oauth control char in accountId", cred("openai", "oauth", "refresh", mRefresh, "accountId", mControl), `"accountId"`},
		{"oauth accountId too long", cred("openai", "oauth", "refresh", mRefresh, "accountId", mAccount+strings.Repeat("x", protocol.MaxTextLen)), "longer than"},
		{"oauth with key", cred("openai", "oauth", "refresh", mRefresh, "key", mKey), `"key" does not belong`},
		{"wellknown", cred("example", "wellknown", "key", "EXAMPLE_TOKEN", "token", mToken), ""},
		{"wellknown without token", cred("example", "wellknown", "key", "EXAMPLE_TOKEN"), `non-empty "token"`},
		{"wellknown without key", cred("example", "wellknown", "token", mToken), `non-empty "key"`},
		{"wellknown control char in key name", cred("example", "wellknown", "key", mControl, "token", mToken), `"key"`},
		{"unknown kind", cred("x", "password", "key", mKey), "unknown credential kind"},
		{"empty kind", cred("x", "", "key", mKey), "unknown credential kind"},
		{"unknown field", cred("x", "api", "key", mKey, "password", mToken), `"password" does not belong`},
		{"empty provider", cred("", "api", "key", mKey), "provider name is empty"},
		{"provider with space", cred("a b", "api", "key", mKey), "provider name"},
		{"provider too long", cred(strings.Repeat("p", 65), "api", "key", mKey), "longer than 64"},
		{"provider with slash and at", cred("github-copilot/enterprise@x:y", "api", "key", mKey), ""},
		{"secret with control characters", cred("x", "api", "key", "\x00\x01"+mKey), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cred.Validate()
			if tt.errHas == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, want an error containing %q", tt.errHas)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.errHas) {
				t.Errorf("error %q does not contain %q", msg, tt.errHas)
			}
			for _, f := range tt.cred.Fields {
				if len(f.Value) >= 4 && strings.Contains(msg, string(f.Value)) {
					t.Errorf("error message holds the value of field %q", f.Name)
				}
			}
			for _, m := range []string{"MARKER", "5a1f0c", "93be", "07d2", "c4e8", "11aa"} {
				if strings.Contains(msg, m) {
					t.Errorf("error message holds marker fragment %q", m)
				}
			}
		})
	}
}

func cred(provider, kind string, kv ...string) protocol.Credential {
	c := protocol.Credential{Provider: provider, Kind: kind}
	for i := 0; i < len(kv); i += 2 {
		c.Fields = append(c.Fields, field(kv[i], kv[i+1]))
	}
	return c
}

func TestIsSecret(t *testing.T) {
	secret := map[string][]string{
		"api":       {"key", "extra"},
		"oauth":     {"refresh", "access", "extra"},
		"wellknown": {"token", "extra"},
	}
	public := map[string][]string{
		"api":       {"expires"},
		"oauth":     {"expires", "accountId", "enterpriseUrl"},
		"wellknown": {"key"},
		"bogus":     {"key", "token"},
	}
	for kind, names := range secret {
		for _, n := range names {
			if !protocol.IsSecret(kind, n) {
				t.Errorf("%s %s: not secret", kind, n)
			}
		}
	}
	for kind, names := range public {
		for _, n := range names {
			if protocol.IsSecret(kind, n) {
				t.Errorf("%s %s: secret", kind, n)
			}
		}
	}
}

func TestCredentialWipe(t *testing.T) {
	c := cred("x", "oauth", "refresh", mRefresh, "access", mAccess)
	c.Wipe()
	for _, f := range c.Fields {
		for _, b := range f.Value {
			if b != 0 {
				t.Fatalf("field %q not wiped", f.Name)
			}
		}
	}
	if v := c.Value("access"); len(v) != len(mAccess) {
		t.Errorf("Value(access) has %d bytes", len(v))
	}
	if c.Value("nope") != nil {
		t.Errorf("Value of a missing field is not nil")
	}
}

func TestChainString(t *testing.T) {
	tests := []struct {
		chain protocol.Chain
		want  string
	}{
		{nil, ""},
		{protocol.Chain{{Host: "gpu1"}}, "gpu1"},
		{protocol.Chain{{Host: "bastion"}, {Host: "gpu1"}, {Host: "inner"}}, "bastion>gpu1>inner"},
	}
	for _, tt := range tests {
		if got := tt.chain.String(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

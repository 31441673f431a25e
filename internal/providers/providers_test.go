package providers_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/llm-agent/llm-agent/internal/providers"
)

func lookup(t *testing.T, name string) providers.Provider {
	t.Helper()
	p, ok := providers.Lookup(name)
	if !ok {
		t.Fatalf("no provider %q in the table", name)
	}
	return p
}

// TestTable pins each row's routes, variables and header shapes, so that
// a change to the table is a deliberate one.
func TestTable(t *testing.T) {
	for _, tc := range []struct {
		name, upstream, tokenBase string
		key                       providers.KeyStyle
		errors                    providers.ErrorShape
		baseVar, keyVars          string
		oauthVars                 string
	}{
		{"anthropic", "https://api.anthropic.com", "https://api.anthropic.com", providers.XAPIKey, providers.AnthropicErrors, "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"},
		{"openai", "https://api.openai.com/v1", "https://chatgpt.com/backend-api/codex", providers.Bearer, providers.OpenAIErrors, "OPENAI_BASE_URL", "OPENAI_API_KEY", ""},
		{"github-copilot", "https://api.githubcopilot.com", "https://api.githubcopilot.com", providers.Bearer, providers.OpenAIErrors, "", "", ""},
		{"openrouter", "https://openrouter.ai/api/v1", "https://openrouter.ai/api/v1", providers.Bearer, providers.OpenAIErrors, "", "OPENROUTER_API_KEY", ""},
		{"groq", "https://api.groq.com/openai/v1", "https://api.groq.com/openai/v1", providers.Bearer, providers.OpenAIErrors, "", "GROQ_API_KEY", ""},
		{"deepseek", "https://api.deepseek.com/v1", "https://api.deepseek.com/v1", providers.Bearer, providers.OpenAIErrors, "", "DEEPSEEK_API_KEY", ""},
		{"mistral", "https://api.mistral.ai/v1", "https://api.mistral.ai/v1", providers.Bearer, providers.OpenAIErrors, "", "MISTRAL_API_KEY", ""},
		{"xai", "https://api.x.ai/v1", "https://api.x.ai/v1", providers.Bearer, providers.OpenAIErrors, "", "XAI_API_KEY", ""},
		{"togetherai", "https://api.together.xyz/v1", "https://api.together.xyz/v1", providers.Bearer, providers.OpenAIErrors, "", "TOGETHER_AI_API_KEY,TOGETHER_API_KEY", ""},
		{"google", "https://generativelanguage.googleapis.com/v1beta", "https://generativelanguage.googleapis.com/v1beta", providers.GoogAPIKey, providers.GoogleErrors, "", "GOOGLE_GENERATIVE_AI_API_KEY,GEMINI_API_KEY", ""},
	} {
		p := lookup(t, tc.name)
		if p.Upstream != tc.upstream || p.TokenBaseURL() != tc.tokenBase || p.Key != tc.key || p.Errors != tc.errors ||
			p.BaseURLVar != tc.baseVar || strings.Join(p.KeyVars, ",") != tc.keyVars || strings.Join(p.OAuthVars, ",") != tc.oauthVars {
			t.Errorf("%s: %+v", tc.name, p)
		}
	}
	if n := len(providers.All()); n != 10 {
		t.Errorf("%d rows, want 10 (add the new row to this test)", n)
	}
	if _, ok := providers.Lookup("nosuch"); ok {
		t.Errorf("Lookup found a provider that has no row")
	}
}

// TestOAuthRows keeps the OAuth part complete: every row can be refreshed
// and says how to log in again and how its token goes upstream.
func TestOAuthRows(t *testing.T) {
	names := providers.OAuthNames()
	if fmt.Sprint(names) != "[anthropic github-copilot openai]" {
		t.Errorf("OAuth providers %v", names)
	}
	for _, n := range names {
		o := lookup(t, n).OAuth
		if o.TokenURL == "" || !strings.HasPrefix(o.TokenURL, "https://") || o.AccessField == "" || o.Login == "" ||
			(o.Grant != providers.GrantCopilot && o.ClientID == "") ||
			(o.ExpiresInField == "" && o.ExpiresAtField == "") {
			t.Errorf("incomplete row: %+v", o)
		}
	}
}

func TestKeyStyleHeader(t *testing.T) {
	for _, tc := range []struct {
		style       providers.KeyStyle
		name, value string
	}{
		{providers.Bearer, "Authorization", "Bearer K"},
		{providers.XAPIKey, "X-Api-Key", "K"},
		{providers.GoogAPIKey, "X-Goog-Api-Key", "K"},
	} {
		if h := tc.style.Header("K"); h.Name != tc.name || h.Value != tc.value {
			t.Errorf("%d: %+v", tc.style, h)
		}
	}
}

func TestEndpoint(t *testing.T) {
	cp := lookup(t, "github-copilot").OAuth
	for _, tc := range []struct {
		override, enterprise, want string
	}{
		{"", "", "https://api.github.com/copilot_internal/v2/token"},
		{"", "github.example.com", "https://api.github.example.com/copilot_internal/v2/token"},
		{"", "https://github.example.com/", "https://api.github.example.com/copilot_internal/v2/token"},
		{"http://127.0.0.1:9/x", "github.example.com", "http://127.0.0.1:9/x"},
	} {
		got, err := cp.Endpoint(tc.override, tc.enterprise)
		if err != nil || got != tc.want {
			t.Errorf("Endpoint(%q, %q) = %q, %v; want %q", tc.override, tc.enterprise, got, err, tc.want)
		}
	}
	if _, err := cp.Endpoint("", "evil.example.com/@x"); err == nil {
		t.Errorf("a bad enterpriseUrl was accepted")
	}
	if got, _ := lookup(t, "openai").OAuth.Endpoint("", "github.example.com"); got != "https://auth.openai.com/oauth/token" {
		t.Errorf("enterpriseUrl changed openai's endpoint to %q", got)
	}
}

func TestCheckURL(t *testing.T) {
	for raw, ok := range map[string]bool{
		"https://auth.example.com/token": true,
		"http://127.0.0.1:8080/token":    true,
		"http://[::1]:8080/token":        true,
		"http://localhost/token":         true,
		"http://auth.example.com/token":  false,
		"http://10.0.0.1/token":          false,
		"ftp://127.0.0.1/":               false,
		"https://user:pw@example.com/":   false,
		"https://":                       false,
		"://":                            false,
	} {
		if err := providers.CheckURL(raw); (err == nil) != ok {
			t.Errorf("CheckURL(%q) = %v, want ok %v", raw, err, ok)
		}
	}
}

func TestExecVars(t *testing.T) {
	for _, tc := range []struct {
		provider, kind string
		want           string
	}{
		{"anthropic", "api", "ANTHROPIC_API_KEY"},
		{"anthropic", "oauth", "CLAUDE_CODE_OAUTH_TOKEN"},
		{"openai", "api", "OPENAI_API_KEY"},
		{"openrouter", "api", "OPENROUTER_API_KEY"},
		{"togetherai", "api", "TOGETHER_AI_API_KEY,TOGETHER_API_KEY"},
		{"fireworks-ai", "api", "FIREWORKS_AI_API_KEY"},
		{"my.gateway", "api", "MY_GATEWAY_API_KEY"},
		{"fireworks-ai", "oauth", ""},
		{"openai", "oauth", ""},
	} {
		if got := strings.Join(providers.ExecVars(tc.provider, tc.kind), ","); got != tc.want {
			t.Errorf("ExecVars(%s, %s) = %q, want %q", tc.provider, tc.kind, got, tc.want)
		}
	}
}

package providers

import (
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"
	"time"
)

// KeyStyle is how a provider's API takes a key or token.
type KeyStyle int

const (
	// Bearer is "Authorization: Bearer KEY" (OpenAI, the OpenAI-compatible
	// providers, and every OAuth access token).
	Bearer KeyStyle = iota
	// XAPIKey is "x-api-key: KEY" (an Anthropic API key).
	XAPIKey
	// GoogAPIKey is "x-goog-api-key: KEY" (Google Gemini).
	GoogAPIKey
)

// Header is one HTTP header.
type Header struct{ Name, Value string }

// Header returns the header that carries secret in style k.
func (k KeyStyle) Header(secret string) Header {
	switch k {
	case XAPIKey:
		return Header{Name: "X-Api-Key", Value: secret}
	case GoogAPIKey:
		return Header{Name: "X-Goog-Api-Key", Value: secret}
	}
	return Header{Name: "Authorization", Value: "Bearer " + secret}
}

// ErrorShape is the JSON form of a provider's error answers; the proxy
// answers in it, so that a tool shows the proxy's errors as it shows the
// provider's own.
type ErrorShape int

const (
	// OpenAIErrors: {"error":{"message","type","param","code"}}.
	OpenAIErrors ErrorShape = iota
	// AnthropicErrors: {"type":"error","error":{"type","message"}}.
	AnthropicErrors
	// GoogleErrors: {"error":{"code","message","status"}}.
	GoogleErrors
)

// Grant is how a provider's token endpoint wants a refresh asked for.
type Grant int

const (
	// GrantForm POSTs grant_type=refresh_token, refresh_token and
	// client_id (and scope, if any) form-encoded, as RFC 6749 section 6.
	GrantForm Grant = iota
	// GrantJSON POSTs the same fields as a JSON object.
	GrantJSON
	// GrantCopilot is GitHub's Copilot token exchange: a GET with the
	// GitHub OAuth token (opencode's "refresh") as the bearer, answered
	// with a short-lived Copilot token. The GitHub token does not rotate.
	GrantCopilot
)

func (g Grant) String() string {
	switch g {
	case GrantForm:
		return "form"
	case GrantJSON:
		return "json"
	case GrantCopilot:
		return "copilot-exchange"
	}
	return "unknown"
}

// Provider is one row of the table: a provider's API, how it takes a key,
// which environment variables its tools read, and, for the providers whose
// OAuth logins llm-agent refreshes, how. The names are opencode's provider
// ids, which llm-agent credentials use too.
type Provider struct {
	Name string
	// Upstream is the API's base URL as tools are given it: with the
	// version segment for OpenAI-style SDKs (https://api.openai.com/v1),
	// without it for Anthropic's (https://api.anthropic.com). The proxy
	// serves it under /Name/.
	Upstream string
	Key      KeyStyle // how an API key goes upstream
	Errors   ErrorShape

	// BaseURLVar names the variable in which the provider's tools take
	// the base URL (ANTHROPIC_BASE_URL); proxy -- CMD sets it to the
	// proxy's route. Empty when tools have no such variable.
	BaseURLVar string
	// KeyVars are the variables that hold an API key: exec sets them to
	// the key, proxy -- CMD (when BaseURLVar is set) to the dummy key.
	KeyVars []string
	// OAuthVars hold an OAuth access token, for exec.
	OAuthVars []string
	// OpencodePath is appended to the proxy's route for opencode's
	// provider baseURL option (opencode's Anthropic SDK wants /v1 in it).
	OpencodePath string

	// OAuth is nil for providers whose tokens llm-agent does not refresh.
	OAuth *OAuth
}

// OAuth says how to refresh a provider's access token on the laptop and
// how the token goes upstream.
type OAuth struct {
	TokenURL string // token endpoint (for github-copilot: the exchange)
	ClientID string
	Scope    string // sent with the refresh when not empty
	Grant    Grant
	// TokenHeaders are sent to the token endpoint besides Accept and
	// Content-Type.
	TokenHeaders []Header

	// Fields of the endpoint's JSON answer.
	AccessField    string // the new access token
	RefreshField   string // a rotated refresh token, if the provider rotates; "" never
	ExpiresInField string // seconds from now
	ExpiresAtField string // seconds since the epoch
	// Lifetime is assumed when the answer gives no expiry (nor does the
	// access token, as a JWT).
	Lifetime time.Duration

	// BaseURL is the API the access token is for, when it is not the
	// provider's Upstream (a ChatGPT login's token is for ChatGPT's
	// backend, not api.openai.com).
	BaseURL string
	Token   KeyStyle // how the access token goes upstream
	// AccountHeader, when set, carries the credential's accountId.
	AccountHeader string
	Headers       []Header // sent upstream with every request as they are

	// Login is what the user runs on the laptop to log in again.
	Login string
}

// copilotHeaders identify the client to GitHub's Copilot endpoints as
// opencode's Copilot plugin does.
func copilotHeaders() []Header {
	return []Header{
		{"User-Agent", "GitHubCopilotChat/0.26.7"},
		{"Editor-Version", "vscode/1.99.3"},
		{"Editor-Plugin-Version", "copilot-chat/0.26.7"},
		{"Copilot-Integration-Id", "vscode-chat"},
	}
}

// openAICompatible is a row for an API that takes its key as a Bearer
// token in the variables named and answers errors as OpenAI does.
func openAICompatible(name, upstream string, keyVars ...string) Provider {
	return Provider{Name: name, Upstream: upstream, Key: Bearer, Errors: OpenAIErrors, KeyVars: keyVars}
}

// table returns the providers. It is a function, not a variable, so that
// no caller can change it. To add an OpenAI-compatible provider, add a row.
func table() []Provider {
	return []Provider{
		{
			Name: "anthropic", Upstream: "https://api.anthropic.com",
			Key: XAPIKey, Errors: AnthropicErrors,
			BaseURLVar: "ANTHROPIC_BASE_URL",
			KeyVars:    []string{"ANTHROPIC_API_KEY"},
			// Claude Code's variable for a Claude subscription token: with
			// it, Claude Code sends the OAuth beta header such tokens need
			// (ANTHROPIC_AUTH_TOKEN would send the token without it).
			OAuthVars:    []string{"CLAUDE_CODE_OAUTH_TOKEN"},
			OpencodePath: "/v1",
			// Claude Pro/Max through opencode's anthropic auth plugin; the
			// same client and endpoint serve Claude Code's own login.
			OAuth: &OAuth{
				TokenURL:       "https://console.anthropic.com/v1/oauth/token",
				ClientID:       "9d1c250a-e61b-44d9-88ed-5944d1962f5e",
				Grant:          GrantJSON,
				AccessField:    "access_token",
				RefreshField:   "refresh_token",
				ExpiresInField: "expires_in",
				Lifetime:       time.Hour,
				Headers:        []Header{{"anthropic-beta", "oauth-2025-04-20"}},
				Login:          "'claude' then /login, or 'opencode auth login'",
			},
		},
		{
			Name: "openai", Upstream: "https://api.openai.com/v1",
			Key: Bearer, Errors: OpenAIErrors,
			BaseURLVar: "OPENAI_BASE_URL",
			KeyVars:    []string{"OPENAI_API_KEY"},
			// A ChatGPT login's access token is no API key, and no tool
			// takes it from a variable: opencode gets it through
			// OPENCODE_AUTH_CONTENT, Codex through the proxy.
			//
			// ChatGPT login, as Codex CLI and opencode's Codex plugin do.
			OAuth: &OAuth{
				TokenURL:       "https://auth.openai.com/oauth/token",
				ClientID:       "app_EMoamEEZ73f0CkXaXp7hrann",
				Scope:          "openid profile email",
				Grant:          GrantForm,
				AccessField:    "access_token",
				RefreshField:   "refresh_token",
				ExpiresInField: "expires_in",
				Lifetime:       time.Hour,
				BaseURL:        "https://chatgpt.com/backend-api/codex",
				AccountHeader:  "ChatGPT-Account-Id",
				Login:          "'codex login' or 'opencode auth login'",
			},
		},
		{
			Name: "github-copilot", Upstream: "https://api.githubcopilot.com",
			Key: Bearer, Errors: OpenAIErrors,
			// opencode keeps the GitHub OAuth token (device flow, client
			// Iv1.b507a08c87ecfe98) as "refresh" and the Copilot token as
			// "access".
			OAuth: &OAuth{
				TokenURL:       "https://api.github.com/copilot_internal/v2/token",
				Grant:          GrantCopilot,
				TokenHeaders:   copilotHeaders(),
				AccessField:    "token",
				ExpiresAtField: "expires_at",
				Lifetime:       25 * time.Minute,
				Headers:        append(copilotHeaders(), Header{"Openai-Intent", "conversation-edits"}),
				Login:          "'opencode auth login' (GitHub Copilot)",
			},
		},
		openAICompatible("openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
		openAICompatible("groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY"),
		openAICompatible("deepseek", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
		openAICompatible("mistral", "https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
		openAICompatible("xai", "https://api.x.ai/v1", "XAI_API_KEY"),
		openAICompatible("togetherai", "https://api.together.xyz/v1", "TOGETHER_AI_API_KEY", "TOGETHER_API_KEY"),
		{
			Name: "google", Upstream: "https://generativelanguage.googleapis.com/v1beta",
			Key: GoogAPIKey, Errors: GoogleErrors,
			KeyVars: []string{"GOOGLE_GENERATIVE_AI_API_KEY", "GEMINI_API_KEY"},
		},
	}
}

// Lookup returns the provider named name.
func Lookup(name string) (Provider, bool) {
	for _, p := range table() {
		if p.Name == name {
			return p, true
		}
	}
	return Provider{}, false
}

// All returns the table, sorted by name.
func All() []Provider {
	t := table()
	sort.Slice(t, func(i, j int) bool { return t[i].Name < t[j].Name })
	return t
}

// OAuthNames lists the providers whose tokens llm-agent refreshes, sorted.
func OAuthNames() []string {
	var names []string
	for _, p := range All() {
		if p.OAuth != nil {
			names = append(names, p.Name)
		}
	}
	return names
}

// TokenBaseURL returns the API an OAuth access token is for.
func (p Provider) TokenBaseURL() string {
	if p.OAuth != nil && p.OAuth.BaseURL != "" {
		return p.OAuth.BaseURL
	}
	return p.Upstream
}

// Endpoint returns the token endpoint to use: override when set (llm-agent
// --oauth-endpoint), else for github-copilot with an enterpriseUrl the
// exchange on that GitHub Enterprise's API host, else the table's.
func (o *OAuth) Endpoint(override, enterpriseURL string) (string, error) {
	if override != "" {
		return override, nil
	}
	if o.Grant == GrantCopilot && enterpriseURL != "" {
		host := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(enterpriseURL, "https://"), "http://"), "/")
		if host == "" || strings.ContainsAny(host, "/?#@ ") {
			return "", fmt.Errorf("enterpriseUrl is not a host name")
		}
		return "https://api." + host + "/copilot_internal/v2/token", nil
	}
	return o.TokenURL, nil
}

// CheckURL accepts a URL that replaces one of the table's (a token
// endpoint for llm-agent --oauth-endpoint, an upstream for proxy
// --upstream): https, or plain http to a loopback address only (a token
// must not cross a network in clear; tests use fake servers on 127.0.0.1).
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a URL: %v", err)
	}
	if u.User != nil || u.Fragment != "" {
		return fmt.Errorf("%q: user info and fragments are not allowed", raw)
	}
	switch u.Scheme {
	case "https":
		if u.Host == "" {
			return fmt.Errorf("%q has no host", raw)
		}
	case "http":
		host := u.Hostname()
		ip := net.ParseIP(host)
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("%q: plain http is allowed to a loopback address only", raw)
		}
	default:
		return fmt.Errorf("%q: want an https URL", raw)
	}
	return nil
}

// ExecVars returns the variables in which tools take a credential of kind
// ("api", "oauth", "wellknown") for provider, for llm-agent-client exec.
// A provider without a row gets NAME_API_KEY for an API key (upper case,
// '-' and '.' as '_'), as most tools name it.
func ExecVars(provider, kind string) []string {
	p, ok := Lookup(provider)
	switch {
	case ok && kind == "oauth":
		return p.OAuthVars
	case ok:
		return p.KeyVars
	case kind == "api":
		return []string{guessVar(provider)}
	}
	return nil
}

func guessVar(provider string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(provider) {
		switch {
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String() + "_API_KEY"
}

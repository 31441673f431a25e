package oauth

import (
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"
	"time"
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

// Header is one HTTP header.
type Header struct{ Name, Value string }

// Upstream says how a tool presents the access token to the provider's
// API, for the helpers that inject it (proxy, exec, get --format header).
type Upstream struct {
	BaseURL string // the API the token is for
	Header  string // header that carries the token
	Prefix  string // put before the token in that header
	// AccountHeader, when set, carries the credential's accountId.
	AccountHeader string
	Headers       []Header // sent with every request as they are
}

// Provider is one row of the table.
type Provider struct {
	Name     string // provider id, as in opencode's auth.json
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

	Upstream Upstream
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

// table returns the providers. It is a function, not a variable, so that
// no caller can change it. To add a provider, add a row here.
func table() []Provider {
	return []Provider{
		{
			// Claude Pro/Max through opencode's anthropic auth plugin; the
			// same client and endpoint serve Claude Code's own login.
			Name:           "anthropic",
			TokenURL:       "https://console.anthropic.com/v1/oauth/token",
			ClientID:       "9d1c250a-e61b-44d9-88ed-5944d1962f5e",
			Grant:          GrantJSON,
			AccessField:    "access_token",
			RefreshField:   "refresh_token",
			ExpiresInField: "expires_in",
			Lifetime:       time.Hour,
			Upstream: Upstream{
				BaseURL: "https://api.anthropic.com",
				Header:  "Authorization", Prefix: "Bearer ",
				Headers: []Header{{"anthropic-beta", "oauth-2025-04-20"}},
			},
			Login: "'claude' then /login, or 'opencode auth login'",
		},
		{
			// GitHub Copilot: opencode keeps the GitHub OAuth token (device
			// flow, client Iv1.b507a08c87ecfe98) as "refresh" and the
			// Copilot token as "access".
			Name:           "github-copilot",
			TokenURL:       "https://api.github.com/copilot_internal/v2/token",
			Grant:          GrantCopilot,
			TokenHeaders:   copilotHeaders(),
			AccessField:    "token",
			ExpiresAtField: "expires_at",
			Lifetime:       25 * time.Minute,
			Upstream: Upstream{
				BaseURL: "https://api.githubcopilot.com",
				Header:  "Authorization", Prefix: "Bearer ",
				Headers: append(copilotHeaders(), Header{"Openai-Intent", "conversation-edits"}),
			},
			Login: "'opencode auth login' (GitHub Copilot)",
		},
		{
			// ChatGPT login, as Codex CLI and opencode's Codex plugin do.
			Name:           "openai",
			TokenURL:       "https://auth.openai.com/oauth/token",
			ClientID:       "app_EMoamEEZ73f0CkXaXp7hrann",
			Scope:          "openid profile email",
			Grant:          GrantForm,
			AccessField:    "access_token",
			RefreshField:   "refresh_token",
			ExpiresInField: "expires_in",
			Lifetime:       time.Hour,
			Upstream: Upstream{
				BaseURL: "https://chatgpt.com/backend-api/codex",
				Header:  "Authorization", Prefix: "Bearer ",
				AccountHeader: "ChatGPT-Account-Id",
			},
			Login: "'codex login' or 'opencode auth login'",
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

// Names lists the providers in the table, sorted.
func Names() []string {
	var names []string
	for _, p := range table() {
		names = append(names, p.Name)
	}
	sort.Strings(names)
	return names
}

// Endpoint returns the token endpoint to use: override when set (llm-agent
// --oauth-endpoint), else for github-copilot with an enterpriseUrl the
// exchange on that GitHub Enterprise's API host, else the table's.
func (p Provider) Endpoint(override, enterpriseURL string) (string, error) {
	if override != "" {
		return override, nil
	}
	if p.Grant == GrantCopilot && enterpriseURL != "" {
		host := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(enterpriseURL, "https://"), "http://"), "/")
		if host == "" || strings.ContainsAny(host, "/?#@ ") {
			return "", fmt.Errorf("enterpriseUrl is not a host name")
		}
		return "https://api." + host + "/copilot_internal/v2/token", nil
	}
	return p.TokenURL, nil
}

// CheckEndpoint accepts an endpoint URL for --oauth-endpoint: https, or
// plain http to a loopback address only (a refresh token must not cross
// a network in clear; tests use a fake endpoint on 127.0.0.1).
func CheckEndpoint(raw string) error {
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

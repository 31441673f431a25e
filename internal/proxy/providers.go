package proxy

import (
	"sort"
	"strings"
)

// KeyStyle is how a provider's API takes an API key.
type KeyStyle int

const (
	// Bearer is "Authorization: Bearer KEY" (OpenAI and the
	// OpenAI-compatible providers).
	Bearer KeyStyle = iota
	// XAPIKey is "x-api-key: KEY" (Anthropic).
	XAPIKey
	// GoogAPIKey is "x-goog-api-key: KEY" (Google Gemini).
	GoogAPIKey
)

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

// Provider is one row of the table: a provider's API, how it takes an API
// key, and which environment variables its tools read. The names are
// opencode's provider ids, which llm-agent credentials use too.
type Provider struct {
	Name string
	// Upstream is the API's base URL as tools are given it: with the
	// version segment for OpenAI-style SDKs (https://api.openai.com/v1),
	// without it for Anthropic's (https://api.anthropic.com). The proxy
	// serves it under /Name/.
	Upstream string
	Key      KeyStyle
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
}

// table returns the providers. To add an OpenAI-compatible provider, add a
// row. OAuth credentials (anthropic, openai, github-copilot) are presented
// as the oauth package's table says.
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
		},
		{
			Name: "openai", Upstream: "https://api.openai.com/v1",
			Key: Bearer, Errors: OpenAIErrors,
			BaseURLVar: "OPENAI_BASE_URL",
			KeyVars:    []string{"OPENAI_API_KEY"},
			// A ChatGPT login's access token is no API key, and no tool
			// takes it from a variable: opencode gets it through
			// OPENCODE_AUTH_CONTENT, Codex through the proxy.
		},
		{
			Name: "github-copilot", Upstream: "https://api.githubcopilot.com",
			Key: Bearer, Errors: OpenAIErrors,
		},
		{
			Name: "openrouter", Upstream: "https://openrouter.ai/api/v1",
			Key: Bearer, Errors: OpenAIErrors,
			KeyVars: []string{"OPENROUTER_API_KEY"},
		},
		{
			Name: "groq", Upstream: "https://api.groq.com/openai/v1",
			Key: Bearer, Errors: OpenAIErrors,
			KeyVars: []string{"GROQ_API_KEY"},
		},
		{
			Name: "deepseek", Upstream: "https://api.deepseek.com/v1",
			Key: Bearer, Errors: OpenAIErrors,
			KeyVars: []string{"DEEPSEEK_API_KEY"},
		},
		{
			Name: "mistral", Upstream: "https://api.mistral.ai/v1",
			Key: Bearer, Errors: OpenAIErrors,
			KeyVars: []string{"MISTRAL_API_KEY"},
		},
		{
			Name: "xai", Upstream: "https://api.x.ai/v1",
			Key: Bearer, Errors: OpenAIErrors,
			KeyVars: []string{"XAI_API_KEY"},
		},
		{
			Name: "togetherai", Upstream: "https://api.together.xyz/v1",
			Key: Bearer, Errors: OpenAIErrors,
			KeyVars: []string{"TOGETHER_AI_API_KEY", "TOGETHER_API_KEY"},
		},
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

// Providers returns the table, sorted by name.
func Providers() []Provider {
	t := table()
	sort.Slice(t, func(i, j int) bool { return t[i].Name < t[j].Name })
	return t
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

// ValidVar reports whether name is a plain environment variable name
// (letters, digits and '_', not starting with a digit).
func ValidVar(name string) bool {
	if name == "" || len(name) > 128 {
		return false
	}
	for i, r := range name {
		switch {
		case r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z', r == '_':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

package proxy

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/llm-agent/llm-agent/internal/providers"
)

// Var is one environment variable for a tool.
type Var struct{ Name, Value string }

// ScrubVars are the variables that may hold a credential or lead to the
// agent: proxy -- CMD removes them from the tool's environment before it
// sets its own, so that the tool holds the dummy key only.
func ScrubVars() []string {
	names := []string{"OPENCODE_AUTH_CONTENT", "LLM_AUTH_SOCK", "ANTHROPIC_AUTH_TOKEN", "CODEX_API_KEY"}
	for _, p := range providers.All() {
		names = append(names, p.KeyVars...)
		names = append(names, p.OAuthVars...)
	}
	return names
}

// ToolEnv returns the variables that point a tool at the proxy served at
// base (http://127.0.0.1:PORT) for the providers named: each provider's
// base-URL variable and, where the tool has one, its key variable with the
// dummy key (ANTHROPIC_BASE_URL and ANTHROPIC_API_KEY, OPENAI_BASE_URL and
// OPENAI_API_KEY); for opencode, OPENCODE_CONFIG_CONTENT with each
// provider's baseURL (merged into opencodeConfig, the caller's own
// OPENCODE_CONFIG_CONTENT, if any) and OPENCODE_AUTH_CONTENT with the
// dummy key as each provider's API key; and LLM_AGENT_PROXY_URL = base.
// Providers without a route are left out.
func (p *Proxy) ToolEnv(base string, providers []string, opencodeConfig string) ([]Var, error) {
	base = strings.TrimRight(base, "/")
	vars := []Var{{"LLM_AGENT_PROXY_URL", base}}
	cfg := map[string]any{}
	if strings.TrimSpace(opencodeConfig) != "" {
		if err := json.Unmarshal([]byte(opencodeConfig), &cfg); err != nil {
			return nil, fmt.Errorf("OPENCODE_CONFIG_CONTENT is not a JSON object: %v", err)
		}
	}
	provCfg, _ := cfg["provider"].(map[string]any)
	if provCfg == nil {
		provCfg = map[string]any{}
	}
	auth := map[string]any{}
	seen := map[string]bool{}
	sorted := append([]string(nil), providers...)
	sort.Strings(sorted)
	for _, name := range sorted {
		rt := p.routes[name]
		if rt == nil || seen[name] {
			continue
		}
		seen[name] = true
		route := base + "/" + name
		if rt.Prov.BaseURLVar != "" {
			vars = append(vars, Var{rt.Prov.BaseURLVar, route})
			for _, k := range rt.Prov.KeyVars {
				vars = append(vars, Var{k, p.DummyKey()})
			}
		}
		pc, _ := provCfg[name].(map[string]any)
		if pc == nil {
			pc = map[string]any{}
		}
		opts, _ := pc["options"].(map[string]any)
		if opts == nil {
			opts = map[string]any{}
		}
		opts["baseURL"] = route + rt.Prov.OpencodePath
		pc["options"] = opts
		provCfg[name] = pc
		auth[name] = map[string]any{"type": "api", "key": p.DummyKey()}
	}
	cfg["provider"] = provCfg
	c, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	a, err := json.Marshal(auth)
	if err != nil {
		return nil, err
	}
	vars = append(vars, Var{"OPENCODE_CONFIG_CONTENT", string(c)}, Var{"OPENCODE_AUTH_CONTENT", string(a)})
	return vars, nil
}

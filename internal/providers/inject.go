package providers

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strings"

	"github.com/llm-agent/llm-agent/protocol"
)

// Route is where one provider's requests go: the table's row and its base
// URL, which an override (proxy --upstream, llm-agent --relay-upstream)
// may replace.
type Route struct {
	Prov     Provider
	Base     string // upstream base URL, no trailing slash
	Override bool
}

// Routes is the table's routes with the overrides applied, by name.
type Routes map[string]*Route

// NewRoutes returns one route per row of the table and applies the
// overrides (name: base URL). A name without a row gets an
// OpenAI-compatible route; flag names the option for errors.
func NewRoutes(overrides map[string]string, flag string) (Routes, error) {
	rs := Routes{}
	for _, prov := range All() {
		rs[prov.Name] = &Route{Prov: prov, Base: prov.Upstream}
	}
	for name, u := range overrides {
		if !ValidRouteName(name) {
			return nil, fmt.Errorf("%s %s: not a provider name (letters, digits, '-', '_', '.')", flag, name)
		}
		if err := CheckUpstream(u); err != nil {
			return nil, fmt.Errorf("%s %s: %v", flag, name, err)
		}
		r := rs[name]
		if r == nil {
			r = &Route{Prov: Provider{Name: name, Key: Bearer, Errors: OpenAIErrors}}
			rs[name] = r
		}
		r.Base, r.Override = strings.TrimRight(u, "/"), true
	}
	return rs, nil
}

// Names lists the routes, sorted.
func (rs Routes) Names() []string {
	names := make([]string, 0, len(rs))
	for n := range rs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Shape is the error shape of the named route, OpenAI's for an unknown one.
func (rs Routes) Shape(name string) ErrorShape {
	if r := rs[name]; r != nil {
		return r.Prov.Errors
	}
	return OpenAIErrors
}

// CheckUpstream accepts a base URL for an override: CheckURL's rules and
// no query.
func CheckUpstream(raw string) error {
	if err := CheckURL(raw); err != nil {
		return err
	}
	if u, _ := url.Parse(raw); u.RawQuery != "" {
		return fmt.Errorf("%q: a base URL takes no query", raw)
	}
	return nil
}

// ValidRouteName reports whether s may name a route.
func ValidRouteName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// SplitRoute splits /provider/rest into provider and the escaped /rest.
func SplitRoute(u *url.URL) (name, rest string) {
	p := strings.TrimPrefix(u.EscapedPath(), "/")
	name, rest, _ = strings.Cut(p, "/")
	if rest != "" || strings.HasSuffix(p, "/") {
		rest = "/" + rest
	}
	if n, err := url.PathUnescape(name); err == nil {
		name = n
	}
	return name, rest
}

// CredentialHeaders are where tools put a key; all are dropped before the
// real credential goes in.
var CredentialHeaders = []string{"Authorization", "X-Api-Key", "X-Goog-Api-Key", "Api-Key", "Proxy-Authorization"}

// Injection is what one request sends upstream in place of the tool's key.
type Injection struct {
	Target *url.URL
	Set    []Header // the credential's header and its companions
	Beta   string   // anthropic-beta flags to add to the tool's
}

// Plan works out the upstream URL and the headers that carry cred for a
// request to rest (escaped, from SplitRoute) with rawQuery. The URL stays
// on the route's scheme and host and under its base path: a rest that
// climbs out of it ("..", also escaped) is refused. The header values are
// Go strings, which net/http needs and nothing can wipe.
func (rt *Route) Plan(cred *protocol.Credential, rest, rawQuery string) (*Injection, error) {
	base := rt.Base
	inj := &Injection{}
	secret := func(field string) (string, error) {
		v := cred.Value(field)
		if len(v) == 0 {
			return "", fmt.Errorf("the %s credential for %s holds no %s", cred.Kind, rt.Prov.Name, field)
		}
		return string(v), nil
	}
	switch cred.Kind {
	case protocol.KindAPI:
		key, err := secret(protocol.FieldKey)
		if err != nil {
			return nil, err
		}
		inj.Set = append(inj.Set, rt.Prov.Key.Header(key))
	case protocol.KindOAuth:
		tok, err := secret(protocol.FieldAccess)
		if err != nil {
			return nil, err
		}
		op := rt.Prov.OAuth
		if op == nil {
			inj.Set = append(inj.Set, Bearer.Header(tok))
			break
		}
		if !rt.Override {
			base = strings.TrimRight(rt.Prov.TokenBaseURL(), "/")
		}
		inj.Set = append(inj.Set, op.Token.Header(tok))
		if acct := cred.Value(protocol.FieldAccountID); op.AccountHeader != "" && len(acct) > 0 {
			inj.Set = append(inj.Set, Header{Name: op.AccountHeader, Value: string(acct)})
		}
		for _, h := range op.Headers {
			if strings.EqualFold(h.Name, "anthropic-beta") {
				inj.Beta = h.Value
				continue
			}
			inj.Set = append(inj.Set, h)
		}
	case protocol.KindWellKnown:
		tok, err := secret(protocol.FieldToken)
		if err != nil {
			return nil, err
		}
		inj.Set = append(inj.Set, Bearer.Header(tok))
	default:
		return nil, fmt.Errorf("the agent sent a credential of unknown kind %q", cred.Kind)
	}
	u, err := Target(base, rest, rawQuery)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", rt.Prov.Name, err)
	}
	inj.Target = u
	return inj, nil
}

// Target joins a base URL and an escaped path below it, keeping the
// base's scheme and host and staying under its path.
func Target(base, rest, rawQuery string) (*url.URL, error) {
	b, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("bad upstream URL")
	}
	target := base + rest
	if rawQuery != "" {
		target += "?" + rawQuery
	}
	u, err := url.Parse(target)
	if err != nil || u.Scheme != b.Scheme || u.Host != b.Host || u.User != nil || u.Fragment != "" {
		return nil, fmt.Errorf("the path %q does not stay on the upstream %s", rest, b.Host)
	}
	basePath := strings.TrimRight(b.Path, "/")
	for _, p := range []string{u.Path, u.EscapedPath()} {
		if p != basePath && !strings.HasPrefix(path.Clean(p)+"/", basePath+"/") {
			return nil, fmt.Errorf("the path %q leaves the upstream's base path %q", rest, basePath)
		}
	}
	if strings.Contains(u.Path, `\`) {
		// IIS and some gateways take a backslash, even escaped, for a slash.
		return nil, fmt.Errorf("the path %q has a backslash", rest)
	}
	for _, seg := range strings.Split(u.Path, "/") {
		// Servlet containers (Tomcat, Spring) drop ";params" from a
		// segment before they resolve "..": "..;" climbs there.
		if dots, _, _ := strings.Cut(seg, ";"); dots == ".." || dots == "." {
			return nil, fmt.Errorf("the path %q has a %q segment", rest, seg)
		}
	}
	return u, nil
}

// Apply puts the injection into h: every key the tool sent dropped, the
// credential's headers set, the Anthropic beta flags merged with the
// tool's.
func (inj *Injection) Apply(h http.Header) {
	for _, name := range CredentialHeaders {
		h.Del(name)
	}
	for _, kv := range inj.Set {
		h.Set(kv.Name, kv.Value)
	}
	if inj.Beta != "" {
		h.Set("Anthropic-Beta", mergeList(h.Values("Anthropic-Beta"), inj.Beta))
	}
}

// mergeList adds the comma-separated flags of add to those in have.
func mergeList(have []string, add string) string {
	var out []string
	seen := map[string]bool{}
	for _, v := range append(have, add) {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" && !seen[f] {
				seen[f] = true
				out = append(out, f)
			}
		}
	}
	return strings.Join(out, ",")
}

// WriteError answers in the provider's own error shape. A 503 tells the
// tool's SDK not to retry (x-should-retry, which the Stainless SDKs of
// Anthropic and OpenAI honour) or, to SDKs that retry anyway (opencode's,
// Codex), to retry at once: each retry is a local refusal, and backing off
// would only delay the error by minutes. A 429 says when the budget
// resets in Retry-After, when given.
func WriteError(w http.ResponseWriter, shape ErrorShape, status int, msg string) {
	var body any
	switch shape {
	case AnthropicErrors:
		typ := map[int]string{401: "authentication_error", 403: "permission_error", 404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error"}[status]
		if typ == "" {
			typ = "api_error"
		}
		body = map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": msg}}
	case GoogleErrors:
		st := map[int]string{401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED"}[status]
		if st == "" {
			st = "UNAVAILABLE"
		}
		body = map[string]any{"error": map[string]any{"code": status, "message": msg, "status": st}}
	default:
		typ, code := "server_error", "llm_agent_not_connected"
		switch status {
		case 401:
			typ, code = "invalid_request_error", "invalid_api_key"
		case 403:
			typ, code = "invalid_request_error", "llm_agent_refused"
		case 404:
			typ, code = "invalid_request_error", "unknown_url"
		case 413, 431:
			typ, code = "invalid_request_error", "llm_agent_request_too_large"
		case 429:
			typ, code = "insufficient_quota", "llm_agent_token_budget"
		case 502:
			code = "llm_agent_upstream_unreachable"
		}
		body = map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": code}}
	}
	b, _ := json.Marshal(body)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if status == http.StatusServiceUnavailable {
		h.Set("X-Should-Retry", "false")
		h.Set("Retry-After", "0")
		h.Set("Retry-After-Ms", "100")
	}
	if status == http.StatusTooManyRequests {
		// A spent budget is not a rate limit that a retry in a moment
		// would get past.
		h.Set("X-Should-Retry", "false")
	}
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

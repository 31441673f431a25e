package providers

import "testing"

func TestTarget(t *testing.T) {
	for _, c := range []struct {
		base, rest, query string
		want              string // "" means refused
	}{
		{"https://api.openai.com/v1", "/chat/completions", "", "https://api.openai.com/v1/chat/completions"},
		{"https://api.openai.com/v1", "", "", "https://api.openai.com/v1"},
		{"https://api.openai.com/v1", "/models", "a=1", "https://api.openai.com/v1/models?a=1"},
		{"https://api.anthropic.com", "/v1/messages", "beta=true", "https://api.anthropic.com/v1/messages?beta=true"},
		{"https://api.anthropic.com", "//evil.example/x", "", "https://api.anthropic.com//evil.example/x"},
		{"https://api.openai.com/v1", "/../admin", "", ""},
		{"https://api.openai.com/v1", "/%2e%2e/admin", "", ""},
		{"https://api.openai.com/v1", "/a/../../x", "", ""},
		{"https://api.openai.com/v1", "/./x", "", ""},
		{"https://api.openai.com/v1", "@evil.example/x", "", ""},
		{"https://api.openai.com/v1", "/x#frag", "", ""},
		{"http://127.0.0.1:8080", "/v1/messages", "", "http://127.0.0.1:8080/v1/messages"},
	} {
		u, err := Target(c.base, c.rest, c.query)
		switch {
		case c.want == "" && err == nil:
			t.Errorf("Target(%q, %q) = %s, want refused", c.base, c.rest, u)
		case c.want != "" && err != nil:
			t.Errorf("Target(%q, %q): %v", c.base, c.rest, err)
		case c.want != "" && u.String() != c.want:
			t.Errorf("Target(%q, %q) = %s, want %s", c.base, c.rest, u, c.want)
		}
	}
}

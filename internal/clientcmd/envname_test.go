package clientcmd

import (
	"strings"
	"testing"
)

func TestCheckCredentialVar(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"OPENAI_API_KEY", true},
		{"CLOUDFLARE_API_TOKEN", true},
		{"GITHUB_TOKEN", true},
		{"EXAMPLE_TOKEN", true}, // opencode's wellknown example
		{"EXAMPLE_API_TOKEN", true},
		{"GOOGLE_API_KEY", true},
		{"AWS_SECRET", true},
		{"LD_PRELOAD", false},
		{"LD_LIBRARY_PATH", false},
		{"LD_AUDIT_KEY", false}, // credential-shaped ending, loader prefix
		{"DYLD_INSERT_LIBRARIES", false},
		{"NODE_OPTIONS", false},
		{"NODE_AUTH_TOKEN", false},
		{"BASH_ENV", false},
		{"ENV", false},
		{"PYTHONSTARTUP", false},
		{"PYTHON_KEY", false},
		{"PROMPT_COMMAND", false},
		{"GIT_SSH_COMMAND", false},
		{"GIT_ASKPASS_TOKEN", false},
		{"SSH_AUTH_SOCK", false},
		{"LLM_AUTH_TOKEN", false},
		{"GCONV_PATH", false},
		{"PERL5OPT", false},
		{"HOME", false},
		{"PATH", false},
		{"openai_api_key", false},
		{"Openai_API_KEY", false},
		{"", false},
		{"A=B_KEY", false},
		{"A_KEY=B", false},
		{"X_KEY\x00LD_PRELOAD", false},
		{"1_KEY", false},
		{"_X_KEY", false},
		{"X KEY", false},
		{strings.Repeat("A", 61) + "_KEY", false},
		{strings.Repeat("A", 60) + "_KEY", true},
		{"TOKEN", false},
		{"KEY", false},
	}
	for _, tt := range tests {
		err := checkCredentialVar(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("checkCredentialVar(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && (strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "refusing to set the variable")) {
			t.Errorf("checkCredentialVar(%q): error %q is not one line naming the variable", tt.name, err)
		}
	}
}

package credcmd

import (
	"strings"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/memsafe"
)

// TestAttackStderr: what a hostile command writes on stderr reaches the
// audit log as one printable line: no escape sequences, no second line;
// a command that echoes its secret on stderr's first line puts it there
// (the audit log is the owner's, 0600), but never a later line.
func TestAttackStderr(t *testing.T) {
	r := &Runner{Budget: memsafe.NewBudget(-1), Limit: 1 << 16, Timeout: 5 * time.Second, Env: []string{"PATH=/usr/bin:/bin"}}
	for _, tt := range []struct{ name, cmd, want string }{
		{"ansi and bell", `printf '\033[2J\033]0;pwned\007red\033[31m\r\n' >&2; echo sk-FAKE-v`, "?[2J?]0;pwned?red?[31m"},
		{"second line hidden", `printf 'first\nsk-FAKE-second-line\n' >&2; echo sk-FAKE-v`, "first"},
		{"nul and c1", `printf 'a\000b\302\233c\n' >&2; echo sk-FAKE-v`, "a?b?c"},
		{"overlong", `head -c 5000 /dev/zero | tr '\0' A >&2; echo sk-FAKE-v`, strings.Repeat("A", StderrMax) + "..."},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := r.Run(t.Context(), tt.cmd, func([]byte, time.Time) error { return nil })
			if err != nil {
				t.Fatal(err)
			}
			if rep.Stderr != tt.want {
				t.Errorf("stderr %q, want %q", rep.Stderr, tt.want)
			}
		})
	}
}

// TestAttackJSON: JSON answers built to confuse: duplicate members, the
// value under a member we do not read, huge, negative, past and non-number
// expiries. None gives a value it should not, none gives a far-future
// lifetime beyond 1e15 ms, and no Failure quotes the output.
func TestAttackJSON(t *testing.T) {
	for _, tt := range []struct {
		name, out, value string
		ok               bool
	}{
		{"duplicate key", `{"key":"sk-FAKE-a","key":"sk-FAKE-b"}`, "", false},
		{"value only under password", `{"password":"sk-FAKE-leak"}`, "", false},
		{"expiry 1e300", `{"key":"sk-FAKE-a","expiresAt":1e300}`, "", false},
		{"expiry NaN", `{"key":"sk-FAKE-a","expiresAt":NaN}`, "", false},
		{"expiry negative", `{"key":"sk-FAKE-a","expiresAt":-1}`, "", false},
		{"expiry string junk", `{"key":"sk-FAKE-a","expiresAt":"sk-FAKE-leak"}`, "", false},
		{"expiry 0", `{"key":"sk-FAKE-a","expires_at":0}`, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v, _, err := Parse([]byte(tt.out))
			if tt.ok != (err == nil) || string(v) != tt.value {
				t.Fatalf("Parse: %q, %v", v, err)
			}
			if err != nil && strings.Contains(err.Error(), "FAKE") {
				t.Errorf("failure quotes the output: %v", err)
			}
		})
	}
}

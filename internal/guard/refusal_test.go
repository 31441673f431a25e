package guard

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llm-agent/llm-agent/protocol"
)

func TestRefusalText(t *testing.T) {
	long := "/" + strings.Repeat("d/", 2600) + "tool"
	tests := []struct {
		name, in, want string
	}{
		{"plain", "pid 1 (/usr/bin/x) refused", "pid 1 (/usr/bin/x) refused"},
		{"newline", "exe /tmp/a\nb", `exe /tmp/a\x0ab`},
		{"C1 control", "a\u0085b", `a\xc2\x85b`},
		{"invalid UTF-8", "a\xffb", `a\xffb`},
		{"backslash", `a\x0ab`, `a\\x0ab`},
		{"utf-8 kept", "/home/zoë/bin", "/home/zoë/bin"},
	}
	for _, tt := range tests {
		if got := refusalText(tt.in); got != tt.want {
			t.Errorf("%s: refusalText(%q) = %q, want %q", tt.name, tt.in, got, tt.want)
		}
	}
	got := refusalText(long + "\n" + strings.Repeat("é", 600))
	if len(got) > protocol.MaxTextLen || !strings.Contains(got, "[cut: ") {
		t.Errorf("long text: %d bytes, want a cut one within %d: %q...", len(got), protocol.MaxTextLen, got[:80])
	}
	for _, in := range []string{long, strings.Repeat("é", 3000), strings.Repeat("\x01", 2000)} {
		r := &protocol.GuardRequest{Op: protocol.GuardRefused, Text: refusalText(in)}
		_, payload, err := protocol.ParseExtension(r.Marshal()[4:])
		if err == nil {
			_, err = protocol.ParseGuardRequest(payload)
		}
		if err != nil {
			t.Errorf("the agent would reject the refusal of %d bytes: %v", len(in), err)
		}
	}
}

func TestPrivateDir(t *testing.T) {
	base := t.TempDir()
	mk := func(name string, mode os.FileMode) string {
		p := filepath.Join(base, name)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ok := mk("ok", 0o700)
	link := filepath.Join(base, "link")
	if err := os.Symlink(ok, link); err != nil {
		t.Fatal(err)
	}
	other := mk("other", 0o700)
	if err := os.Chown(other, 4242, 4242); err != nil && os.Getuid() == 0 {
		t.Fatal(err)
	}
	tests := []struct {
		name, dir string
		mask      uint32
		want      string
	}{
		{"private", ok, 0o077, ""},
		{"group writable", mk("gw", 0o770), 0o022, "open to group or others"},
		{"other writable", mk("ow", 0o703), 0o022, "open to group or others"},
		{"readable under a write mask", mk("r", 0o755), 0o022, ""},
		{"readable under 077", mk("r2", 0o750), 0o077, "open to group or others"},
		{"symlink", link, 0o022, "is a symlink"},
		{"file", func() string { p := filepath.Join(base, "f"); os.WriteFile(p, nil, 0o600); return p }(), 0o022, "not a directory"},
	}
	if os.Getuid() == 0 {
		tests = append(tests, struct {
			name, dir string
			mask      uint32
			want      string
		}{"another user's", other, 0o022, "belongs to uid 4242"})
	}
	for _, tt := range tests {
		err := privateDir(tt.dir, tt.mask)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v, want nil", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

package agentcmd

import (
	"strings"
	"testing"
)

// TestFirstLine: the child's stderr keeps its first line for our error,
// and every write is reported whole, or os/exec would stop copying and
// the child would block on a full pipe.
func TestFirstLine(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{"nothing", nil, ""},
		{"one line", []string{"ssh-agent: bad option\n"}, `: it said "ssh-agent: bad option"`},
		{"line in pieces", []string{"ssh-", "agent: x\r\n", "later\n"}, `: it said "ssh-agent: x"`},
		{"two lines at once", []string{"first\nsecond\n"}, `: it said "first"`},
		{"long", []string{strings.Repeat("a", 300) + "\n"}, `: it said "` + strings.Repeat("a", 200) + `"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &firstLine{}
			for _, w := range tt.writes {
				if n, err := f.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write(%q) = %d, %v; want %d, nil", w, n, err, len(w))
				}
			}
			if got := f.quoted(); got != tt.want {
				t.Errorf("quoted() = %q, want %q", got, tt.want)
			}
		})
	}
}

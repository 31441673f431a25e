package hostkeys_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/llm-agent/llm-agent/internal/hostkeys"
)

// FuzzParse checks that Parse never panics, that every entry it returns is
// usable, that it reads a file the same as it reads each line on its own
// (a bad line costs only itself), and that Lookup and Name agree with it.
func FuzzParse(f *testing.F) {
	fx := newFixture(f)
	// field returns field i of a known_hosts line for key.
	field := func(key ssh.PublicKey, i int) string { return strings.Fields(knownhosts.Line([]string{"x"}, key))[i] }
	for _, s := range []string{
		knownhosts.Line([]string{"gpu1", "10.0.0.1"}, fx.gpu1) + "\n",
		hashedLine("gpu2", []byte("saltsaltsaltsaltsalt"), fx.gpu2) + "\n",
		knownhosts.Line([]string{"[gpu3]:2222"}, fx.gpu3), // a port, no final newline
		"@cert-authority * " + field(fx.ca, 1) + " " + field(fx.ca, 2) + "\n",
		knownhosts.Line([]string{"bastion"}, fx.bastion) + "\r\n" + knownhosts.Line([]string{"gpu1"}, fx.gpu1) + "\r\n",
		// bad lines: base64, key type, a good line after bad ones, hash, markers alone
		"gpu1 ssh-ed25519 AAAA%%%%\n",
		"gpu1 ssh-rsa " + field(fx.gpu1, 2) + "\n",
		"# c\n\nbad line here\n" + knownhosts.Line([]string{"gpu1"}, fx.gpu1) + "\n",
		"|1|!!!|??? " + field(fx.gpu1, 1) + " " + field(fx.gpu1, 2) + "\n",
		"justoneword\n@\n@revoked\n",
		string(fx.data), // every kind of line at once
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		entries := hostkeys.Parse(data)
		var perLine []hostkeys.Entry
		for _, line := range bytes.Split(data, []byte("\n")) {
			perLine = append(perLine, hostkeys.Parse(line)...)
		}
		if len(perLine) != len(entries) {
			t.Fatalf("%d entries from the file, %d line by line", len(entries), len(perLine))
		}
		for i, e := range entries {
			if e.Key == nil || len(e.Hosts) == 0 {
				t.Fatalf("entry %d: key %v, hosts %q", i, e.Key, e.Hosts)
			}
			if !slices.Equal(e.Hosts, perLine[i].Hosts) || !bytes.Equal(e.Key.Marshal(), perLine[i].Key.Marshal()) || e.Revoked != perLine[i].Revoked {
				t.Fatalf("entry %d differs when parsed on its own line", i)
			}
			blob := e.Key.Marshal()
			revoked := hostkeys.Revoked(entries, e.Key)
			if e.Revoked && !revoked {
				t.Fatalf("entry %d is @revoked but Revoked says no", i)
			}
			for _, h := range e.Hosts {
				if strings.HasPrefix(h, "|") {
					continue
				}
				found := false
				for _, k := range hostkeys.Lookup(entries, h) {
					found = found || bytes.Equal(k, blob)
				}
				// A revoked key is never found; any other key of a line is.
				if found == revoked {
					t.Fatalf("Lookup(%q): key of entry %d found %v, revoked %v", h, i, found, revoked)
				}
			}
			if hostkeys.Name(entries, e.Key) == "" {
				t.Fatalf("empty Name for entry %d", i)
			}
		}
	})
}

package hostkeys_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/llm-agent/llm-agent/internal/hostkeys"
)

// fixedKey is a deterministic ed25519 public key.
func fixedKey(t testing.TB, seed byte) ssh.PublicKey {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	k, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// hashedLine is a known_hosts line with a hashed host name and a fixed
// salt (knownhosts.HashHostname picks a random one).
func hashedLine(host string, salt []byte, key ssh.PublicKey) string {
	m := hmac.New(sha1.New, salt)
	m.Write([]byte(host))
	pattern := "|1|" + base64.StdEncoding.EncodeToString(salt) + "|" + base64.StdEncoding.EncodeToString(m.Sum(nil))
	return knownhosts.Line([]string{pattern}, key)
}

type fixture struct {
	gpu1, gpu2, gpu3, bastion, revoked, ca, wild ssh.PublicKey
	data                                         []byte
}

func newFixture(t testing.TB) *fixture {
	f := &fixture{
		gpu1: fixedKey(t, 1), gpu2: fixedKey(t, 2), gpu3: fixedKey(t, 3), bastion: fixedKey(t, 4),
		revoked: fixedKey(t, 5), ca: fixedKey(t, 6), wild: fixedKey(t, 7),
	}
	lines := []string{
		"# known_hosts for the tests",
		"",
		knownhosts.Line([]string{"gpu1", "10.0.0.1"}, f.gpu1),
		hashedLine("gpu2", []byte("0123456789abcdef0123"), f.gpu2),
		knownhosts.Line([]string{knownhosts.Normalize("gpu3:2222")}, f.gpu3) + " a comment",
		"@cert-authority *.example.com " + string(bytes.TrimSpace(ssh.MarshalAuthorizedKey(f.ca))),
		"@revoked gpu1 " + string(bytes.TrimSpace(ssh.MarshalAuthorizedKey(f.revoked))),
		"this line is not an entry at all",
		"gpu1 ssh-rsa AAAAnot-base64!",
		"   ",
		knownhosts.Line([]string{"*.example.com", "!bad.example.com"}, f.wild),
		knownhosts.Line([]string{"bastion"}, f.bastion) + "\r",
		// A second key for gpu1, and no final newline.
		knownhosts.Line([]string{"gpu1"}, f.bastion),
	}
	f.data = []byte(strings.Join(lines, "\n"))
	return f
}

func TestParse(t *testing.T) {
	f := newFixture(t)
	entries := hostkeys.Parse(f.data)
	want := []struct {
		hosts   []string
		key     ssh.PublicKey
		revoked bool
	}{
		{[]string{"gpu1", "10.0.0.1"}, f.gpu1, false},
		{nil, f.gpu2, false}, // hashed: pattern checked below
		{[]string{"[gpu3]:2222"}, f.gpu3, false},
		{[]string{"gpu1"}, f.revoked, true}, // @revoked kept, @cert-authority not
		{[]string{"*.example.com", "!bad.example.com"}, f.wild, false},
		{[]string{"bastion"}, f.bastion, false},
		{[]string{"gpu1"}, f.bastion, false},
	}
	if len(entries) != len(want) {
		t.Fatalf("%d entries, want %d: %v", len(entries), len(want), hostsOf(entries))
	}
	for i, w := range want {
		e := entries[i]
		if !bytes.Equal(e.Key.Marshal(), w.key.Marshal()) {
			t.Errorf("entry %d: wrong key", i)
		}
		if e.Revoked != w.revoked {
			t.Errorf("entry %d: revoked %v, want %v", i, e.Revoked, w.revoked)
		}
		if w.hosts == nil {
			if len(e.Hosts) != 1 || !strings.HasPrefix(e.Hosts[0], "|1|") {
				t.Errorf("entry %d: hosts %q, want one hashed pattern", i, e.Hosts)
			}
			continue
		}
		if !slices.Equal(e.Hosts, w.hosts) {
			t.Errorf("entry %d: hosts %q, want %q", i, e.Hosts, w.hosts)
		}
	}
	for _, in := range []string{"", "\n\n", "# only a comment", "garbage"} {
		if got := hostkeys.Parse([]byte(in)); len(got) != 0 {
			t.Errorf("Parse(%q) = %d entries", in, len(got))
		}
	}
}

func hostsOf(entries []hostkeys.Entry) [][]string {
	var out [][]string
	for _, e := range entries {
		out = append(out, e.Hosts)
	}
	return out
}

func TestLookup(t *testing.T) {
	f := newFixture(t)
	entries := hostkeys.Parse(f.data)
	// A hashed line made by ssh-keygen -H style hashing with a random salt.
	random := hostkeys.Parse([]byte(knownhosts.Line([]string{knownhosts.HashHostname("gpu4")}, f.gpu3)))
	entries = append(entries, random...)

	tests := []struct {
		host string
		want []ssh.PublicKey
	}{
		{"gpu1", []ssh.PublicKey{f.gpu1, f.bastion}}, // both entries; not the @revoked key
		{"10.0.0.1", []ssh.PublicKey{f.gpu1}},
		{"gpu2", []ssh.PublicKey{f.gpu2}}, // hashed, fixed salt
		{"gpu4", []ssh.PublicKey{f.gpu3}}, // hashed, random salt
		{"[gpu3]:2222", []ssh.PublicKey{f.gpu3}},
		{"bastion", []ssh.PublicKey{f.bastion}},
		{"gpu3", nil},                              // only known on port 2222
		{"x.example.com", nil},                     // patterns are not expanded; only exact names
		{"*.example.com", []ssh.PublicKey{f.wild}}, // ...but a pattern names itself
		{"GPU1", nil},
		{"", nil},
		{"nowhere", nil},
	}
	for _, tt := range tests {
		got := hostkeys.Lookup(entries, tt.host)
		if len(got) != len(tt.want) {
			t.Errorf("Lookup(%q): %d keys, want %d", tt.host, len(got), len(tt.want))
			continue
		}
		for i, k := range tt.want {
			if !bytes.Equal(got[i], k.Marshal()) {
				t.Errorf("Lookup(%q): key %d differs", tt.host, i)
			}
		}
	}
	// Broken hashed patterns match nothing rather than failing.
	broken := []hostkeys.Entry{
		{Hosts: []string{"|1|not base64|x"}, Key: f.gpu1},
		{Hosts: []string{"|1|onlyone"}, Key: f.gpu1},
		{Hosts: []string{"|1|" + base64.StdEncoding.EncodeToString([]byte("s")) + "|%%%"}, Key: f.gpu1},
	}
	if got := hostkeys.Lookup(broken, "gpu1"); len(got) != 0 {
		t.Errorf("broken hashed patterns matched")
	}
}

func TestName(t *testing.T) {
	f := newFixture(t)
	entries := hostkeys.Parse(f.data)
	tests := []struct {
		key  ssh.PublicKey
		want string
	}{
		{f.gpu1, "gpu1"},
		{f.gpu3, "[gpu3]:2222"},
		{f.bastion, "bastion"},
		{f.gpu2, ssh.FingerprintSHA256(f.gpu2)},                      // hashed only
		{f.wild, ssh.FingerprintSHA256(f.wild)},                      // patterns only
		{f.revoked, ssh.FingerprintSHA256(f.revoked) + " (revoked)"}, // never named after a host
		{fixedKey(t, 99), ssh.FingerprintSHA256(fixedKey(t, 99))},
	}
	for _, tt := range tests {
		if got := hostkeys.Name(entries, tt.key); got != tt.want {
			t.Errorf("Name = %q, want %q", got, tt.want)
		}
	}
	if got := hostkeys.Name(nil, f.gpu1); got != ssh.FingerprintSHA256(f.gpu1) {
		t.Errorf("Name with no entries = %q", got)
	}
}

// TestRevoked: a key on an @revoked line never satisfies a host, whatever
// other lines list it for, and is never named after a host.
func TestRevoked(t *testing.T) {
	gpu1, gpu2, other := fixedKey(t, 1), fixedKey(t, 2), fixedKey(t, 3)
	line := func(marker, hosts string, k ssh.PublicKey) string {
		s := hosts + " " + string(bytes.TrimSpace(ssh.MarshalAuthorizedKey(k)))
		if marker != "" {
			s = marker + " " + s
		}
		return s
	}
	tests := []struct {
		name        string
		lines       []string
		host        string
		want        []ssh.PublicKey
		revoked     []ssh.PublicKey
		namedAsHost ssh.PublicKey // nil: none
	}{
		{"plain", []string{line("", "gpu1", gpu1)}, "gpu1", []ssh.PublicKey{gpu1}, nil, gpu1},
		{"revoked for all hosts", []string{line("", "gpu1", gpu1), line("@revoked", "*", gpu1)}, "gpu1", nil, []ssh.PublicKey{gpu1}, nil},
		{"revoked before listed", []string{line("@revoked", "*", gpu1), line("", "gpu1", gpu1)}, "gpu1", nil, []ssh.PublicKey{gpu1}, nil},
		{"revoked for another host still revoked", []string{line("", "gpu1", gpu1), line("@revoked", "gpu9", gpu1)}, "gpu1", nil, []ssh.PublicKey{gpu1}, nil},
		{"hashed revoked line", []string{line("", "gpu1", gpu1), "@revoked " + hashedLine("gpu1", []byte("salt"), gpu1)}, "gpu1", nil, []ssh.PublicKey{gpu1}, nil},
		{"other key of the host stays", []string{line("", "gpu1", gpu1), line("", "gpu1", gpu2), line("@revoked", "*", gpu1)}, "gpu1", []ssh.PublicKey{gpu2}, []ssh.PublicKey{gpu1}, gpu2},
		{"revoked line alone names nothing", []string{line("@revoked", "gpu1", other)}, "gpu1", nil, []ssh.PublicKey{other}, nil},
		{"cert-authority ignored", []string{line("@cert-authority", "gpu1", other)}, "gpu1", nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries := hostkeys.Parse([]byte(strings.Join(tt.lines, "\n")))
			got := hostkeys.Lookup(entries, tt.host)
			if len(got) != len(tt.want) {
				t.Fatalf("Lookup: %d keys, want %d", len(got), len(tt.want))
			}
			for i, k := range tt.want {
				if !bytes.Equal(got[i], k.Marshal()) {
					t.Errorf("Lookup: key %d differs", i)
				}
			}
			for _, k := range []ssh.PublicKey{gpu1, gpu2, other} {
				want := slices.ContainsFunc(tt.revoked, func(r ssh.PublicKey) bool { return bytes.Equal(r.Marshal(), k.Marshal()) })
				if hostkeys.Revoked(entries, k) != want {
					t.Errorf("Revoked(%s) = %v, want %v", ssh.FingerprintSHA256(k), !want, want)
				}
				named := hostkeys.Name(entries, k) == tt.host
				if wantNamed := tt.namedAsHost != nil && bytes.Equal(tt.namedAsHost.Marshal(), k.Marshal()); named != wantNamed {
					t.Errorf("Name(%s) = %q", ssh.FingerprintSHA256(k), hostkeys.Name(entries, k))
				}
			}
		})
	}
}

func TestReadFiles(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	a := filepath.Join(dir, "known_hosts")
	b := filepath.Join(dir, "global")
	os.WriteFile(a, f.data, 0o644)
	os.WriteFile(b, []byte(knownhosts.Line([]string{"gpu9"}, f.gpu2)+"\n"), 0o644)

	entries, err := hostkeys.ReadFiles([]string{a, filepath.Join(dir, "missing"), b})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 8 || len(hostkeys.Lookup(entries, "gpu9")) != 1 {
		t.Fatalf("%d entries: %q", len(entries), hostsOf(entries))
	}
	if entries, err := hostkeys.ReadFiles(nil); err != nil || entries != nil {
		t.Errorf("ReadFiles(nil) = %v, %v", entries, err)
	}
	if _, err := hostkeys.ReadFiles([]string{dir}); err == nil {
		t.Errorf("reading a directory succeeded")
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte("#\n"), 8<<20+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := hostkeys.ReadFiles([]string{big}); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("reading a file over 16 MiB: %v", err)
	}
}

func TestDefaultFiles(t *testing.T) {
	t.Setenv("HOME", "/home/someone")
	got := hostkeys.DefaultFiles()
	want := []string{"/home/someone/.ssh/known_hosts", "/etc/ssh/ssh_known_hosts"}
	if !slices.Equal(got, want) {
		t.Errorf("DefaultFiles = %q, want %q", got, want)
	}
}

// TestParseBadLineAfterManyComments: a bad line after N comment (or blank,
// or one-word) lines must cost O(N), not O(N²). 50000 lines take about a
// millisecond to parse once; re-scanning them for every skipped line takes
// minutes. The bound is a hang check, not a benchmark.
func TestParseBadLineAfterManyComments(t *testing.T) {
	f := newFixture(t)
	data := strings.Repeat("# comment\n", 50000) + "gpu1 ssh-ed25519 AAAA-not-a-key\n" + knownhosts.Line([]string{"gpu1"}, f.gpu1) + "\n"
	done := make(chan []hostkeys.Entry, 1)
	start := time.Now()
	go func() { done <- hostkeys.Parse([]byte(data)) }()
	select {
	case entries := <-done:
		t.Logf("parsed 50000 comment lines and a bad one in %v", time.Since(start).Round(time.Microsecond))
		if len(entries) != 1 {
			t.Errorf("%d entries, want 1", len(entries))
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Parse still running after 10 s: it rescans the comment lines before a bad line once per line skipped")
	}
}

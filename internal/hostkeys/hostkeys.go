package hostkeys

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
)

// maxFile caps how much of a known_hosts file is read.
const maxFile = 16 << 20

// DefaultFiles are the files ssh reads: ~/.ssh/known_hosts and
// /etc/ssh/ssh_known_hosts.
func DefaultFiles() []string {
	var files []string
	if home, err := os.UserHomeDir(); err == nil {
		files = append(files, filepath.Join(home, ".ssh", "known_hosts"))
	}
	return append(files, "/etc/ssh/ssh_known_hosts")
}

// Entry is one usable known_hosts line.
type Entry struct {
	Hosts []string // patterns as written (hashed ones start with |1|)
	Key   ssh.PublicKey
	// Revoked marks an @revoked line: its key is never trusted, for any
	// host, whatever other lines say (stricter than ssh, which applies
	// the line to the hosts it names; most such lines name "*").
	Revoked bool
}

// Parse reads the entries of a known_hosts file's contents, keeping
// @revoked lines (Entry.Revoked) and skipping @cert-authority lines (a
// host certificate is not a host key the agent can match a session-bind
// against) and lines it cannot parse.
func Parse(data []byte) []Entry {
	var out []Entry
	// One line at a time: a bad line is skipped, as ssh does, without
	// rescanning what came before it.
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if t := bytes.TrimSpace(line); len(t) == 0 || t[0] == '#' {
			continue
		}
		marker, hosts, key, _, _, err := ssh.ParseKnownHosts(line)
		if err != nil || (marker != "" && marker != "revoked") {
			continue
		}
		out = append(out, Entry{Hosts: hosts, Key: key, Revoked: marker == "revoked"})
	}
	return out
}

// ReadFiles reads the entries of every file that exists.
func ReadFiles(files []string) ([]Entry, error) {
	var out []Entry
	for _, f := range files {
		data, err := readCapped(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, Parse(data)...)
	}
	return out, nil
}

func readCapped(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(data) > maxFile {
		return nil, fmt.Errorf("%s is larger than %d MiB", path, maxFile>>20)
	}
	return data, nil
}

// matches reports whether a known_hosts host pattern names host exactly
// (or by its hash).
func matches(pattern, host string) bool {
	if strings.HasPrefix(pattern, "|1|") {
		parts := strings.Split(pattern[3:], "|")
		if len(parts) != 2 {
			return false
		}
		salt, err1 := base64.StdEncoding.DecodeString(parts[0])
		want, err2 := base64.StdEncoding.DecodeString(parts[1])
		if err1 != nil || err2 != nil {
			return false
		}
		m := hmac.New(sha1.New, salt)
		m.Write([]byte(host))
		return hmac.Equal(m.Sum(nil), want)
	}
	return pattern == host
}

// Revoked reports whether an @revoked line names key.
func Revoked(entries []Entry, key ssh.PublicKey) bool {
	blob := key.Marshal()
	for _, e := range entries {
		if e.Revoked && bytes.Equal(e.Key.Marshal(), blob) {
			return true
		}
	}
	return false
}

// Lookup returns the wire blobs of the keys known for host, leaving out
// every key that is @revoked.
func Lookup(entries []Entry, host string) [][]byte {
	var keys [][]byte
	for _, e := range entries {
		if e.Revoked || Revoked(entries, e.Key) {
			continue
		}
		for _, p := range e.Hosts {
			if matches(p, host) {
				keys = append(keys, e.Key.Marshal())
				break
			}
		}
	}
	return keys
}

// Name returns a readable name for a host key: the first plain host name
// known_hosts gives it, else its SHA256 fingerprint. A revoked key is
// never named after a host.
func Name(entries []Entry, key ssh.PublicKey) string {
	blob := key.Marshal()
	if Revoked(entries, key) {
		return ssh.FingerprintSHA256(key) + " (revoked)"
	}
	for _, e := range entries {
		if !bytes.Equal(e.Key.Marshal(), blob) {
			continue
		}
		for _, p := range e.Hosts {
			if p != "" && !strings.HasPrefix(p, "|") && !strings.ContainsAny(p, "*?!") {
				return p
			}
		}
	}
	return ssh.FingerprintSHA256(key)
}

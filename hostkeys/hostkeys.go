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
}

// Parse reads the entries of a known_hosts file's contents, skipping
// markers (@cert-authority, @revoked) and lines it cannot parse.
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
		if err != nil || marker != "" {
			continue
		}
		out = append(out, Entry{Hosts: hosts, Key: key})
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

// Lookup returns the wire blobs of the keys known for host.
func Lookup(entries []Entry, host string) [][]byte {
	var keys [][]byte
	for _, e := range entries {
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
// known_hosts gives it, else its SHA256 fingerprint.
func Name(entries []Entry, key ssh.PublicKey) string {
	blob := key.Marshal()
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

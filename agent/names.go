package agent

import (
	"os"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/llm-agent/llm-agent/internal/hostkeys"
)

// hostNames names host keys from known_hosts files for prompts and the
// audit log, rereading the files when they change.
type hostNames struct {
	files []string

	mu      sync.Mutex
	stamp   []time.Time
	entries []hostkeys.Entry
	err     error // from the last read; revocations are unknown then
}

func newHostNames(files []string) *hostNames {
	if len(files) == 0 {
		files = hostkeys.DefaultFiles()
	}
	return &hostNames{files: files}
}

// name returns the known_hosts name of key, else its fingerprint. A key
// that is @revoked is never named after a host.
func (h *hostNames) name(key ssh.PublicKey) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reloadLocked()
	return hostkeys.Name(h.entries, key)
}

// revoked reports whether key is @revoked in the known_hosts files. When a
// file could not be read, revocations are unknown: the error says so, and
// the caller refuses (a revoked key must never pass for want of a read).
func (h *hostNames) revoked(key ssh.PublicKey) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reloadLocked()
	if h.err != nil {
		return true, h.err
	}
	return hostkeys.Revoked(h.entries, key), nil
}

// reloadLocked rereads the files when one of them changed.
func (h *hostNames) reloadLocked() {
	stamp := make([]time.Time, len(h.files))
	changed := h.stamp == nil
	for i, f := range h.files {
		if fi, err := os.Stat(f); err == nil {
			stamp[i] = fi.ModTime()
		}
		if h.stamp != nil && !stamp[i].Equal(h.stamp[i]) {
			changed = true
		}
	}
	if changed {
		h.entries, h.err = hostkeys.ReadFiles(h.files)
		h.stamp = stamp
	}
}

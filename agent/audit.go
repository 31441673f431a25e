package agent

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/llm-agent/llm-agent/protocol"
)

// AuditLog writes one JSON object per line. It never receives a secret:
// events carry names, decisions and who asked, nothing else.
type AuditLog struct {
	mu sync.Mutex
	w  io.Writer // nil: no audit file
	// debug, when set, gets a readable copy of every event (-d).
	debug io.Writer
}

// OpenAuditLog opens (creating with mode 0600, appending) the audit file.
// An existing file readable by others is refused rather than written to.
func OpenAuditLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening audit log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit log: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		f.Close()
		return nil, fmt.Errorf("audit log %s is accessible by group or others (mode %o); chmod 600 it", path, fi.Mode().Perm())
	}
	return f, nil
}

// NewAuditLog returns a log writing JSON lines to w and, if debug is not
// nil, a readable line per event to debug.
func NewAuditLog(w, debug io.Writer) *AuditLog { return &AuditLog{w: w, debug: debug} }

// PeerInfo is the local process on the other end of the socket, as the
// kernel reports it.
type PeerInfo struct {
	PID      int    `json:"pid"`
	UID      uint32 `json:"uid"`
	Exe      string `json:"exe,omitempty"`
	Verified bool   `json:"verified"`
}

// Event is one audit record.
type Event struct {
	Time     string    `json:"time"`
	Op       string    `json:"op"`
	Provider string    `json:"provider,omitempty"`
	Decision string    `json:"decision"` // allow, deny, error
	Reason   string    `json:"reason,omitempty"`
	Peer     *PeerInfo `json:"peer,omitempty"`
	// Via is the socket the connection came in on: "use" (LLM_AUTH_SOCK,
	// use-only) or "admin" (LLM_AUTH_SOCK.admin, management); ViaReason
	// says why the connection was classed as it was.
	Via       string `json:"via,omitempty"`
	ViaReason string `json:"via_reason,omitempty"`
	// Forwarded: the connection had use-only rights (the use socket, or a
	// forwarding session-bind on the admin socket).
	Forwarded bool     `json:"forwarded,omitempty"`
	Hops      []string `json:"hops,omitempty"` // verified by session-bind
	// Remote is what the remote client says about itself; the agent cannot
	// verify it.
	Remote *protocol.Requester `json:"remote_reported,omitempty"`
}

// Log writes e, stamping the time.
func (a *AuditLog) Log(e Event) {
	if a == nil || (a.w == nil && a.debug == nil) {
		return
	}
	e.Time = time.Now().UTC().Format(time.RFC3339Nano)
	line, err := json.Marshal(e)
	if err != nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.w != nil {
		a.w.Write(append(line, '\n'))
	}
	if a.debug != nil {
		fmt.Fprintf(a.debug, "audit: %s\n", line)
	}
}

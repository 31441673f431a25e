package agent

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/llm-agent/llm-agent/protocol"
)

// AuditLog writes one JSON object per line. It never receives a secret:
// events carry names, decisions and who asked, nothing else.
type AuditLog struct {
	mu sync.Mutex
	w  io.Writer // nil: no audit file
	// debug, when set, gets a readable copy of every event (-d).
	debug io.Writer

	// The events of use-only connections (whatever a relay sends) share
	// a token bucket, so that a remote side cannot fill the laptop's disk
	// through the audit log; what the bucket refuses is counted, by op
	// and decision, and written as one audit-suppressed line later.
	tokens     float64
	refilled   time.Time
	suppressed map[string]int
	summarized time.Time // the last audit-suppressed line, at most one a second
}

const (
	// useOnlyRate and useOnlyBurst bound the audit lines per second that
	// use-only connections can cause, all together.
	useOnlyRate  = 20
	useOnlyBurst = 500
	// maxReported is how much of each remote-reported string (exe, argv0,
	// cwd, hostname) an audit line keeps.
	maxReported = 256
)

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
	// Relay is the request of a relay record (op "relay").
	Relay *RelayInfo `json:"relay,omitempty"`
}

// Log writes e, stamping the time. Events of use-only connections are
// rate limited (see AuditLog).
func (a *AuditLog) Log(e Event) {
	if a == nil || (a.w == nil && a.debug == nil) {
		return
	}
	now := time.Now()
	if e.Remote != nil {
		r := *e.Remote
		r.Exe, r.Argv0, r.Cwd, r.Hostname = cutReported(r.Exe), cutReported(r.Argv0), cutReported(r.Cwd), cutReported(r.Hostname)
		e.Remote = &r
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	// A relayed request whose answer reported its usage is always
	// written: each is a call billed to the owner, and usage sums them.
	// Free ones (a model list, a 404) share the bucket, or a server could
	// fill the laptop's disk with them.
	limited := e.Via != "" && (e.Via != ViaAdmin || e.Forwarded) &&
		!(e.Relay != nil && e.Relay.UsageKnown && e.Decision != "deny")
	if limited || len(a.suppressed) > 0 {
		a.refillLocked(now)
	}
	if len(a.suppressed) > 0 && a.tokens >= 1 && now.Sub(a.summarized) >= time.Second {
		a.summaryLocked(now)
	}
	if limited {
		if a.tokens < 1 {
			if a.suppressed == nil {
				a.suppressed = map[string]int{}
			}
			a.suppressed[e.Op+" "+e.Decision]++
			return
		}
		a.tokens--
	}
	a.writeLocked(e, now)
}

// Flush writes the count of suppressed events, if any, once the bucket
// allows a line; the agent calls it every second.
func (a *AuditLog) Flush() {
	if a == nil {
		return
	}
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.suppressed) == 0 {
		return
	}
	a.refillLocked(now)
	if a.tokens >= 1 && now.Sub(a.summarized) >= time.Second {
		a.summaryLocked(now)
	}
}

func (a *AuditLog) refillLocked(now time.Time) {
	if a.refilled.IsZero() {
		a.tokens = useOnlyBurst
	} else {
		a.tokens = min(useOnlyBurst, a.tokens+now.Sub(a.refilled).Seconds()*useOnlyRate)
	}
	a.refilled = now
}

// summaryLocked writes one line counting the suppressed events, and
// spends a token on it.
func (a *AuditLog) summaryLocked(now time.Time) {
	keys := make([]string, 0, len(a.suppressed))
	n := 0
	for k, c := range a.suppressed {
		keys = append(keys, k)
		n += c
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "%d events of use-only connections not logged (more than %d a second):", n, useOnlyRate)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s %d;", k, a.suppressed[k])
	}
	a.suppressed = nil
	a.summarized = now
	a.tokens--
	a.writeLocked(Event{Op: "audit-suppressed", Decision: "error", Reason: strings.TrimSuffix(b.String(), ";")}, now)
}

func (a *AuditLog) writeLocked(e Event, now time.Time) {
	e.Time = now.UTC().Format(time.RFC3339Nano)
	line, err := json.Marshal(e)
	if err != nil {
		return
	}
	if a.w != nil {
		a.w.Write(append(line, '\n'))
	}
	if a.debug != nil {
		fmt.Fprintf(a.debug, "audit: %s\n", line)
	}
}

// cutReported keeps the first maxReported bytes of s (whole runes).
func cutReported(s string) string {
	if len(s) <= maxReported {
		return s
	}
	cut := maxReported
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("...[cut: %d bytes in all]", len(s))
}

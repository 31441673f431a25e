package peercred

import (
	"errors"
	"strconv"
	"strings"
	"sync"
)

// AuditUnset is the kernel's "not set" value for [Process.LoginUID] and
// [Process.SessionID] (AUDIT_UID_UNSET, (uint32)-1). It is also used when the
// value is unknown, because 0 would wrongly read as a root login.
const AuditUnset = ^uint32(0)

// ErrNoProcess is wrapped by errors from [ProcessOf] when no process with the
// given pid exists (or it exited while being read).
var ErrNoProcess = errors.New("no such process")

// errClosed is returned by Describe after Close.
var errClosed = errors.New("peercred: peer already closed")

// Cred is what the kernel recorded about the peer at connect time.
type Cred struct {
	UID, GID uint32
	PID      int // 0 when the OS does not say (or the peer is outside our pid namespace)
}

// Peer holds the peer's credentials and, on Linux 6.5+, a pidfd of the peer
// process taken from the socket itself (SO_PEERPIDFD). The pidfd pins the
// identity of the process, so there is no pid-reuse race. Close releases it.
//
// A Peer is safe for concurrent use; Close waits for running Describe calls.
type Peer struct {
	Cred

	mu       sync.RWMutex // guards the pidfd against Close while it is in use
	pidfd    int
	hasPidfd bool // a flag, not pidfd -1, so that a zero Peer never owns fd 0
	closed   bool
}

// HasPidfd reports whether the kernel gave us a pidfd for the peer, i.e.
// whether [Peer.Describe] can verify its result.
func (p *Peer) HasPidfd() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.hasPidfd
}

// Process describes a process for the audit log and confirmation prompts.
// Fields that are unknown are zero or empty, except LoginUID and SessionID,
// which are [AuditUnset] then.
type Process struct {
	PID int
	UID uint32 // effective uid now (Linux: /proc/PID/status); the connect-time uid is in Cred
	Exe string // Linux: target of /proc/PID/exe, kernel-maintained; may end in " (deleted)"
	// ExeDev and ExeIno identify the file the process runs (Linux: a stat
	// of /proc/PID/exe, which follows the kernel's own reference, not the
	// path): unlike a name, they cannot be borrowed by a copy or a rename.
	// Zero when unknown.
	ExeDev, ExeIno uint64
	// Argv0 is the first element of /proc/PID/cmdline (Linux only). The
	// process can rewrite it at will: show it, never trust it.
	Argv0 string
	Comm  string // kernel task name (Linux: /proc/PID/stat; macOS: p_comm); settable by the process on Linux
	// StartTime identifies the process incarnation together with PID. Linux:
	// field 22 of /proc/PID/stat (clock ticks since boot); macOS: p_starttime
	// in microseconds since the epoch. Compare only values from the same host
	// and boot.
	StartTime uint64
	PPID      int
	SessionID uint32 // kernel audit session id (/proc/PID/sessionid)
	LoginUID  uint32 // audit login uid (/proc/PID/loginuid)
	// Verified is true when a pidfd proved that the description belongs to
	// the same process that connected, and that it was still alive after
	// everything was read.
	Verified bool
	// VerifiedBy names the mechanism that set Verified (or that found the
	// process gone): "PIDFD_GET_INFO" or "pidfd_send_signal+fdinfo"; empty
	// when no pidfd was available.
	VerifiedBy string
}

// String renders p on one line, e.g.
// `pid=123 uid=1000 exe=/usr/bin/ssh comm=ssh ppid=99 verified=true`.
// Values that could break the line or the key=value syntax are quoted.
func (p Process) String() string {
	var b strings.Builder
	b.WriteString("pid=")
	b.WriteString(strconv.Itoa(p.PID))
	b.WriteString(" uid=")
	b.WriteString(strconv.FormatUint(uint64(p.UID), 10))
	if p.Exe != "" {
		b.WriteString(" exe=")
		b.WriteString(quote(p.Exe))
	}
	if p.Argv0 != "" && p.Argv0 != p.Exe {
		b.WriteString(" argv0=")
		b.WriteString(quote(p.Argv0))
	}
	if p.Comm != "" {
		b.WriteString(" comm=")
		b.WriteString(quote(p.Comm))
	}
	if p.PPID != 0 {
		b.WriteString(" ppid=")
		b.WriteString(strconv.Itoa(p.PPID))
	}
	if p.LoginUID != AuditUnset || p.SessionID != AuditUnset {
		b.WriteString(" loginuid=")
		b.WriteString(auditID(p.LoginUID))
		b.WriteString(" session=")
		b.WriteString(auditID(p.SessionID))
	}
	b.WriteString(" verified=")
	b.WriteString(strconv.FormatBool(p.Verified))
	return b.String()
}

func auditID(v uint32) string {
	if v == AuditUnset {
		return "unset"
	}
	return strconv.FormatUint(uint64(v), 10)
}

// quote leaves plain tokens bare and quotes anything else, so that
// attacker-chosen file names cannot forge fields or lines in the log.
func quote(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' || c == '=' {
			return strconv.Quote(s)
		}
	}
	return s
}

// newProcess returns a Process with only the identity known.
func newProcess(pid int) Process {
	return Process{PID: pid, SessionID: AuditUnset, LoginUID: AuditUnset}
}

// credProcess is the description made of what the socket told us alone.
func (p *Peer) credProcess() Process {
	pr := newProcess(p.PID)
	pr.UID = p.UID
	return pr
}

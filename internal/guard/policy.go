package guard

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/llm-agent/llm-agent/internal/peercred"
	"github.com/llm-agent/llm-agent/protocol"
)

// auditUnset is the kernel's "no audit session" value.
const auditUnset = 1<<32 - 1

// self is what the guard knows of its own login.
type self struct {
	uid       uint32
	bootID    string
	sessionID uint32 // audit session id; auditUnset when audit is off
	leader    int    // session leader (the login shell) for the descent check
	leaderAt  uint64 // its start time, against pid reuse
}

func readSelf(leader int) (self, error) {
	s := self{uid: uint32(os.Getuid()), sessionID: auditUnset}
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return s, fmt.Errorf("boot id: %w", err)
	}
	s.bootID = strings.TrimSpace(string(b))
	if b, err := os.ReadFile("/proc/self/sessionid"); err == nil {
		if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32); err == nil {
			s.sessionID = uint32(v)
		}
	}
	sid := leader
	if sid == 0 {
		var err error
		if sid, err = getsid(); err != nil {
			return s, err
		}
	}
	// A session whose leader has exited (a guard started from a script
	// whose parent is gone) has no login to descend from or to watch.
	if p, err := peercred.ProcessOf(sid); err == nil {
		s.leader, s.leaderAt = sid, p.StartTime
	}
	return s, nil
}

// policy decides which local processes may use the guard.
type policy struct {
	self     self
	allowExe map[string]bool

	mu       sync.Mutex
	owners   map[uint32]bool // audit session ids of the owner's logins on this boot
	refresh  func() ([]protocol.Session, error)
	lastSync time.Time
}

// maxDepth bounds the walk up the process tree.
const maxDepth = 64

// allow returns nil when proc may use the guard, else why not.
func (p *policy) allow(proc peercred.Process, connUID uint32) error {
	if connUID != p.self.uid {
		return fmt.Errorf("uid %d is not the owner's uid %d", connUID, p.self.uid)
	}
	if !proc.Verified {
		return fmt.Errorf("pid %d could not be identified race-free", proc.PID)
	}
	if p.allowExe[strings.TrimSuffix(proc.Exe, " (deleted)")] {
		return nil
	}
	if p.self.sessionID != auditUnset {
		if proc.SessionID == p.self.sessionID || p.ownerSession(proc.SessionID) {
			return nil
		}
		return fmt.Errorf("pid %d (%s) belongs to audit session %d, not to one of the owner's logins", proc.PID, proc.Exe, proc.SessionID)
	}
	if p.descends(proc) {
		return nil
	}
	return fmt.Errorf("pid %d (%s) does not descend from the owner's login (session leader %d)", proc.PID, proc.Exe, p.self.leader)
}

// ownerSession reports whether id is a login session of the owner's that a
// guard registered with the laptop agent, asking the agent again at most
// once a second.
func (p *policy) ownerSession(id uint32) bool {
	if id == auditUnset {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.owners[id] {
		return true
	}
	if p.refresh == nil || time.Since(p.lastSync) < time.Second {
		return false
	}
	p.lastSync = time.Now()
	list, err := p.refresh()
	if err != nil {
		return false
	}
	p.owners = map[uint32]bool{}
	for _, s := range list {
		if s.BootID == p.self.bootID {
			p.owners[s.SessionID] = true
		}
	}
	return p.owners[id]
}

// descends walks up from proc to the owner's login session leader,
// checking each step's start time so that a reused pid cannot stand in
// for an ancestor. A process reparented to init (nohup after logout) no
// longer descends; that is what the audit session id is for.
func (p *policy) descends(proc peercred.Process) bool {
	return Descends(proc, p.self.leader, p.self.leaderAt)
}

// Descends reports whether proc is the process (pid, start) or descends
// from it, checking each step's start time so that a reused pid cannot
// stand in for an ancestor.
func Descends(proc peercred.Process, pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	cur := proc
	for i := 0; i < maxDepth; i++ {
		if cur.PID == pid && cur.StartTime == start {
			return true
		}
		if cur.PPID <= 1 {
			return false
		}
		parent, err := peercred.ProcessOf(cur.PPID)
		if err != nil || parent.StartTime > cur.StartTime {
			// A parent younger than its child is a reused pid.
			return false
		}
		cur = parent
	}
	return false
}

// LoginPolicy is the guard's per-process check for a process that serves
// only its own login (llm-agent-client proxy): same uid, verified, and in
// the caller's audit login session or, when the kernel keeps no audit
// session id, descended from the caller's session leader. It knows no
// other login of the owner's and allows no executable by name.
type LoginPolicy struct{ p *policy }

// NewLoginPolicy reads the calling process's login.
func NewLoginPolicy() (*LoginPolicy, error) {
	me, err := readSelf(0)
	if err != nil {
		return nil, err
	}
	return &LoginPolicy{&policy{self: me, allowExe: map[string]bool{}, owners: map[uint32]bool{}}}, nil
}

// KnowOwnerSessions lets the policy also allow the owner's other logins on
// this boot, as the guard does: refresh asks the agent which audit
// sessions guards registered for its owner (at most once a second). A
// proxy left running after its login ended then serves the owner's next
// login, whose ssh -L connection comes from a new audit session.
func (l *LoginPolicy) KnowOwnerSessions(refresh func() ([]protocol.Session, error)) {
	l.p.mu.Lock()
	l.p.refresh = refresh
	l.p.mu.Unlock()
}

// Allow returns nil when proc, connected with connUID, may use the
// caller's service, else why not.
func (l *LoginPolicy) Allow(proc peercred.Process, connUID uint32) error {
	return l.p.allow(proc, connUID)
}

// Audited reports whether the kernel keeps an audit session id for the
// caller's login (else the rule is descent from its session leader).
func (l *LoginPolicy) Audited() bool { return l.p.self.sessionID != auditUnset }

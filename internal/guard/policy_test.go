package guard

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/llm-agent/llm-agent/internal/peercred"
	"github.com/llm-agent/llm-agent/protocol"
)

func TestPolicyAllow(t *testing.T) {
	me := self{uid: 1000, bootID: "boot-a", sessionID: 7, leader: 1, leaderAt: 1}
	refreshed := 0
	p := &policy{
		self:     me,
		allowExe: map[string]bool{"/usr/bin/allowed": true},
		owners:   map[uint32]bool{},
		refresh: func() ([]protocol.Session, error) {
			refreshed++
			return []protocol.Session{{BootID: "boot-a", SessionID: 8}, {BootID: "boot-b", SessionID: 9}}, nil
		},
	}
	proc := func(exe string, session uint32, verified bool) peercred.Process {
		return peercred.Process{PID: 4242, Exe: exe, SessionID: session, Verified: verified}
	}
	tests := []struct {
		name string
		proc peercred.Process
		uid  uint32
		want string // "" allows; else a part of the refusal
	}{
		{"own session", proc("/bin/sh", 7, true), 1000, ""},
		{"other uid", proc("/bin/sh", 7, true), 1001, "not the owner's uid"},
		{"unverified", proc("/bin/sh", 7, false), 1000, "race-free"},
		{"allowed exe, other session", proc("/usr/bin/allowed", 99, true), 1000, ""},
		{"allowed exe after an upgrade", proc("/usr/bin/allowed (deleted)", 99, true), 1000, ""},
		{"earlier login registered with the agent", proc("/bin/sh", 8, true), 1000, ""},
		{"session registered on another boot", proc("/bin/sh", 9, true), 1000, "audit session 9"},
		{"co-tenant session", proc("/bin/sh", 12, true), 1000, "audit session 12"},
		{"no audit session", proc("/bin/sh", auditUnset, true), 1000, "audit session"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p.lastSync = p.lastSync.AddDate(-1, 0, 0) // allow a refresh
			err := p.allow(tc.proc, tc.uid)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want a refusal mentioning %q", err, tc.want)
			}
		})
	}
	if refreshed == 0 {
		t.Error("the policy never asked the agent for the owner's sessions")
	}
}

// TestDescends checks the fallback without audit session ids on real
// processes: a child of ours descends from our parent (standing in for the
// login's session leader, which under a CI runner may be long gone); init
// does not.
func TestDescends(t *testing.T) {
	sid := os.Getppid()
	leader, err := peercred.ProcessOf(sid)
	if err != nil {
		t.Fatalf("our parent %d: %v", sid, err)
	}
	p := &policy{self: self{uid: uint32(os.Getuid()), sessionID: auditUnset, leader: sid, leaderAt: leader.StartTime}}
	cmd := exec.Command("sleep", "5")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	child, err := peercred.ProcessOf(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if !p.descends(child) {
		t.Errorf("our child pid %d does not descend from session leader %d", child.PID, sid)
	}
	initProc, err := peercred.ProcessOf(1)
	if err == nil && sid != 1 && p.descends(initProc) {
		t.Error("init descends from our session leader")
	}
	// A leader whose start time does not match is a reused pid.
	p.self.leaderAt++
	if p.descends(child) {
		t.Error("descent accepted against a leader with another start time")
	}
}

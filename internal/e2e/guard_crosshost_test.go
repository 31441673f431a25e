package e2e

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/internal/sshtest"
	"github.com/llm-agent/llm-agent/protocol"
)

// TestGuardSessionCrossHost: the owner is connected, with ForwardAgent, to
// a shared account on host B (guarded) and to host A, where the attacker
// is root. Through A's forwarded socket the attacker registers, for B's
// boot id (readable by every user of B), the audit session of a co-tenant
// on B. B's guard must not take it for one of the owner's logins: the
// agent keeps guard sessions per verified host path.
func TestGuardSessionCrossHost(t *testing.T) {
	r, a, token := newGrdRigAgent(t, "grdxb", "sk-ant-xhost")
	owner := r.login("owner on B", a.Sock)
	g := owner.startGuard()
	co := r.login("co-tenant on B", "")
	sid, err := strconv.ParseUint(co.SessionID, 10, 32)
	if err != nil || sid == 1<<32-1 {
		t.Skipf("no audit session ids on this kernel (co-tenant's %q): the guard does not use registered sessions", co.SessionID)
	}
	if res := co.try("LLM_AUTH_SOCK='" + g.Sock + "'"); res.rc == 0 {
		t.Fatalf("the co-tenant got through the guard before any attack: %q", res.stderr)
	}

	rA := &grdRig{t: t, user: r.user, srv: sshtest.Start(t, sshtest.Options{Name: "grdxa"}), live: r.live}
	ownerA := rA.login("owner on A", a.Sock)
	out, rc := ownerA.Run(`printf '%s\n' "$SSH_AUTH_SOCK"`)
	fwdA := strings.TrimSpace(out)
	if rc != 0 || fwdA == "" {
		t.Fatalf("the forwarded socket on A: exit %d, %q", rc, out)
	}
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Fatal(err)
	}
	nc, err := net.Dial("unix", fwdA)
	if err != nil {
		t.Fatalf("root on A dialling %s: %v", fwdA, err)
	}
	defer nc.Close()
	c := protocol.NewClient(nc)
	c.Timeout = 10 * time.Second
	_, err = c.Guard(&protocol.GuardRequest{Op: protocol.GuardRegister,
		Session: protocol.Session{BootID: strings.TrimSpace(string(boot)), SessionID: uint32(sid)}})
	t.Logf("root on A registers B's co-tenant session %d through %s: %v", sid, fwdA, err)

	time.Sleep(1200 * time.Millisecond) // the guard asks the agent again at most once a second
	res := co.try("LLM_AUTH_SOCK='" + g.Sock + "'")
	t.Logf("co-tenant on B through the guard: exit %d: %s", res.rc, res.stderr)
	if res.rc == 0 || strings.Contains(res.out, token) {
		t.Errorf("the co-tenant on B got the owner's credential (exit %d, the owner's: %v) after root on A registered its session",
			res.rc, strings.Contains(res.out, token))
	}
}

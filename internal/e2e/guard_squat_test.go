package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGuardReplacesSquatter: a co-tenant of the shared account serves an
// agent that proves another owner key on the owner's stable path while the
// owner is away (today's guard then exits 1, "served for another owner"). The owner's next guard replaces it,
// logs it, and serves the owner's credential there.
func TestGuardReplacesSquatter(t *testing.T) {
	r := newGrdRig(t, "grdsquat")
	a1, tok1 := grdAgent(t, "sk-ant-grds1")

	l1 := r.login("owner", a1.Sock)
	g1 := l1.startGuard()
	l1.Kill()
	if _, ok := grdWaitGone(g1.PID, 5*time.Second); !ok {
		t.Fatalf("the owner's guard still runs 5 s after the owner disconnected")
	}
	// The co-tenant runs an llm-agent of their own (another owner key) on
	// the owner's stable path; it answers the account's uid.
	StartAgent(t, AgentOptions{Dir: filepath.Dir(g1.Sock),
		Cred: r.user.Cred()})
	l3 := r.login("owner again", a1.Sock)
	g3 := l3.startGuard()
	if g3.Sock != g1.Sock {
		t.Errorf("the owner's guard serves %s, want the owner's path %s", g3.Sock, g1.Sock)
	}
	res := l3.try("LLM_AUTH_SOCK='" + g3.Sock + "'")
	if res.rc != 0 {
		t.Fatalf("owner through the guard after the squatter: exit %d %q", res.rc, res.stderr)
	}
	fwdSameSecret(t, "owner through the replaced path", res.out, tok1)
	logData, _ := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(g1.Sock)), "guard.log"))
	if !strings.Contains(string(logData), "replacing a squatter at "+g1.Sock+": it proves another owner key") {
		t.Errorf("guard.log does not record the squatter; it holds:\n%s", logData)
	}
}

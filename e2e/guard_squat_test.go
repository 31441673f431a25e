package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGuardReplacesSquatter: a co-tenant of the shared account moves a
// socket that proves another owner key (their own guard's) to the owner's
// stable path while the owner is away. The owner's next guard replaces it,
// logs it, and serves the owner's credential there.
func TestGuardReplacesSquatter(t *testing.T) {
	r := newGrdRig(t, "grdsquat")
	a1, tok1 := grdAgent(t, "sk-ant-grds1")
	a2, _ := grdAgent(t, "sk-ant-grds2")

	l1 := r.login("owner", a1.Sock)
	g1 := l1.startGuard()
	l1.Kill()
	if _, ok := grdWaitGone(g1.PID, 5*time.Second); !ok {
		t.Fatalf("the owner's guard still runs 5 s after the owner disconnected")
	}
	l2 := r.login("co-tenant", a2.Sock)
	g2 := l2.startGuard()
	if out, rc := l2.Run("mkdir -p '" + filepath.Dir(g1.Sock) + "' && mv '" + g2.Sock + "' '" + g1.Sock + "'"); rc != 0 {
		t.Fatalf("co-tenant: planting the socket: exit %d %q", rc, out)
	}
	if !grdAnswers(g1.Sock) {
		t.Fatalf("the planted socket at %s does not answer", g1.Sock)
	}

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
	if !strings.Contains(string(logData), "replacing a squatter at "+g1.Sock+": ") {
		t.Errorf("guard.log does not record the squatter; it holds:\n%s", logData)
	}
}

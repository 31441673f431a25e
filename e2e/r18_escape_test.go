package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// r18Tool runs under the proxy, as a command that opencode serve's shell
// endpoint runs for whoever holds the password: it leaves a setsid'd,
// orphaned process behind (the proxy, a child subreaper, adopts it), then
// kills the proxy, which any process of the uid may do. The orphan waits
// for the proxy to be gone and asks the guard's stable path. $1 the
// client, $2 the stable path.
const r18Tool = `C=$1; S=$2; P=$PPID
rm -f "$HOME/r18.rc" "$HOME/r18.out"
setsid sh -c 'p=$0; while [ -d /proc/$p ]; do sleep 0.05; done; sleep 0.3
LLM_AUTH_SOCK=$2 "$1" get anthropic >"$HOME/r18.out" 2>"$HOME/r18.err"; echo $? >"$HOME/r18.rc"' "$P" "$C" "$S" </dev/null >/dev/null 2>&1 &
sleep 0.5
kill -9 $P
`

// TestProxyKilledEscape: a process the tool left behind must not take the
// key once the tool kills its proxy.
func TestProxyKilledEscape(t *testing.T) {
	requireRoot(t)
	r := newGrdRig(t, "r18escape")
	a, token := grdAgent(t, "sk-ant-r18esc")
	up := startFakeUpstream(t, "R18")
	owner := r.login("owner", a.Sock)
	g := owner.startGuard()
	home := r.user.Home
	if err := os.WriteFile(filepath.Join(home, "r18-tool.sh"), []byte(r18Tool), 0o644); err != nil {
		t.Fatal(err)
	}
	out, rc := owner.Run(`"$C" proxy --upstream anthropic=` + up.URL + ` -- sh "$HOME/r18-tool.sh" "$C" '` + g.Sock + `' 2>"$HOME/r18-proxy.err"; echo "@@rc=$?"`)
	t.Logf("proxy: exit %d, %q", rc, out)
	var got string
	waitFor(10*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(home, "r18.rc"))
		got = strings.TrimSpace(string(b))
		return got != ""
	})
	outb, _ := os.ReadFile(filepath.Join(home, "r18.out"))
	errb, _ := os.ReadFile(filepath.Join(home, "r18.err"))
	t.Logf("the orphan after the proxy was killed: get exit %q, stderr %q", got, strings.TrimSpace(string(errb)))
	if got == "0" || strings.Contains(string(outb), token) {
		t.Errorf("a process the tool left behind got the key (%v) after the tool killed its proxy: get exit %q", strings.Contains(string(outb), token), got)
	}
	logb, _ := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(g.Sock)), "guard.log"))
	if !strings.Contains(string(logb), "runs with no_new_privs, as everything started under llm-agent-client proxy does") {
		t.Errorf("guard.log does not say why the orphan was refused:\n%s", logb)
	}
}

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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
	r, a, token := newGrdRigAgent(t, "r18escape", "sk-ant-r18esc")
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

// r18Poll runs under a detached proxy: it asks the guard's stable path
// for the key every 20 ms and logs each exit code. $1 the client, $2 the
// stable path.
const r18Poll = `echo $$ > "$HOME/r18-poll.pid"
while [ ! -e "$HOME/r18-stop" ]; do
	LLM_AUTH_SOCK=$2 "$1" get anthropic >/dev/null 2>"$HOME/r18-poll.err"; echo "$?" >> "$HOME/r18-poll.log"
	sleep 0.02
done
`

// TestProxyReconnectWindow: after the owner reconnects, the new guard
// refuses the tool's processes at once, not only once the proxy has
// registered with it (the proxy looks for a new guard every second).
func TestProxyReconnectWindow(t *testing.T) {
	r, a, token := newGrdRigAgent(t, "r18window", "sk-ant-r18win")
	up := startFakeUpstream(t, "R18W")
	home := r.user.Home
	if err := os.WriteFile(filepath.Join(home, "r18-poll.sh"), []byte(r18Poll), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile(filepath.Join(home, "r18-stop"), nil, 0o644) })
	owner := r.login("owner", a.Sock)
	g := owner.startGuard()
	out, rc := owner.Run(`setsid nohup "$C" proxy --upstream anthropic=` + up.URL + ` -- sh "$HOME/r18-poll.sh" "$C" '` + g.Sock + `' >"$HOME/r18-proxy.log" 2>&1 </dev/null & echo $!`)
	proxyPID, _ := strconv.Atoi(strings.TrimSpace(out))
	if rc != 0 || proxyPID <= 0 {
		t.Fatalf("starting the proxy: exit %d, %q", rc, out)
	}
	t.Cleanup(func() { syscall.Kill(proxyPID, syscall.SIGKILL) })
	time.Sleep(time.Second)
	owner.Logout()
	if !owner.Exited(15 * time.Second) {
		t.Fatal("the owner's ssh did not exit after logout")
	}
	time.Sleep(time.Second)
	owner2 := r.login("owner again", a.Sock)
	logPath := filepath.Join(home, "r18-poll.log")
	os.WriteFile(logPath, nil, 0o644)
	owner2.startGuard()
	time.Sleep(3 * time.Second)
	b, _ := os.ReadFile(logPath)
	codes := strings.Fields(string(b))
	got := 0
	for _, c := range codes {
		if c == "0" {
			got++
		}
	}
	t.Logf("the tool's process asked the new guard %d times in the 3 s after it started; got the key %d times", len(codes), got)
	if len(codes) == 0 {
		t.Fatalf("the tool's loop did not run; proxy log: %s", readFileString(filepath.Join(home, "r18-proxy.log")))
	}
	if got > 0 {
		t.Errorf("a process under the proxy got the key %d times from the guard of the owner's new login", got)
	}
	if st := readFileString(fmt.Sprintf("/proc/%d/status", proxyPID)); !strings.Contains(st, "NoNewPrivs:\t0") {
		t.Errorf("the proxy itself runs with no_new_privs (or is gone): %q", st)
	}
	grdNoSecretIn(t, token, filepath.Join(home, "r18-proxy.log"), filepath.Join(home, "r18-poll.err"))
}

func readFileString(p string) string { b, _ := os.ReadFile(p); return string(b) }

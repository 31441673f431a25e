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

	"github.com/llm-agent/llm-agent/internal/sshtest"
)

// Issue 18: a long-running `proxy -- CMD` started under nohup survives the
// owner's logout, fails every request while nobody is connected, resumes
// on its own when the owner reconnects and a guard starts, and fails fast
// on a dead link (the owner's ssh client SIGSTOPped) until the laptop
// answers again. Times are measured and logged; the bounds are generous
// but each one fails on a proxy that hangs the full time-out per request,
// dies of the hangup, or stays on the vanished forwarded socket.

// pxdLoop is the tool run under the proxy: it asks the proxy every 0.2 s,
// as a tool would, and logs "status start end message" per request.
const pxdLoop = `sh -c 'echo $$ > "$HOME/pxd-tool.pid"
while [ ! -e "$HOME/pxd-stop" ]; do
	s=$(date +%s.%N)
	code=$(curl -s -m 60 -o "$HOME/pxd-body" -w "%{http_code}" -H "x-api-key: $ANTHROPIC_API_KEY" -H "content-type: application/json" \
		-d "{\"model\":\"claude-fake\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}" "$ANTHROPIC_BASE_URL/v1/messages")
	e=$(date +%s.%N)
	msg=$(sed -n "s/.*\"message\":\"\([^\"]*\)\".*/\1/p" "$HOME/pxd-body" | head -c 400 | tr " \t" "__")
	echo "$code $s $e $msg" >> "$HOME/pxd-loop.log"
	sleep 0.2
done'`

// pxdReq is one request of the tool's loop.
type pxdReq struct {
	code       string
	start, end time.Time
	msg        string
}

func (q pxdReq) took() time.Duration { return q.end.Sub(q.start) }

func pxdRead(t testing.TB, path string) []pxdReq {
	data, _ := os.ReadFile(path)
	var out []pxdReq
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) < 3 {
			continue
		}
		q := pxdReq{code: f[0], start: fwdParseTime(t, f[1]), end: fwdParseTime(t, f[2])}
		if len(f) > 3 {
			q.msg = strings.ReplaceAll(f[3], "_", " ")
		}
		out = append(out, q)
	}
	return out
}

// pxdAfter lists the requests that started after at.
func pxdAfter(t testing.TB, path string, at time.Time) []pxdReq {
	var out []pxdReq
	for _, q := range pxdRead(t, path) {
		if q.start.After(at) {
			out = append(out, q)
		}
	}
	return out
}

// pxdWaitOK waits up to limit for a 200 that started after at; it returns
// when it ended, relative to at.
func pxdWaitOK(t testing.TB, path string, at time.Time, limit time.Duration) (time.Duration, bool) {
	var got time.Duration
	_, ok := waitFor(limit, func() bool {
		for _, q := range pxdAfter(t, path, at) {
			if q.code == "200" {
				got = q.end.Sub(at)
				return true
			}
		}
		return false
	})
	return got, ok
}

func TestProxyDetached(t *testing.T) {
	sshtest.RequireRoot(t)
	for _, v := range []struct{ name, launch string }{
		{"setsid nohup", "setsid nohup"},
		{"nohup", "nohup"},
	} {
		t.Run(v.name, func(t *testing.T) { pxdScenario(t, v.launch, v.name == "setsid nohup") })
	}
}

func pxdScenario(t *testing.T, launch string, deadLink bool) {
	r, a, token := newGrdRigAgent(t, "pxdetach", "sk-ant-pxd")
	up := startFakeUpstream(t, "PXD-ANSWER")
	home := r.user.Home
	loopLog := filepath.Join(home, "pxd-loop.log")
	t.Cleanup(func() { os.WriteFile(filepath.Join(home, "pxd-stop"), nil, 0o644) })

	// 1. The owner's first login starts the proxy detached, before any guard.
	owner := r.login("owner", a.Sock)
	out, rc := owner.Run(`LLM_AGENT_TIMEOUT=3s ` + launch + ` "$C" proxy -d --upstream anthropic=` + up.URL + ` -- ` + pxdLoop +
		` >"$HOME/pxd-proxy.log" 2>&1 </dev/null & echo $!`)
	proxyPID, _ := strconv.Atoi(strings.TrimSpace(out))
	if rc != 0 || proxyPID <= 0 {
		t.Fatalf("starting the proxy: exit %d, %q, stderr %q", rc, out, owner.Stderr())
	}
	t.Cleanup(func() { syscall.Kill(proxyPID, syscall.SIGKILL) })
	proxyLog := func() string { b, _ := os.ReadFile(filepath.Join(home, "pxd-proxy.log")); return string(b) }
	if _, ok := pxdWaitOK(t, loopLog, time.Now().Add(-time.Minute), 20*time.Second); !ok {
		t.Fatalf("the tool got no answer through the proxy; proxy log:\n%s", proxyLog())
	}
	var toolPID int
	if b, err := os.ReadFile(filepath.Join(home, "pxd-tool.pid")); err == nil {
		toolPID, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}

	// 2. The owner logs out; the hangup a terminal would send reaches the
	// proxy's process group.
	owner.Logout()
	if !owner.Exited(15 * time.Second) {
		t.Fatalf("the owner's ssh did not exit after logout")
	}
	exited := time.Now()
	pgid, _ := syscall.Getpgid(proxyPID)
	if pgid > 1 {
		syscall.Kill(-pgid, syscall.SIGHUP)
	}
	time.Sleep(3 * time.Second)
	if processGone(proxyPID) || (toolPID > 0 && processGone(toolPID)) {
		t.Fatalf("%s: after the logout and SIGHUP the proxy (pid %d) or its tool (pid %d) is gone; proxy log:\n%s", launch, proxyPID, toolPID, proxyLog())
	}
	after := pxdAfter(t, loopLog, exited)
	var firstFail *pxdReq
	for i, q := range after {
		if q.code != "503" {
			t.Errorf("a request %v after the logout: HTTP %s, want 503", q.start.Sub(exited).Round(time.Millisecond), q.code)
			continue
		}
		if firstFail == nil {
			firstFail = &after[i]
		}
	}
	if firstFail == nil {
		t.Fatalf("no request after the logout; proxy log:\n%s", proxyLog())
	}
	t.Logf("%s: proxy and tool alive after logout + SIGHUP; %d requests since, all 503; the first ended %v after ssh exited: %q",
		launch, len(after), firstFail.end.Sub(exited).Round(time.Millisecond), firstFail.msg)
	if firstFail.end.Sub(exited) > time.Second {
		t.Errorf("the first request after the logout ended %v after ssh exited, want < 1 s", firstFail.end.Sub(exited))
	}
	if !strings.Contains(firstFail.msg, "not connected") || !strings.Contains(firstFail.msg, "no such socket") {
		t.Errorf("the 503 does not say what was found: %q", firstFail.msg)
	}

	// 3. The owner reconnects; the login's profile starts the guard. The
	// same proxy answers again.
	owner2 := r.login("owner again", a.Sock)
	if _, rc := owner2.Run(`export LLM_AGENT_TIMEOUT=3s`); rc != 0 {
		t.Fatal("export")
	}
	g := owner2.startGuard()
	guarded := time.Now()
	d, ok := pxdWaitOK(t, loopLog, guarded, 10*time.Second)
	if !ok {
		t.Fatalf("the proxy (pid %d) did not answer within 10 s of the guard's start on %s; last requests: %+v\nproxy log:\n%s", proxyPID, g.Sock, lastN(pxdAfter(t, loopLog, guarded), 3), proxyLog())
	}
	t.Logf("%s: the same proxy (pid %d) answers again %v after the new login's guard started", launch, proxyPID, d.Round(time.Millisecond))
	if n, _ := up.sawSecret(token); n < 2 {
		t.Errorf("the upstream saw the owner's key %d times, want before and after the reconnect", n)
	}

	if deadLink {
		pxdDeadLink(t, r, owner2, loopLog, proxyLog)
	}
	grdNoSecretIn(t, token, filepath.Join(home, "pxd-proxy.log"), loopLog)
}

// pxdDeadLink SIGSTOPs the owner's ssh client (a dead network): the first
// request fails within about the 3 s time-out, the next ones at once, in
// the proxy and in the guard (get exits 2 at once); after SIGCONT the
// proxy answers again within about 2 s.
func pxdDeadLink(t *testing.T, r *grdRig, owner *grdShell, loopLog string, proxyLog func() string) {
	home := r.user.Home
	goFile, gets := filepath.Join(home, "pxd-go"), filepath.Join(home, "pxd-gets")
	// Timed gets through the guard, started by a file (stdin does not pass
	// a stopped ssh).
	if _, rc := owner.Run(`rm -f '` + gets + `'; ( while [ ! -e '` + goFile + `' ]; do sleep 0.05; done
for i in 1 2 3 4 5 6; do s=$(date +%s.%N); "$C" get anthropic >/dev/null 2>"$HOME/pxd-get.err"; rc=$?
echo "$rc $s $(date +%s.%N) $(head -c 300 "$HOME/pxd-get.err" | tr ' \n\t' '___')" >> '` + gets + `'; done ) </dev/null >/dev/null 2>&1 &`); rc != 0 {
		t.Fatal("starting the timed gets")
	}
	resume := faultStop(t, "the owner's ssh client", owner.SSHPID)
	stopped := time.Now()
	os.WriteFile(goFile, nil, 0o644)
	time.Sleep(10 * time.Second)
	reqs := pxdAfter(t, loopLog, stopped)
	if len(reqs) < 6 {
		t.Fatalf("only %d requests in the 10 s after SIGSTOP: %+v\nproxy log:\n%s", len(reqs), reqs, proxyLog())
	}
	t.Logf("dead link: first request: HTTP %s after %v: %q", reqs[0].code, reqs[0].took().Round(time.Millisecond), reqs[0].msg)
	if reqs[0].code != "503" || reqs[0].took() > 3*time.Second+2*time.Second {
		t.Errorf("dead link: the first request: HTTP %s after %v, want 503 within ~3 s", reqs[0].code, reqs[0].took())
	}
	var times []string
	for _, q := range reqs[1:6] {
		times = append(times, q.took().Round(time.Millisecond).String())
		if q.code != "503" || q.took() > time.Second || !strings.Contains(q.msg, "failing fast until it answers") {
			t.Errorf("dead link: a later request: HTTP %s after %v: %q; want 503 at once, failing fast", q.code, q.took(), q.msg)
		}
	}
	t.Logf("dead link: the next 5 requests failed in %s", strings.Join(times, ", "))

	data, _ := os.ReadFile(gets)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) < 6 {
		t.Errorf("only %d gets through the guard finished in 10 s: %q", len(lines), data)
	}
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) < 3 {
			continue
		}
		took := fwdParseTime(t, f[2]).Sub(fwdParseTime(t, f[1]))
		msg := ""
		if len(f) > 3 {
			msg = strings.ReplaceAll(f[3], "_", " ")
		}
		t.Logf("dead link: get through the guard #%d: exit %s after %v: %q", i+1, f[0], took.Round(time.Millisecond), msg)
		if f[0] != "2" || (i > 0 && took > time.Second) || strings.Count(strings.TrimSpace(msg), "\n") > 0 {
			t.Errorf("get through the guard #%d: exit %s after %v, want 2 (at once after the first)", i+1, f[0], took)
		}
	}

	resume()
	resumed := time.Now()
	d, ok := pxdWaitOK(t, loopLog, resumed.Add(-time.Second), 15*time.Second)
	if !ok {
		t.Fatalf("no answer within 15 s of SIGCONT; last requests %+v\nproxy log:\n%s", lastN(pxdAfter(t, loopLog, resumed), 3), proxyLog())
	}
	t.Logf("dead link: the proxy answers again %v after SIGCONT", (d - time.Second).Round(time.Millisecond))
}

func lastN(q []pxdReq, n int) string {
	if len(q) > n {
		q = q[len(q)-n:]
	}
	return fmt.Sprintf("%+v", q)
}

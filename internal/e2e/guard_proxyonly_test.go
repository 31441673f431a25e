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

// Issue 18: a tool run under `llm-agent-client proxy` (opencode serve)
// runs commands for whoever reaches it, inside the owner's guarded login,
// where the guard's per-process check lets them take the key. Under the
// proxy, only the proxy may take a credential.

// poTool runs under the proxy: a child asks the guard directly, a
// grandchild leaves the tree (setsid, then orphaned), a nested proxy
// tries to register, two processes stay behind in the background, and the
// proxy's own route serves a request upstream. $1 is the client, $2 the
// guard's stable path.
const poTool = `C=$1; S=$2
echo "@@proxy=$PPID"
LLM_AUTH_SOCK=$S "$C" get anthropic >"$HOME/po-child.out" 2>"$HOME/po-child.err"; echo "@@child=$?"
rm -f "$HOME/po-gc.rc"
setsid sh -c 'sh "$HOME/po-gc.sh" "$1" "$2" &' sh "$S" "$C" </dev/null >/dev/null 2>&1
i=0; while [ ! -s "$HOME/po-gc.rc" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
echo "@@gc=$(cat "$HOME/po-gc.rc" 2>/dev/null)"
LLM_AUTH_SOCK=$S "$C" proxy -- sh -c 'echo @@nested-ran' 2>"$HOME/po-nested.err"; echo "@@nested=$?"
sleep 300 </dev/null >/dev/null 2>&1 & echo "@@sleeper=$!"
setsid sh -c 'sleep 300 & echo $! > "$HOME/po-sleeper2"' </dev/null >/dev/null 2>&1
echo "@@sleeper2=$(cat "$HOME/po-sleeper2")"
code=$(curl -s -o "$HOME/po-up.body" -w "%{http_code}" -H "x-api-key: $ANTHROPIC_API_KEY" -H "content-type: application/json" \
	-d '{"model":"claude-fake","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}' "$ANTHROPIC_BASE_URL/v1/messages")
echo "@@up=$code"
`

// poGrandchild is started by poTool through setsid and a background job,
// so that its parent exits: it is orphaned before it asks the guard.
const poGrandchild = `sleep 0.5
ppid=$(cut -d' ' -f4 /proc/$$/stat)
LLM_AUTH_SOCK=$1 "$2" get anthropic >"$HOME/po-gc.out" 2>"$HOME/po-gc.err"; rc=$?
echo "$ppid" > "$HOME/po-gc.ppid"; echo $rc > "$HOME/po-gc.rc"
`

// TestGuardProxyOnly: in the owner's guarded login, under `proxy -- sh`,
// a child and an orphaned (setsid, double-forked) grandchild that set
// LLM_AUTH_SOCK to the guard's stable path are refused (exit 1, one
// line, a line in guard.log, a guard-refused record on the laptop), as is
// a nested proxy; the proxy's own request reaches the upstream with the
// real key; what the tool left running is ended with it; the owner's
// shell outside the proxy still gets the key. A process that claims to be
// a proxy but runs another executable is refused registration.
func TestGuardProxyOnly(t *testing.T) {
	r, a, token := newGrdRigAgent(t, "proxyonly", "sk-ant-pxonly")
	up := startFakeUpstream(t, "PO-ANSWER")
	owner := r.login("owner", a.Sock)
	g := owner.startGuard()
	home := r.user.Home
	guardLog := filepath.Join(filepath.Dir(filepath.Dir(g.Sock)), "guard.log")
	for name, body := range map[string]string{"po-tool.sh": poTool, "po-gc.sh": poGrandchild} {
		if err := os.WriteFile(filepath.Join(home, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	readHome := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(home, name))
		return strings.TrimSpace(string(b))
	}

	t.Run("under the proxy", func(t *testing.T) {
		out, rc := owner.Run(`"$C" proxy --upstream anthropic=` + up.URL + ` -- sh "$HOME/po-tool.sh" "$C" '` + g.Sock + `' 2>"$HOME/po-proxy.err"`)
		vars, _ := pxReport(out)
		t.Logf("proxy: exit %d, %v; stderr %q", rc, vars, readHome("po-proxy.err"))
		proxyPID, _ := strconv.Atoi(vars["proxy"])
		if rc != 0 || proxyPID == 0 {
			t.Fatalf("the tool did not run under the proxy: exit %d, output %q, proxy stderr %q", rc, out, readHome("po-proxy.err"))
		}
		for _, c := range []struct{ who, rc, outFile, errFile string }{
			{"a child", vars["child"], "po-child.out", "po-child.err"},
			{"an orphaned grandchild (setsid, double fork)", vars["gc"], "po-gc.out", "po-gc.err"},
		} {
			msg := readHome(c.errFile)
			t.Logf("%s: get exit %s, stderr %q", c.who, c.rc, msg)
			if c.rc != "1" || strings.Count(msg, "\n") != 0 || !strings.Contains(msg, "under llm-agent-client proxy") {
				t.Errorf("%s under the proxy: get exit %s, stderr %q; want exit 1 and one line saying it runs under the proxy", c.who, c.rc, msg)
			}
			if got := readHome(c.outFile); got != "" {
				t.Errorf("%s under the proxy printed %d bytes on stdout, want none", c.who, len(got))
			}
		}
		if ppid := readHome("po-gc.ppid"); ppid != vars["proxy"] {
			t.Errorf("the orphaned grandchild's parent is %s, want the proxy %d (a child subreaper)", ppid, proxyPID)
		}
		if vars["nested"] == "0" || strings.Contains(out, "@@nested-ran") {
			t.Errorf("a nested proxy under the proxy: exit %s, its tool ran: %v; want it refused", vars["nested"], strings.Contains(out, "@@nested-ran"))
		}
		t.Logf("nested proxy: %q", readHome("po-nested.err"))
		if vars["up"] != "200" {
			t.Errorf("the proxy's own request: HTTP %s, body %q; want 200", vars["up"], readHome("po-up.body"))
		}
		if n, _ := up.sawSecret(token); n != 1 {
			t.Errorf("the upstream saw the owner's key in %d requests, want 1", n)
		}
		// What the tool left running is ended with the proxy.
		for _, k := range []string{"sleeper", "sleeper2"} {
			pid, _ := strconv.Atoi(vars[k])
			if pid <= 0 {
				t.Errorf("no %s pid in the tool's output", k)
				continue
			}
			if _, ok := grdWaitGone(pid, 5*time.Second); !ok {
				t.Errorf("the tool's background process %d (%s) outlived the proxy", pid, k)
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		logb, _ := os.ReadFile(guardLog)
		want := fmt.Sprintf("runs under the proxy (pid %d); under the proxy only the proxy may take a credential", proxyPID)
		if n := strings.Count(string(logb), want); n < 3 {
			t.Errorf("guard.log has %d refusals %q, want at least 3 (child, grandchild, nested proxy):\n%s", n, want, logb)
		}
		var audited int
		waitFor(10*time.Second, func() bool {
			audited = 0
			for _, e := range readAudit(t, a.Audit) {
				if e.Op == "guard-refused" && strings.Contains(e.Reason, want) {
					audited++
				}
			}
			return audited >= 3
		})
		if audited < 3 {
			t.Errorf("the laptop's audit log has %d guard-refused records %q, want at least 3", audited, want)
		}
		grdNoSecretIn(t, token, guardLog, filepath.Join(home, "po-proxy.err"), filepath.Join(home, "po-nested.err"))
	})

	t.Run("outside the proxy", func(t *testing.T) {
		if res := owner.try(""); res.rc != 0 || res.out != token {
			t.Errorf("the owner's shell after the proxy: get exit %d (got the key: %v), stderr %q", res.rc, res.out == token, res.stderr)
		}
	})

	t.Run("another executable claims to be a proxy", func(t *testing.T) {
		// A copy of the client is another inode: it may not register, and
		// its proxy refuses to start the tool.
		out, rc := owner.Run(`cp "$C" "$HOME/po-copy" && "$HOME/po-copy" proxy --upstream anthropic=` + up.URL + ` -- sh -c 'echo @@copy-ran' 2>"$HOME/po-copy.err"`)
		msg := readHome("po-copy.err")
		t.Logf("a copy of the client as proxy: exit %d, stderr %q", rc, msg)
		if rc == 0 || strings.Contains(out, "@@copy-ran") || !strings.Contains(msg, "another executable") {
			t.Errorf("a copy of the client as proxy: exit %d, tool ran %v, stderr %q; want refused registration", rc, strings.Contains(out, "@@copy-ran"), msg)
		}
		// A raw registration from socat.
		frame := `\0\0\0\040\033\0\0\0\017proxy@llm-agent\0\0\0\010register`
		out, rc = owner.Run(`printf '` + frame + `' | socat -t 2 - UNIX-CONNECT:'` + g.Sock + `' | od -An -tu1 | tr -s ' \n' ' '`)
		f := strings.Fields(out)
		t.Logf("socat's registration: exit %d, reply %v", rc, f)
		if len(f) < 5 || f[4] != "28" {
			t.Errorf("socat's registration: reply %v, want an extension failure (28)", f)
		}
		logb, _ := os.ReadFile(guardLog)
		if n := strings.Count(string(logb), "may not register as a proxy: it runs another executable"); n < 2 {
			t.Errorf("guard.log has %d refused registrations, want 2:\n%s", n, logb)
		}
	})
}

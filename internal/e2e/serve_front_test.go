package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/internal/sshtest"
)

// Issue 18 item 2: opencode serve runs shell commands and LLM calls for
// whoever reaches its API. Under proxy --serve FRONT=API only the owner
// reaches it: the owner's laptop through ssh -L to FRONT (the connection
// comes from the owner's sshd session process), while a co-tenant login of
// the same account and another Linux user, trying every listening loopback
// port, create no session and run no shell command.

// sfCurl is the shell function both intruders use: one POST to every
// TCP port the shared account listens on (from /proc/net/tcp) and to the
// front's socket, printing the port, the status and whether the answer is
// an opencode session.
const sfCurl = `sf_try() { # PATH BODY FRONT UID
for p in $(awk -v uid="$4" 'NR>1 && $4=="0A" && $8==uid {split($2,a,":"); print a[2]}' /proc/net/tcp | sort -u); do
	port=$((16#$p))
	body=$(curl -s -m 5 -o - -w '\n@@%{http_code}' -X POST -H 'content-type: application/json' -d "$2" "http://127.0.0.1:$port$1" 2>/dev/null)
	code=${body##*@@}
	case "$body" in *'"id":"ses_'*) s=SESSION;; *) s=none;; esac
	echo "@@try $port $code $s"
done
body=$(curl -s -m 5 -o - -w '\n@@%{http_code}' --unix-socket "$3" -X POST -H 'content-type: application/json' -d "$2" "http://opencode$1" 2>/dev/null)
code=${body##*@@}
case "$body" in *'"id":"ses_'*) s=SESSION;; *) s=none;; esac
echo "@@try front $code $s"; }
`

// sfTries parses sf_try's lines: port -> "code session?".
func sfTries(out string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(strings.TrimPrefix(l, "@@try "))
		if strings.HasPrefix(l, "@@try ") && len(f) == 3 {
			m[f[0]] = f[1] + " " + f[2]
		}
	}
	return m
}

func TestProxyServeFront(t *testing.T) {
	sshtest.RequireRoot(t)
	bin := toolBin(t, "opencode")
	r, a, token := newGrdRigAgent(t, "srvfront", "sk-ant-front")
	up := startFakeUpstream(t, "FRONT-ANSWER-"+randHex(t, 6))
	t.Cleanup(func() { fwdNoSecretInLogs(t, a, token) })

	front := filepath.Join(r.user.Home, ".llm-agent", "opencode.sock")
	api := toolsFreePort(t)
	laptopFront, laptopAPI := toolsFreePort(t), toolsFreePort(t)
	owner := r.loginWith("owner", []string{"-o", "ForwardAgent=" + a.Sock,
		"-L", fmt.Sprintf("%d:%s", laptopFront, front),
		"-L", fmt.Sprintf("%d:127.0.0.1:%d", laptopAPI, api)}, []string{"SSH_AUTH_SOCK=" + r.live})
	t.Logf("owner: shell pid %d, audit session %q", owner.PID, owner.SessionID)

	b := ocServeHome()
	b.WriteString(`export OPENCODE_CONFIG_CONTENT='{"model":"anthropic/claude-fake","small_model":"anthropic/claude-fake","provider":{"anthropic":{"models":{"claude-fake":{"name":"fake"}}}},"autoupdate":false,"share":"disabled"}'
`)
	fmt.Fprintf(b, "nohup \"$C\" proxy --upstream anthropic=%s --serve %s=127.0.0.1:%d -- %s serve --port %d </dev/null >\"$HOME/serve.log\" 2>&1 &\necho \"$!\"\n)",
		up.URL, front, api, shq(bin), api)
	out, rc := owner.Run(b.String())
	pid, _ := strconv.Atoi(strings.TrimSpace(out))
	if rc != 0 || pid <= 0 {
		t.Fatalf("starting the proxy: exit %d, %q, stderr %q", rc, out, owner.Stderr())
	}
	serveLog := filepath.Join(r.user.Home, "serve", "serve.log")
	t.Cleanup(func() {
		syscall.Kill(pid, syscall.SIGTERM)
		if _, ok := grdWaitGone(pid, 5*time.Second); !ok {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		if t.Failed() {
			log, _ := os.ReadFile(serveLog)
			if len(log) > 4000 {
				log = log[len(log)-4000:]
			}
			t.Logf("the proxy's and opencode's log (tail):\n%s", log)
		}
	})

	// The owner's laptop: opencode attach's requests, through ssh -L.
	oc := &ocServer{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", laptopFront), hc: &http.Client{Timeout: toolsTimeout}}
	probe := &http.Client{Timeout: 3 * time.Second}
	lastCode := 0
	if took, ok := waitFor(90*time.Second, func() bool {
		resp, err := probe.Get(oc.base + "/session")
		if err != nil {
			return false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		lastCode = resp.StatusCode
		return resp.StatusCode == 200
	}); !ok {
		t.Fatalf("the front answers no GET /session with 200 through ssh -L within 90 s (last status %d)", lastCode)
	} else {
		t.Logf("opencode serve answers through the front and ssh -L after %v", took.Round(time.Millisecond))
	}
	session := oc.newSession()
	n0 := len(up.requests())
	answer, errMsg, took := oc.prompt(session, "say hi")
	sawKey := up.keyCount(token, n0)
	t.Logf("owner through ssh -L: answered in %v (%v), error %q; the upstream saw the laptop's key %d times",
		took.Round(time.Millisecond), strings.Contains(answer, up.Answer), errMsg, sawKey)
	if !strings.Contains(answer, up.Answer) || sawKey == 0 {
		t.Fatalf("owner: want the upstream's answer with the laptop's key; answer %q, error %q", answer, errMsg)
	}
	marker := filepath.Join(r.user.Home, "shell-ran-")
	shell := func(who string) string {
		return fmt.Sprintf(`{"agent":"build","command":"touch %s%s"}`, marker, who)
	}
	if _, code, err := oc.post("/session/"+session+"/shell", shell("owner")); err != nil || code != 200 {
		t.Errorf("owner: POST /session/%s/shell: %d %v", session, code, err)
	}
	if _, err := os.Stat(marker + "owner"); err != nil {
		t.Errorf("owner: the shell command did not run: %v", err)
	}
	// Straight to opencode's own port (a second ssh -L): no password, 401.
	if resp, err := probe.Post(fmt.Sprintf("http://127.0.0.1:%d/session", laptopAPI), "application/json", strings.NewReader("{}")); err != nil || resp.StatusCode != 401 {
		t.Errorf("opencode's own port without the front: want 401, got %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// A co-tenant: a second login to the same account, no agent.
	co := r.login("co-tenant", "")
	t.Logf("co-tenant: shell pid %d, audit session %q", co.PID, co.SessionID)
	tries := func(who, wantFront string, run func(script string) string) {
		for _, c := range []struct{ path, body string }{
			{"/session", "{}"},
			{"/session/" + session + "/shell", shell(strings.ReplaceAll(who, " ", "-"))},
		} {
			got := sfTries(run(sfCurl + "sf_try " + shq(c.path) + " " + shq(c.body) + " " + shq(front) + " " + strconv.Itoa(r.user.UID)))
			t.Logf("%s: POST %s on every loopback port: %v", who, c.path, got)
			if got[strconv.Itoa(api)] == "" {
				t.Errorf("%s: did not find opencode's port (%d) among %v", who, api, got)
			}
			for port, v := range got {
				if strings.HasSuffix(v, "SESSION") {
					t.Errorf("%s: POST %s on port %s made a session", who, c.path, port)
				}
			}
			if got["front"] != wantFront {
				t.Errorf("%s: the front answered %q, want %q", who, got["front"], wantFront)
			}
			if want := "401 none"; got[strconv.Itoa(api)] != want {
				t.Errorf("%s: opencode's port answered %q, want %q", who, got[strconv.Itoa(api)], want)
			}
		}
		if m, _ := filepath.Glob(marker + strings.ReplaceAll(who, " ", "-")); len(m) > 0 {
			t.Errorf("%s: the shell command ran", who)
		}
	}
	tries("co-tenant", "403 none", func(s string) string { out, _ := co.Run(s); return out })

	// Another Linux user.
	other := sshtest.NewUser(t, "sfo")
	tries("other user", "000 none", func(s string) string { return bashAs(t, other, s) })

	// What the relay adds per request: the same GET, a fresh connection
	// each (the peer check runs on every one), through the front and
	// straight to opencode with its password, both over ssh -L.
	pw := sfPassword(t, pid)
	timeIt := func(url, user, pass string, keep bool) time.Duration {
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: !keep}}
		const n = 40
		start := time.Now()
		for i := 0; i < n; i++ {
			req, _ := http.NewRequest("GET", url, nil)
			if pass != "" {
				req.SetBasicAuth(user, pass)
			}
			resp, err := hc.Do(req)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("timing %s: %v %v", url, resp, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return time.Since(start) / n
	}
	for _, keep := range []bool{false, true} {
		if pw == "" {
			break
		}
		direct := timeIt(fmt.Sprintf("http://127.0.0.1:%d/session", laptopAPI), "opencode", pw, keep)
		via := timeIt(fmt.Sprintf("http://127.0.0.1:%d/session", laptopFront), "", "", keep)
		direct2 := timeIt(fmt.Sprintf("http://127.0.0.1:%d/session", laptopAPI), "opencode", pw, keep)
		t.Logf("GET /session over ssh -L, keep-alive %v: direct %v / %v, through the front %v (ratio %.2f)",
			keep, direct, direct2, via, float64(via)/float64((direct+direct2)/2))
	}
}

// sfPassword reads the password the proxy gave opencode (as root, for the
// timing only): from the environment of the proxy's child.
func sfPassword(t *testing.T, proxyPID int) string {
	var kids []string
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", proxyPID))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		kids = append(kids, strings.Fields(string(b))...)
	}
	for _, c := range kids {
		env, _ := os.ReadFile("/proc/" + c + "/environ")
		for _, kv := range strings.Split(string(env), "\x00") {
			if v, ok := strings.CutPrefix(kv, "OPENCODE_SERVER_PASSWORD="); ok {
				return v
			}
		}
	}
	t.Logf("no OPENCODE_SERVER_PASSWORD in the environment of the proxy's child: no timing")
	return ""
}

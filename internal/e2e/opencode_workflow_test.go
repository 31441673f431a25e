package e2e

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/internal/sshtest"
)

// Issue 18, end to end: README.md's recipe "opencode serve on a shared
// server, attach from the laptop", run as written (its laptop commands
// taken from README.md; only host, home, ports and the proxy's upstream
// are substituted) with opencode 1.18.33 over a real sshd, on an account
// that a co-tenant also logs in to and next to another Linux user.

// wfTimeout is LLM_AGENT_TIMEOUT in the account's profile, as the README
// tells a user to export a shorter one.
const wfTimeout = 5 * time.Second

// wfAtOnce bounds "fails at once": well under wfTimeout, with room for
// opencode's own time per prompt on a loaded machine.
const wfAtOnce = 3 * time.Second

// readmeOpencodeRecipe returns the laptop commands of README.md's opencode
// serve recipe (the sh block under its heading), one per element.
func readmeOpencodeRecipe(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const heading = "## opencode serve on a shared server, attach from the laptop\n"
	i := bytes.Index(data, []byte(heading))
	if i < 0 {
		t.Fatalf("README.md has no heading %q", heading)
	}
	m := regexp.MustCompile("(?s)```sh\n(.*?)```").FindSubmatch(data[i:])
	if m == nil {
		t.Fatal("README.md has no sh block under the opencode serve heading")
	}
	var cmds []string
	for _, l := range strings.Split(strings.ReplaceAll(string(m[1]), "\\\n", " "), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			cmds = append(cmds, l)
		}
	}
	if len(cmds) != 3 || !strings.HasPrefix(cmds[0], `eval "$(llm-agent)"`) || !strings.HasPrefix(cmds[1], "ssh ") ||
		!strings.HasPrefix(cmds[2], "opencode attach ") {
		t.Fatalf("README.md's opencode serve recipe is not eval/add, ssh, opencode attach: %q", cmds)
	}
	return cmds
}

// wfSubst replaces old by new in s, failing when old is not there (the
// README changed under the test).
func wfSubst(t *testing.T, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("the recipe's command %q has no %q to substitute", s, old)
	}
	return strings.ReplaceAll(s, old, new)
}

// wfSSH is the laptop's second command, running.
type wfSSH struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	done chan struct{}
	mu   sync.Mutex
	errb bytes.Buffer
}

func (s *wfSSH) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.errb.Write(p)
}

func (s *wfSSH) stderr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.errb.String()
}

// authRT adds opencode's password (what the front does for the owner).
type authRT struct{ pw string }

func (a authRT) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.SetBasicAuth("opencode", a.pw)
	return http.DefaultTransport.RoundTrip(r)
}

// wfProcs finds the account's processes by command line: the proxy
// serving a front, and guards.
func wfProcs(uid int) (proxies, guards []int) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || uidOf(pid) != uid {
			continue
		}
		cl, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		args := strings.Split(string(cl), "\x00")
		if len(args) < 2 || filepath.Base(args[0]) != "llm-agent-client" {
			continue
		}
		switch {
		case args[1] == "proxy" && bytes.Contains(cl, []byte("--serve")):
			proxies = append(proxies, pid)
		case args[1] == "guard":
			guards = append(guards, pid)
		}
	}
	return proxies, guards
}

// wfChildren lists a process's children.
func wfChildren(pid int) []int {
	var kids []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(b)) {
			n, _ := strconv.Atoi(s)
			kids = append(kids, n)
		}
	}
	return kids
}

// wfEnvOf reads one variable of a process's environment, as root.
func wfEnvOf(pid int, name string) string {
	env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	for _, kv := range strings.Split(string(env), "\x00") {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}

// wfSnoop is what an intruder reads: every /proc/*/environ and cmdline it
// can open (base64, one line each), and whether /proc/PID/mem of the
// given pids opens.
const wfSnoop = `for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do
	d=$(base64 -w0 <"$f" 2>/dev/null) || continue
	printf '@@f %s %s\n' "$f" "$d"
done
for p in $WF_PIDS; do
	if { : <"/proc/$p/mem"; } 2>/dev/null; then echo "@@mem $p readable"; else echo "@@mem $p refused"; fi
done`

// wfCheckSnoop checks an intruder's snoop: the key in no file it read,
// every /proc/PID/mem refused.
func wfCheckSnoop(t *testing.T, who, out, token string) {
	t.Helper()
	var files, password, mems int
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 2 && f[0] == "@@f":
			files++
			if len(f) < 3 {
				continue
			}
			d, err := base64.StdEncoding.DecodeString(f[2])
			if err != nil {
				t.Errorf("%s: bad base64 for %s", who, f[1])
			}
			if bytes.Contains(d, []byte(token)) {
				t.Errorf("%s: the key is in %s", who, f[1])
			}
			if bytes.Contains(d, []byte("OPENCODE_SERVER_PASSWORD=")) {
				password++
			}
		case len(f) == 3 && f[0] == "@@mem":
			mems++
			if f[2] != "refused" {
				t.Errorf("%s: /proc/%s/mem is readable", who, f[1])
			}
		}
	}
	t.Logf("%s: read %d /proc/*/environ and cmdline files (%d hold opencode's password): key not found; /proc/PID/mem of the proxy and the guard: %d of %d refused",
		who, files, password, mems, 2)
	if files == 0 || mems != 2 {
		t.Errorf("%s: the snoop read %d files and tried %d mem files", who, files, mems)
	}
}

func TestOpencodeServeWorkflow(t *testing.T) {
	sshtest.RequireRoot(t)
	bin := toolBin(t, "opencode")
	recipe := readmeOpencodeRecipe(t)
	snippet := readmeGuardSnippet(t)
	r := newGrdRig(t, "ocworkflow")
	home, uid := r.user.Home, r.user.UID
	token := fwdToken(t, "sk-ant-wf")
	up := startFakeUpstream(t, "WF-ANSWER-"+randHex(t, 6))
	t.Cleanup(func() { scanFiles(t, r.user, token) })

	// One-time setup on gpu1: the profile (PATH, the shorter time-out the
	// README suggests, the test's quiet switches, then the guard snippet
	// exactly), and a provider config with the test model.
	var rc strings.Builder
	fmt.Fprintf(&rc, "export PATH=%s:%s:$PATH\nexport LLM_AGENT_TIMEOUT=%v\n", bins.Dir, filepath.Dir(bin), wfTimeout)
	for _, kv := range toolsQuietEnv {
		fmt.Fprintf(&rc, "export %s\n", kv)
	}
	rc.WriteString(snippet)
	cfgDir := filepath.Join(home, ".config", "opencode")
	files := map[string]string{
		".bashrc": rc.String(),
		".config/opencode/opencode.json": `{"model":"anthropic/claude-fake","small_model":"anthropic/claude-fake",` +
			`"provider":{"anthropic":{"models":{"claude-fake":{"name":"fake"}}}},"autoupdate":false,"share":"disabled"}`,
		// No npm install of opencode's plugin package at start.
		".config/opencode/package.json":      `{"dependencies":{"@opencode-ai/plugin":"*"}}`,
		".config/opencode/package-lock.json": `{"packages":{"":{"dependencies":{"@opencode-ai/plugin":"*"}}}}`,
	}
	if err := os.MkdirAll(filepath.Join(cfgDir, "node_modules"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(home, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	filepath.Walk(filepath.Join(home, ".config"), func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, uid, r.user.GID) })
	os.Lchown(filepath.Join(home, ".bashrc"), uid, r.user.GID)

	// The laptop: command 1 as written.
	tmp, err := os.MkdirTemp("", "wf")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	laptopEnv := append(cleanEnv(), "TMPDIR="+tmp, "PATH="+bins.Dir+":"+os.Getenv("PATH"))
	res := Run(t, laptopEnv, token+"\n", "/bin/sh", "-c", recipe[0]+` >/dev/null || exit 91
printf '@@pid=%s\n@@llm=%s\n@@ssh=%s\n' "$LLM_AGENT_PID" "$LLM_AUTH_SOCK" "${SSH_AUTH_SOCK-unset}"`)
	vals := map[string]string{}
	for _, l := range strings.Split(res.Stdout, "\n") {
		if k, v, ok := strings.Cut(strings.TrimPrefix(l, "@@"), "="); ok && strings.HasPrefix(l, "@@") {
			vals[k] = v
		}
	}
	if pid, err := strconv.Atoi(vals["pid"]); err == nil {
		stopDaemonAtCleanup(t, pid)
	}
	if res.Code != 0 || vals["llm"] == "" {
		t.Fatalf("the recipe's first command: exit %d, stderr %q", res.Code, res.Stderr)
	}
	t.Logf("laptop: %s -> LLM_AUTH_SOCK=%s, SSH_AUTH_SOCK=%s", recipe[0], vals["llm"], vals["ssh"])
	laptopEnv = append(laptopEnv, "LLM_AUTH_SOCK="+vals["llm"], "SSH_AUTH_SOCK="+vals["ssh"])

	// Command 2: the host gpu1 is the test sshd (an ssh_config of its own),
	// /home/you the user's home, the ports free ones, and the proxy's
	// anthropic upstream the fake one.
	cfgData, err := os.ReadFile(r.srv.ClientConfig(r.user))
	if err != nil {
		t.Fatal(err)
	}
	sshCfg := filepath.Join(tmp, "ssh_config")
	if err := os.WriteFile(sshCfg, bytes.Replace(cfgData, []byte("Host "+r.srv.Name+"\n"), []byte("Host gpu1\n"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	laptopPort, apiPort := toolsFreePort(t), toolsFreePort(t)
	line := recipe[1]
	line = wfSubst(t, line, "/home/you", home)
	line = wfSubst(t, line, "-L 4096:", fmt.Sprintf("-L %d:", laptopPort))
	line = wfSubst(t, line, "4097", strconv.Itoa(apiPort))
	line = wfSubst(t, line, " gpu1 ", " -F "+shq(sshCfg)+" gpu1 ")
	line = wfSubst(t, line, "llm-agent-client proxy ", "llm-agent-client proxy --upstream anthropic="+up.URL+" ")
	attach := wfSubst(t, recipe[2], "127.0.0.1:4096", fmt.Sprintf("127.0.0.1:%d", laptopPort))
	t.Logf("laptop: running %s", line)
	connect := func(name string) *wfSSH {
		t.Helper()
		s := &wfSSH{cmd: exec.Command("/bin/sh", "-c", "exec "+line), done: make(chan struct{})}
		s.cmd.Env = laptopEnv
		s.cmd.Stderr = s
		if s.in, err = s.cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		if err := s.cmd.Start(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		go func() { s.cmd.Wait(); close(s.done) }()
		t.Cleanup(func() { syscall.Kill(s.cmd.Process.Pid, syscall.SIGCONT); s.cmd.Process.Kill(); <-s.done })
		return s
	}
	exited := func(s *wfSSH, limit time.Duration) (time.Time, bool) {
		select {
		case <-s.done:
			return time.Now(), true
		case <-time.After(limit):
			return time.Time{}, false
		}
	}

	// Command 3, opencode attach, is driven through opencode's HTTP API
	// on the laptop's forwarded port, as attach does.
	base := "http://" + strings.TrimPrefix(strings.Fields(attach)[2], "http://")
	oc := &ocServer{t: t, base: base, hc: &http.Client{Timeout: toolsTimeout}}
	probe := &http.Client{Timeout: 3 * time.Second}
	ready := func(what string) {
		t.Helper()
		last := ""
		took, ok := waitFor(120*time.Second, func() bool {
			resp, err := probe.Get(oc.base + "/session")
			if err != nil {
				last = err.Error()
				return false
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			last = resp.Status
			return resp.StatusCode == 200
		})
		if !ok {
			log, _ := os.ReadFile(filepath.Join(home, "opencode-serve.log"))
			if bytes.Contains(log, []byte(token)) {
				log = []byte("(holds the key; not shown)")
			}
			t.Fatalf("%s: no GET /session answered through ssh -L within 120 s (last: %s)\nopencode-serve.log:\n%s\nsshd:\n%s", what, last, lastBytes(log, 3000), r.srv.LogTail(10))
		}
		t.Logf("%s: opencode answers through ssh -L and the front %v after the ssh started", what, took.Round(time.Millisecond))
	}
	owner := connect("owner")
	ready("first ssh")

	proxies, guards := wfProcs(uid)
	if len(proxies) != 1 || len(guards) != 1 {
		t.Fatalf("want one proxy and one guard of the account, got proxies %v, guards %v", proxies, guards)
	}
	proxyPID, guardPID := proxies[0], guards[0]
	t.Cleanup(func() {
		syscall.Kill(proxyPID, syscall.SIGTERM)
		if _, ok := grdWaitGone(proxyPID, 5*time.Second); !ok {
			syscall.Kill(proxyPID, syscall.SIGKILL)
		}
	})
	kids := wfChildren(proxyPID)
	if len(kids) != 1 {
		t.Fatalf("the proxy (pid %d) has children %v, want opencode", proxyPID, kids)
	}
	ocPID := kids[0]
	pw := wfEnvOf(ocPID, "OPENCODE_SERVER_PASSWORD")
	if pw == "" {
		t.Fatalf("opencode (pid %d) has no OPENCODE_SERVER_PASSWORD", ocPID)
	}
	stable, _ := filepath.Glob(filepath.Join(home, ".llm-agent", "*", "agent.sock"))
	run, _ := filepath.Glob(fmt.Sprintf("/run/user/%d/llm-agent/*/agent.sock", uid))
	stable = append(stable, run...)
	if len(stable) != 1 {
		t.Fatalf("the guard's stable path: found %v", stable)
	}
	t.Logf("gpu1: proxy pid %d, opencode pid %d, guard pid %d on %s", proxyPID, ocPID, guardPID, stable[0])

	// a. Connected: the answer arrives with the laptop's key.
	session := oc.newSession()
	sawKey := func(since int) int { return up.keyCount(token, since) }
	n0 := len(up.requests())
	answer, errMsg, took := oc.prompt(session, "say hi")
	t.Logf("a. connected: prompt answered in %v (%v), error %q; the upstream saw the laptop's key %d times",
		took.Round(time.Millisecond), strings.Contains(answer, up.Answer), errMsg, sawKey(n0))
	if !strings.Contains(answer, up.Answer) || sawKey(n0) == 0 {
		t.Fatalf("connected: want the upstream's answer with the laptop's key; answer %q, error %q", answer, errMsg)
	}
	if scanned, hits, _ := procScan(uid, token, ""); len(hits) > 0 {
		t.Errorf("as root: the key is in /proc/%s (of %d processes)", strings.Join(hits, ", /proc/"), scanned)
	}

	// b. A co-tenant (a second login to the account) and another user.
	co := r.login("co-tenant", "")
	other := sshtest.NewUser(t, "wfo")
	asOther := func(script string) string { return bashAs(t, other, script) }
	pids := fmt.Sprintf("WF_PIDS='%d %d'\n", proxyPID, guardPID)
	coOut, _ := co.Run(pids + wfSnoop)
	wfCheckSnoop(t, "co-tenant", coOut, token)
	wfCheckSnoop(t, "other user", asOther(pids+wfSnoop), token)

	for _, s := range co.scanSockets(token) {
		t.Logf("co-tenant: get on socket %s: exit %d, %q", s.path, s.rc, s.stderr)
		if s.token || s.rc == 0 {
			t.Errorf("co-tenant: get on %s: exit %d, key %v", s.path, s.rc, s.token)
		}
	}
	if g := co.try("LLM_AUTH_SOCK=" + shq(stable[0])); g.rc == 0 || strings.Contains(g.out, token) {
		t.Errorf("co-tenant: get on the guard's stable path: exit %d", g.rc)
	} else {
		t.Logf("co-tenant: get on the guard's stable path: exit %d, %q", g.rc, g.stderr)
	}
	front := filepath.Join(home, ".llm-agent", "opencode.sock")
	for _, who := range []struct {
		name, wantFront string
		run             func(string) string
	}{
		{"co-tenant", "403 none", func(s string) string { out, _ := co.Run(s); return out }},
		{"other user", "000 none", asOther},
	} {
		got := sfTries(who.run(sfCurl + "sf_try /session '{}' " + shq(front) + " " + strconv.Itoa(uid)))
		t.Logf("b. %s: POST /session on every port of the account and the front: %v", who.name, got)
		for port, v := range got {
			if strings.HasSuffix(v, "SESSION") {
				t.Errorf("%s: port %s made a session", who.name, port)
			}
		}
		if got["front"] != who.wantFront || got[strconv.Itoa(apiPort)] != "401 none" {
			t.Errorf("%s: front %q (want %q), opencode's port %q (want 401)", who.name, got["front"], who.wantFront, got[strconv.Itoa(apiPort)])
		}
	}

	// The co-tenant reads opencode's password and the dummy key from its
	// environment: opencode's port lets them in (the README says so), its
	// shell runs get under the proxy, which the guard refuses; the proxy
	// refuses the dummy key from the co-tenant's curl.
	shellScript := filepath.Join(home, "wf-shell.sh")
	os.WriteFile(shellScript, []byte(fmt.Sprintf(`out=$(%[1]s get anthropic 2>%[2]s/wf-shell1.err); echo "$? ${#out}" >%[2]s/wf-shell1.rc
out=$(LLM_AUTH_SOCK=%[3]s %[1]s get anthropic 2>%[2]s/wf-shell2.err); echo "$? ${#out}" >%[2]s/wf-shell2.rc
`, shq(bins.Client), home, shq(stable[0]))), 0o644)
	coScript := fmt.Sprintf(`e() { tr '\0' '\n' </proc/%[1]d/environ | sed -n "s/^$1=//p"; }
pw=$(e OPENCODE_SERVER_PASSWORD); key=$(e ANTHROPIC_API_KEY); base=$(e ANTHROPIC_BASE_URL)
echo "@@pw ${#pw}"
sid=$(curl -s -m 10 -u "opencode:$pw" -X POST -H 'content-type: application/json' -d '{}' http://127.0.0.1:%[2]d/session | grep -o '"id":"ses_[^"]*"' | head -1 | cut -d'"' -f4)
echo "@@sid $sid"
code=$(curl -s -m 60 -o "$HOME/wf-shell.body" -w '%%{http_code}' -u "opencode:$pw" -X POST -H 'content-type: application/json' \
	-d '{"agent":"build","command":"sh %[3]s"}' "http://127.0.0.1:%[2]d/session/$sid/shell")
echo "@@shell $code"
code=$(curl -s -m 20 -o "$HOME/wf-dummy.body" -w '%%{http_code}' -H "x-api-key: $key" -H 'content-type: application/json' \
	-d '{"model":"claude-fake","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}' "$base/v1/messages")
echo "@@dummy $code $(head -c 300 "$HOME/wf-dummy.body")"`, ocPID, apiPort, shellScript)
	n1 := len(up.requests())
	out, _ := co.Run(coScript)
	read := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(home, name))
		return strings.TrimSpace(string(b))
	}
	t.Logf("b. co-tenant with opencode's password and dummy key from its environ: %s", strings.ReplaceAll(out, "\n", "; "))
	if !strings.Contains(out, "@@sid ses_") || !strings.Contains(out, "@@shell 200") {
		t.Errorf("co-tenant: opencode's port with the password read from its environment: want a session and the shell run (as the README says): %q", out)
	}
	for _, n := range []string{"1", "2"} {
		rcs, msg := read("wf-shell"+n+".rc"), read("wf-shell"+n+".err")
		t.Logf("b. co-tenant through opencode's shell, get #%s: exit and length %q, %q", n, rcs, msg)
		if f := strings.Fields(rcs); len(f) != 2 || f[0] == "0" || f[1] != "0" {
			t.Errorf("co-tenant through opencode's shell, get #%s: %q; want a failure and no output", n, rcs)
		}
	}
	if !strings.Contains(read("wf-shell2.err"), "under llm-agent-client proxy") {
		t.Errorf("get on the guard's stable path from opencode's shell: %q, want refused as under the proxy", read("wf-shell2.err"))
	}
	if strings.Contains(read("wf-shell.body"), token) {
		t.Errorf("the shell endpoint's answer holds the key")
	}
	if !strings.Contains(out, "@@dummy 403 ") {
		t.Errorf("co-tenant with the dummy key on the proxy's route: want 403: %q", out)
	}
	if sawKey(n1) > 0 {
		t.Errorf("the upstream saw the key %d times during the co-tenant's attempts", sawKey(n1))
	}

	// The requests of the server after the laptop's -L is gone: straight
	// to opencode's port with its password, as root.
	direct := &ocServer{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", apiPort), hc: &http.Client{Timeout: toolsTimeout, Transport: authRT{pw}}}
	failed := func(what, answer, errMsg string) {
		t.Helper()
		if strings.Contains(answer, up.Answer) || !strings.Contains(errMsg, "not connected") && !strings.Contains(errMsg, "did not answer") {
			t.Errorf("%s: want the proxy's error naming the cause and no answer; answer %q, error %q", what, answer, errMsg)
		}
	}

	// c. Clean disconnect: Ctrl-C ends the laptop's ssh (which closes
	// the connection as it exits; Ctrl-D would wait for attach's open
	// forwarded connections).
	owner.cmd.Process.Signal(syscall.SIGINT)
	end, ok := exited(owner, 15*time.Second)
	if !ok {
		t.Fatalf("the laptop's ssh did not exit within 15 s of Ctrl-C; stderr %q", owner.stderr())
	}
	up.markDisconnected()
	n2 := len(up.requests())
	answer, errMsg, took = direct.prompt(session, "say hi while away")
	t.Logf("c. clean exit: the prompt sent as the ssh client exited failed %v after the exit (took %v): %q",
		time.Since(end).Round(time.Millisecond), took.Round(time.Millisecond), errMsg)
	failed("clean exit", answer, errMsg)
	// The bound is 1 s, measured and logged above (0.7-0.85 s here,
	// of which about 0.65 s is opencode's own work per prompt: the proxy
	// answers its 503 at once). The assertion leaves room for a loaded CI
	// machine and still fails on a request that waits for a time-out.
	if d := time.Since(end); d > wfAtOnce {
		t.Errorf("clean exit: the prompt's error came %v after the ssh client exited, want within %v", d, wfAtOnce)
	}
	if at, ok := grdWaitGone(guardPID, 5*time.Second); ok {
		t.Logf("c. the guard exited %v after the ssh client", at.Sub(end).Round(time.Millisecond))
	} else {
		t.Errorf("the guard (pid %d) still runs 5 s after the owner left", guardPID)
	}
	if n := len(up.requests()) - n2; n > 0 {
		t.Errorf("clean exit: the upstream got %d requests", n)
	}

	// d. Reconnect with the same command: the same server answers.
	owner2 := connect("owner again")
	ready("second ssh")
	proxies, guards = wfProcs(uid)
	if len(proxies) != 1 || proxies[0] != proxyPID || processGone(ocPID) || !reflectEqual(wfChildren(proxyPID), []int{ocPID}) {
		t.Errorf("after the reconnect: proxies %v (want [%d]), its children %v (want [%d])", proxies, proxyPID, wfChildren(proxyPID), ocPID)
	}
	if len(guards) != 1 {
		t.Fatalf("after the reconnect: guards %v", guards)
	}
	n3 := len(up.requests())
	answer, errMsg, took = oc.prompt(session, "say hi again")
	t.Logf("d. reconnected: the same opencode (pid %d) answered in %v (%v), error %q; the key went upstream %d times",
		ocPID, took.Round(time.Millisecond), strings.Contains(answer, up.Answer), errMsg, sawKey(n3))
	if !strings.Contains(answer, up.Answer) || sawKey(n3) == 0 {
		t.Errorf("reconnected: want the upstream's answer with the laptop's key; answer %q, error %q", answer, errMsg)
	}
	t.Logf("d. opencode-serve.log's last line: %q", lastLine(read("opencode-serve.log")))

	// c. Dead link: the laptop's ssh stops (lid closed).
	resume := faultStop(t, "the laptop's ssh", owner2.cmd.Process.Pid)
	stopped := time.Now()
	n4 := len(up.requests())
	var times []string
	for i := 0; i < 4; i++ {
		answer, errMsg, took = direct.prompt(session, fmt.Sprintf("say hi, dead link %d", i))
		times = append(times, took.Round(time.Millisecond).String())
		t.Logf("c. dead link: prompt %d failed after %v: %q", i+1, took.Round(time.Millisecond), errMsg)
		failed(fmt.Sprintf("dead link, prompt %d", i+1), answer, errMsg)
		limit := wfAtOnce // see the clean exit's check
		if i == 0 {
			limit = wfTimeout + 3*time.Second
		}
		if took > limit {
			t.Errorf("dead link: prompt %d took %v, want <= %v", i+1, took, limit)
		}
	}
	t.Logf("c. dead link (LLM_AGENT_TIMEOUT=%v): prompts failed in %s, %v after SIGSTOP in all", wfTimeout, strings.Join(times, ", "), time.Since(stopped).Round(time.Millisecond))
	if n := len(up.requests()) - n4; n > 0 {
		t.Errorf("dead link: the upstream got %d requests", n)
	}
	resume()
	resumed := time.Now()
	var again string
	if took, ok := waitFor(30*time.Second, func() bool {
		again, _, _ = oc.prompt(session, "say hi, link back")
		return strings.Contains(again, up.Answer)
	}); ok {
		t.Logf("c. link back: the same opencode answered %v after SIGCONT", took.Round(time.Millisecond))
	} else {
		t.Errorf("no answer within 30 s of SIGCONT (%v)", time.Since(resumed))
	}
	owner2.cmd.Process.Signal(syscall.SIGINT)
	if _, ok := exited(owner2, 15*time.Second); !ok {
		t.Errorf("the laptop's second ssh did not exit after Ctrl-C")
	}
	if scanned, hits, _ := procScan(uid, token, ""); len(hits) > 0 {
		t.Errorf("as root at the end: the key is in /proc/%s (of %d processes)", strings.Join(hits, ", /proc/"), scanned)
	}
}

func reflectEqual(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func lastLine(s string) string {
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func lastBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/llm-agent/llm-agent/internal/sshtest"
)

// The TestForward tests run the real laptop-to-server path: llm-agent (as
// the test process's user, root), the real ssh client forwarding its
// socket, a real sshd on 127.0.0.1 and llm-agent-client run on the server
// as a freshly created user.

const fwdNotPermitted = "is not permitted on LLM_AUTH_SOCK (use-only)"

// TestForwardAgent: over ForwardAgent the server can get, list and ask for
// status, but every management request is refused and leaves the laptop's
// agent as it was; --local-only credentials stay invisible.
func TestForwardAgent(t *testing.T) {
	t.Parallel()
	r := newFwdRig(t, AgentOptions{Debug: true})
	a := r.agent
	srv := sshtest.Start(t, sshtest.Options{Name: "fwdhost"})

	token := fwdToken(t, "sk-ant-fwd")
	local := fwdToken(t, "sk-local-fwd")
	if res := a.Client(t, token, "add", "anthropic"); res.Code != 0 {
		t.Fatalf("add on the laptop: %+v", res)
	}
	if res := a.Client(t, local, "add", "--local-only", "laptoponly"); res.Code != 0 {
		t.Fatalf("add --local-only on the laptop: %+v", res)
	}
	// An SSH key too, to see that ssh-add -D from the server removes nothing.
	keyDir := t.TempDir()
	key := filepath.Join(keyDir, "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fwd-laptop-key", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	if res := Run(t, a.AdminEnv(), "", "ssh-add", key); res.Code != 0 {
		t.Fatalf("ssh-add on the laptop: %+v", res)
	}
	before := a.Client(t, "", "list", "--json")
	if before.Code != 0 {
		t.Fatalf("list on the laptop: %+v", before)
	}

	for _, mode := range []fwdMode{fwdPrimary, fwdAsSSHAgent} {
		t.Run(mode.String(), func(t *testing.T) {
			// LLM_AUTH_SOCK is not sent by ssh; the client must find the
			// agent through the SSH_AUTH_SOCK that sshd set.
			res := r.ssh(srv, mode, "", `[ -z "$LLM_AUTH_SOCK" ] && [ -S "$SSH_AUTH_SOCK" ] || { echo "LLM_AUTH_SOCK=$LLM_AUTH_SOCK SSH_AUTH_SOCK=$SSH_AUTH_SOCK" >&2; exit 99; }; "$C" get anthropic`)
			if res.Code != 0 {
				t.Fatalf("get on the server: exit %d, stderr %q\n%s", res.Code, res.Stderr, srv.LogTail(20))
			}
			fwdSameSecret(t, "get on the server", res.Stdout, token)

			res = r.ssh(srv, mode, "", `"$C" list`)
			if res.Code != 0 || !strings.Contains(res.Stdout, "anthropic") {
				t.Errorf("list on the server: %+v", res)
			}
			if strings.Contains(res.Stdout, "laptoponly") {
				t.Errorf("list on the server shows the --local-only credential:\n%s", res.Stdout)
			}
			res = r.ssh(srv, mode, "", `"$C" status`)
			if res.Code != 0 || !strings.Contains(res.Stdout, "use-only: yes") {
				t.Errorf("status on the server: %+v", res)
			}

			res = r.ssh(srv, mode, "", `"$C" get laptoponly`)
			if res.Code != 1 || strings.Contains(res.Stdout, local) {
				t.Errorf("get of the --local-only credential on the server: exit %d (want 1), stderr %q, credential printed: %v",
					res.Code, res.Stderr, strings.Contains(res.Stdout, local))
			}

			for _, tc := range []struct {
				name, stdin, script, msg string
			}{
				{"add", "sk-from-the-server\n", `"$C" add evil`, fwdNotPermitted},
				{"remove --all", "", `"$C" remove --all`, fwdNotPermitted},
				{"remove anthropic", "", `"$C" remove anthropic`, fwdNotPermitted},
				// Lock and unlock are plain SSH agent messages: the agent
				// answers SSH_AGENT_FAILURE (and logs why); the client then
				// asks status and says that LLM_AUTH_SOCK is use-only.
				{"lock", "hunter2\n", `"$C" lock`, fwdNotPermitted},
				{"unlock", "hunter2\n", `"$C" unlock`, fwdNotPermitted},
			} {
				res := r.ssh(srv, mode, tc.stdin, tc.script)
				fwdRefused(t, tc.name+" on the server", res, tc.msg)
			}
			res = r.ssh(srv, mode, "", `ssh-add -D`)
			if res.Code == 0 {
				t.Errorf("ssh-add -D on the server succeeded: %+v", res)
			} else {
				t.Logf("ssh-add -D on the server: exit %d, %q", res.Code, strings.TrimSpace(res.Stderr))
			}
		})
	}

	// The laptop's agent is as it was.
	after := a.Client(t, "", "list", "--json")
	if after.Code != 0 || after.Stdout != before.Stdout {
		t.Errorf("laptop list changed:\nbefore %s\nafter %+v", before.Stdout, after)
	}
	res := a.Client(t, "", "get", "anthropic")
	if res.Code != 0 {
		t.Errorf("get on the laptop afterwards: exit %d, stderr %q", res.Code, res.Stderr)
	}
	fwdSameSecret(t, "get on the laptop afterwards", res.Stdout, token)
	res = a.Client(t, "", "get", "laptoponly")
	if res.Code != 0 {
		t.Errorf("get of the --local-only credential on the laptop: exit %d, %q", res.Code, res.Stderr)
	}
	fwdSameSecret(t, "get of the --local-only credential on the laptop", res.Stdout, local)
	res = a.Client(t, "", "status")
	if res.Code != 0 || !strings.Contains(res.Stdout, "locked: no") || !strings.Contains(res.Stdout, "use-only: no") {
		t.Errorf("status on the laptop afterwards: %+v", res)
	}
	res = Run(t, a.Env(), "", "ssh-add", "-l")
	if res.Code != 0 || !strings.Contains(res.Stdout, "fwd-laptop-key") {
		t.Errorf("ssh-add -l on the laptop afterwards: %+v", res)
	}

	// This agent has no -H file naming the host: the audit log names the
	// verified host key by its fingerprint.
	hops := []string{ssh.FingerprintSHA256(srv.HostKey)}
	fwdCheckAudit(t, a, []fwdWant{
		{op: "get", provider: "anthropic", decision: "allow", hops: hops},
		{op: "get", provider: "laptoponly", decision: "deny", hops: hops},
		{op: "add", decision: "deny", hops: hops},
		{op: "remove-all", decision: "deny", hops: hops},
		{op: "remove", provider: "anthropic", decision: "deny", hops: hops},
		{op: "lock", decision: "deny", hops: hops},
		{op: "unlock", decision: "deny", hops: hops},
		{op: "ssh-key-op-19", decision: "deny", hops: hops}, // SSH2_AGENTC_REMOVE_ALL_IDENTITIES
	})
	fwdNoSecretInLogs(t, a, token, local)
}

// TestForwardRemoteSocket: a plain ssh -R of the socket works too; the
// socket file it leaves on the server fails fast once the session is gone.
func TestForwardRemoteSocket(t *testing.T) {
	t.Parallel()
	r := newFwdRig(t, AgentOptions{Debug: true})
	a := r.agent
	srv := sshtest.Start(t, sshtest.Options{Name: "fwdremote"})
	token := fwdToken(t, "sk-ant-fwdr")
	if res := a.Client(t, token, "add", "anthropic"); res.Code != 0 {
		t.Fatalf("add on the laptop: %+v", res)
	}

	remote := "/tmp/llm-" + randHex(t, 8) + ".sock"
	// OpenSSH does not unlink the forwarded socket; the file belongs to
	// the test user, so root removes it.
	t.Cleanup(func() { os.Remove(remote) })

	res := r.ssh(srv, fwdNone, "", `LLM_AUTH_SOCK=`+remote+` "$C" get anthropic`,
		"-o", "ExitOnForwardFailure=yes", "-R", remote+":"+a.Sock)
	if res.Code != 0 {
		t.Fatalf("get through -R: exit %d, stderr %q\n%s", res.Code, res.Stderr, srv.LogTail(20))
	}
	fwdSameSecret(t, "get through -R", res.Stdout, token)

	if fi, err := os.Lstat(remote); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("the forwarded socket %s did not stay behind (%v); this test relies on OpenSSH leaving it", remote, err)
	}
	// Time it on the server, so ssh's own set-up does not count.
	res = r.ssh(srv, fwdNone, "", `s=$(date +%s%N); LLM_AUTH_SOCK=`+remote+` "$C" get anthropic >/dev/null; rc=$?; e=$(date +%s%N); echo "$rc $((e - s))"`)
	f := strings.Fields(res.Stdout)
	if res.Code != 0 || len(f) != 2 {
		t.Fatalf("stale socket probe: %+v", res)
	}
	ns, _ := strconv.ParseInt(f[1], 10, 64)
	took := time.Duration(ns)
	msg := strings.TrimRight(res.Stderr, "\n")
	t.Logf("get on the stale socket: exit %s after %v: %s", f[0], took, msg)
	if f[0] != "2" {
		t.Errorf("get on the stale socket: exit %s, want 2", f[0])
	}
	if took >= 2*time.Second {
		t.Errorf("get on the stale socket took %v, want < 2s", took)
	}
	if msg == "" || strings.Contains(msg, "\n") {
		t.Errorf("get on the stale socket: want one line on stderr, got %q", res.Stderr)
	}

	fwdCheckAudit(t, a, []fwdWant{{op: "get", provider: "anthropic", decision: "allow"}})
	fwdNoSecretInLogs(t, a, token)
}

// TestForwardDisconnect: when the owner's ssh goes away, the forwarded
// socket goes with it, a poller that outlives the session starts failing
// within a second, and nothing on the server's disk holds the credential.
// Not parallel: it measures times.
func TestForwardDisconnect(t *testing.T) {
	r := newFwdRig(t, AgentOptions{Debug: true})
	a := r.agent
	u := r.user
	srv := sshtest.Start(t, sshtest.Options{Name: "fwddisc"})
	token := fwdToken(t, "sk-ant-fwdd")
	if res := a.Client(t, token, "add", "anthropic"); res.Code != 0 {
		t.Fatalf("add on the laptop: %+v", res)
	}
	pollLog := filepath.Join(u.Home, "poll.log")

	// The owner's session: it reports its SSH_AUTH_SOCK, starts a poller
	// in its own session (setsid, nohup) so that it survives the
	// disconnect with SSH_AUTH_SOCK in its environment, and then waits.
	owner := r.cmd(srv, fwdPrimary, nil, `echo "sock=$SSH_AUTH_SOCK"
setsid nohup sh -c 'while :; do "$0" get anthropic >/dev/null 2>&1; echo $? $(date +%s.%N) >> "$HOME/poll.log"; sleep 0.1; done' "$C" </dev/null >/dev/null 2>&1 &
echo "poller=$!"
exec cat >/dev/null`)
	ownerIn, err := owner.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer ownerIn.Close()
	ownerOut, err := owner.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var ownerErr strings.Builder
	owner.Stderr = &ownerErr
	if err := owner.Start(); err != nil {
		t.Fatal(err)
	}
	ownerDone := make(chan struct{})
	var sock string
	poller := 0
	sc := bufio.NewScanner(ownerOut)
	for poller == 0 && sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case "sock":
			sock = v
		case "poller":
			poller, _ = strconv.Atoi(v)
		}
	}
	go func() {
		for sc.Scan() {
		}
		owner.Wait()
		close(ownerDone)
	}()
	if sock == "" || poller <= 0 {
		owner.Process.Kill()
		<-ownerDone
		t.Fatalf("owner session: sock %q poller %d; stderr %q\n%s", sock, poller, ownerErr.String(), srv.LogTail(20))
	}
	// The poller is a session leader: kill its group (it and its get or
	// sleep) by id when done.
	killPoller := func() { syscall.Kill(-poller, syscall.SIGKILL) }
	defer killPoller()
	t.Logf("forwarded socket on the server: %s; poller pid %d", sock, poller)

	// Wait until the poller has got the credential a few times.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if fwdPollOKs(pollLog) >= 3 {
			break
		}
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(pollLog)
			t.Fatalf("poller did not get the credential 3 times in 10 s; log:\n%s", data)
		}
	}

	// A second session, without forwarding, keeps starting new gets on
	// the old socket path (logging in again after the disconnect would
	// measure sshd, not the socket), until one fails.
	probe := r.cmd(srv, fwdNone, nil, `echo ready
i=0
while [ $i -lt 3000 ]; do
	s=$(date +%s.%N)
	SSH_AUTH_SOCK='`+sock+`' "$C" get anthropic >/dev/null 2>"$HOME/probe.err"; rc=$?
	echo "$rc $s $(date +%s.%N)"
	[ $rc -ne 0 ] && break
	i=$((i + 1)); sleep 0.02
done
cat "$HOME/probe.err" >&2`)
	probeOut, err := probe.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var probeErr strings.Builder
	probe.Stderr = &probeErr
	if err := probe.Start(); err != nil {
		t.Fatal(err)
	}
	probeLines := make(chan string, 4096)
	go func() {
		psc := bufio.NewScanner(probeOut)
		for psc.Scan() {
			probeLines <- psc.Text()
		}
		close(probeLines)
	}()
	if l, ok := <-probeLines; !ok || l != "ready" {
		t.Fatalf("probe session: %q, stderr %q", l, probeErr.String())
	}
	time.Sleep(300 * time.Millisecond) // a few gets before the disconnect

	// Disconnect: the owner's ssh client ends. Watch the socket file.
	vanished := make(chan time.Time, 1)
	go func() {
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
			if _, err := os.Lstat(sock); os.IsNotExist(err) {
				vanished <- time.Now()
				return
			}
		}
		close(vanished)
	}()
	disconnect := time.Now()
	if err := owner.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM the owner's ssh: %v", err)
	}
	select {
	case <-ownerDone:
	case <-time.After(10 * time.Second):
		owner.Process.Kill()
		<-ownerDone
		t.Errorf("the owner's ssh did not exit within 10 s of SIGTERM")
	}
	exited := time.Now()
	var probeAll []string
	for l := range probeLines {
		probeAll = append(probeAll, l)
	}
	probe.Wait()
	t.Logf("owner's ssh exited %v after SIGTERM", exited.Sub(disconnect))
	if v, ok := <-vanished; ok {
		t.Logf("forwarded socket removed %v after the disconnect", v.Sub(disconnect))
	} else {
		t.Errorf("the forwarded socket %s still exists 10 s after the disconnect", sock)
	}

	// (a) The first get started after the disconnect exits 2 within 1 s.
	var oks int
	found := false
	for _, l := range probeAll {
		f := strings.Fields(l)
		if len(f) != 3 {
			continue
		}
		began, ended := fwdParseTime(t, f[1]), fwdParseTime(t, f[2])
		// A get that began before the disconnect counts only if it
		// straddled it and failed: then it is the first to see it.
		if began.Before(disconnect) && !(f[0] != "0" && ended.After(disconnect)) {
			if f[0] == "0" {
				oks++
			}
			continue
		}
		found = true
		t.Logf("(a) new get on the old SSH_AUTH_SOCK (after %d that got the credential before the disconnect): started %v after the disconnect, exit %s %v after it: %s",
			oks, began.Sub(disconnect), f[0], ended.Sub(disconnect), strings.TrimSpace(probeErr.String()))
		if f[0] != "2" {
			t.Errorf("(a) get on the old socket path: exit %s, want 2", f[0])
		}
		if ended.Sub(disconnect) > time.Second {
			t.Errorf("(a) get on the old socket path failed only %v after the disconnect, want <= 1s", ended.Sub(disconnect))
		}
		break
	}
	if !found || oks == 0 {
		t.Errorf("(a) probe: %d gets before the disconnect, a get after it: %v; output %q, stderr %q",
			oks, found, probeAll, probeErr.String())
	}

	// (b) The poller's log: 0 before the disconnect, 2 from at most 1 s
	// after it. Let it run past that second first.
	time.Sleep(1500 * time.Millisecond)
	killPoller()
	data, err := os.ReadFile(pollLog)
	if err != nil {
		t.Fatal(err)
	}
	var okBefore int
	var firstFail time.Time
	var failRC string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		ts := fwdParseTime(t, f[1])
		switch {
		case f[0] == "0" && ts.Before(disconnect):
			okBefore++
		case f[0] == "0" && !firstFail.IsZero():
			t.Errorf("(b) poller got the credential again at %v after the disconnect", ts.Sub(disconnect))
		case f[0] == "0" && ts.Sub(disconnect) > time.Second:
			t.Errorf("(b) poller still got the credential %v after the disconnect", ts.Sub(disconnect))
		case f[0] == "0":
			// A get that was answered as the owner left, logged just
			// after: fine while no get has failed yet, within the second.
		case f[0] != "0" && firstFail.IsZero():
			firstFail, failRC = ts, f[0]
		case f[0] != "2":
			t.Errorf("(b) poller: exit %s after the disconnect, want 2", f[0])
		}
	}
	if okBefore == 0 {
		t.Errorf("(b) poller log shows no success before the disconnect")
	}
	if firstFail.IsZero() {
		t.Fatalf("(b) poller log shows no failure after the disconnect:\n%s", data)
	}
	gap := firstFail.Sub(disconnect)
	t.Logf("(b) poller: %d gets with exit 0 before the disconnect; first failure (exit %s) %v after it", okBefore, failRC, gap)
	if failRC != "2" {
		t.Errorf("(b) poller's first failure: exit %s, want 2", failRC)
	}
	if gap > time.Second {
		t.Errorf("(b) poller failed only %v after the disconnect, want <= 1s", gap)
	}
	if t.Failed() {
		var b strings.Builder
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			if f := strings.Fields(line); len(f) == 2 {
				fmt.Fprintf(&b, "  exit %s at %v\n", f[0], fwdParseTime(t, f[1]).Sub(disconnect))
			}
		}
		t.Logf("poller log, times from the disconnect:\n%s", b.String())
	}

	// Nothing on the server's disk holds the credential.
	roots := []string{u.Home, "/tmp", "/var/tmp", "/run"}
	files, size, hits := fwdScan(roots, []byte(token), 50<<20)
	t.Logf("scanned %d files, %d bytes under %s: credential %s", files, size, strings.Join(roots, ", "),
		map[bool]string{true: "FOUND", false: "not found"}[len(hits) > 0])
	if len(hits) > 0 {
		t.Errorf("credential found in %s", strings.Join(hits, ", "))
	}

	fwdCheckAudit(t, a, []fwdWant{{op: "get", provider: "anthropic", decision: "allow", hops: []string{ssh.FingerprintSHA256(srv.HostKey)}}})
	fwdNoSecretInLogs(t, a, token)
}

// fwdPollOKs counts the poller's successes so far.
func fwdPollOKs(path string) int {
	data, _ := os.ReadFile(path)
	return strings.Count("\n"+string(data), "\n0 ")
}

// fwdParseTime parses date +%s.%N.
func fwdParseTime(t testing.TB, s string) time.Time {
	t.Helper()
	sec, frac, _ := strings.Cut(s, ".")
	secs, err1 := strconv.ParseInt(sec, 10, 64)
	frac = (frac + "000000000")[:9]
	nsec, err2 := strconv.ParseInt(frac, 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("bad timestamp %q", s)
	}
	return time.Unix(secs, nsec)
}

// fwdKnownHosts writes the laptop's known_hosts file naming servers.
func fwdKnownHosts(t *testing.T, servers ...*sshtest.Server) string {
	t.Helper()
	var b strings.Builder
	for _, s := range servers {
		b.WriteString(s.KnownHostsLine() + "\n")
	}
	path := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestForwardDestination: credentials bound with -h to hosta, or to the
// path hosta>hostb, are handed out only along that path of verified hosts.
func TestForwardDestination(t *testing.T) {
	t.Parallel()
	r, kh, srvs := newHostsRig(t, "fwd", AgentOptions{}, "hosta", "hostb")
	a, hosta, hostb := r.agent, srvs[0], srvs[1]
	hostb.Trust(r.user) // so that "ssh hostb" works in a session on hosta

	tokA := fwdToken(t, "sk-ant-pA")
	tokAB := fwdToken(t, "sk-ant-pAB")
	if res := a.Client(t, tokA, "add", "-H", kh, "-h", "hosta", "pA"); res.Code != 0 {
		t.Fatalf("add -h hosta: %+v", res)
	}
	if res := a.Client(t, tokAB, "add", "-H", kh, "-h", "hosta>hostb", "pAB"); res.Code != 0 {
		t.Fatalf("add -h hosta>hostb: %+v", res)
	}
	const hostPath = "host path"
	get := `"$C" get `
	// On hosta, hop on to hostb forwarding the already forwarded agent.
	// $C is expanded on hosta: both servers are this machine.
	viaA := `ssh -o ForwardAgent=yes hostb "$C get `

	type step struct {
		name   string
		srv    *sshtest.Server
		script string
		want   string // token expected, or "" for a refusal
		hops   []string
		prov   string
	}
	for _, s := range []step{
		{"hosta: pA", hosta, get + "pA", tokA, []string{"hosta"}, "pA"},
		{"hosta: pAB", hosta, get + "pAB", "", []string{"hosta"}, "pAB"},
		{"hostb: pA", hostb, get + "pA", "", []string{"hostb"}, "pA"},
		{"hostb: pAB", hostb, get + "pAB", "", []string{"hostb"}, "pAB"},
		{"hosta>hostb: pAB", hosta, viaA + `pAB"`, tokAB, []string{"hosta", "hostb"}, "pAB"},
		{"hosta>hostb: pA", hosta, viaA + `pA"`, "", []string{"hosta", "hostb"}, "pA"},
	} {
		res := r.ssh(s.srv, fwdPrimary, "", s.script)
		if s.want != "" {
			if res.Code != 0 {
				t.Errorf("%s: exit %d, stderr %q", s.name, res.Code, res.Stderr)
				continue
			}
			fwdSameSecret(t, s.name, res.Stdout, s.want)
			fwdCheckAudit(t, a, []fwdWant{{op: "get", provider: s.prov, decision: "allow", hops: s.hops}})
			continue
		}
		fwdRefused(t, s.name, res, hostPath)
		if strings.Contains(res.Stdout, tokA) || strings.Contains(res.Stdout, tokAB) {
			t.Errorf("%s: a credential was printed", s.name)
		}
		t.Logf("%s: refused: %s", s.name, strings.TrimSpace(res.Stderr))
		fwdCheckAudit(t, a, []fwdWant{{op: "get", provider: s.prov, decision: "deny", hops: s.hops}})
	}
	fwdNoSecretInLogs(t, a, tokA, tokAB)
}

// TestForwardConfirm: a credential added with -c is handed to a server
// only when the owner's askpass says yes, and the question names the
// verified host and the program asking.
func TestForwardConfirm(t *testing.T) {
	t.Parallel()
	// The askpass records its question and answers per a flag file.
	dir := t.TempDir()
	prompts := filepath.Join(dir, "prompts")
	allow := filepath.Join(dir, "allow")
	askpass := filepath.Join(dir, "askpass")
	script := "#!/bin/sh\nprintf '%s\\n' \"$1\" >> '" + prompts + "'\n[ -e '" + allow + "' ]\n"
	if err := os.WriteFile(askpass, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	r, _, srvs := newHostsRig(t, "fwd", AgentOptions{Env: []string{"LLM_AGENT_ASKPASS=" + askpass}}, "hosta")
	a, hosta := r.agent, srvs[0]

	token := fwdToken(t, "sk-ant-fwdc")
	if res := a.Client(t, token, "add", "-c", "pC"); res.Code != 0 {
		t.Fatalf("add -c: %+v", res)
	}
	// Not a lone command, so that bash forks and is the requester.
	const get = `"$C" get pC; rc=$?; exit $rc`

	res := r.ssh(hosta, fwdPrimary, "", get)
	fwdRefused(t, "get with the owner saying no", res, "refused")
	if strings.Contains(res.Stdout, token) {
		t.Errorf("get with the owner saying no printed the credential")
	}
	data, err := os.ReadFile(prompts)
	if err != nil {
		t.Fatalf("the askpass was not run: %v", err)
	}
	prompt := strings.TrimSpace(string(data))
	t.Logf("askpass prompt: %s", prompt)
	for _, want := range []string{`"pC"`, "hosta", "bash", "as reported by the requester"} {
		if !strings.Contains(prompt, want) {
			t.Errorf("askpass prompt does not name %q", want)
		}
	}

	if err := os.WriteFile(allow, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	res = r.ssh(hosta, fwdPrimary, "", get)
	if res.Code != 0 {
		t.Fatalf("get with the owner saying yes: exit %d, stderr %q", res.Code, res.Stderr)
	}
	fwdSameSecret(t, "get with the owner saying yes", res.Stdout, token)
	data, _ = os.ReadFile(prompts)
	if n := strings.Count(string(data), "\n"); n != 2 {
		t.Errorf("askpass ran %d times, want 2", n)
	}

	hops := []string{"hosta"}
	fwdCheckAudit(t, a, []fwdWant{
		{op: "get", provider: "pC", decision: "deny", hops: hops},
		{op: "get", provider: "pC", decision: "allow", hops: hops},
	})
	fwdNoSecretInLogs(t, a, token)
}

package e2e

import (
	"bufio"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/internal/sshtest"
)

// grdCmdTimeout bounds one command sent to a login's shell.
const grdCmdTimeout = 30 * time.Second

// grdRig is one shared server account: a real sshd, one real user whose
// account every login (the owner's and the co-tenant's) uses, and on the
// laptop side an empty ssh-agent that OpenSSH 9.2 needs in SSH_AUTH_SOCK
// before it forwards anything.
type grdRig struct {
	t    *testing.T
	srv  *sshtest.Server
	user *sshtest.User
	live string
}

func newGrdRig(t *testing.T, name string) *grdRig {
	t.Helper()
	sshtest.RequireRoot(t)
	return &grdRig{
		t:    t,
		user: sshtest.NewUser(t, "grd"),
		srv:  sshtest.Start(t, sshtest.Options{Name: name}),
		live: liveSSHAgent(t),
	}
}

// grdAgent starts a laptop-side llm-agent with an audit log holding one
// fresh marker token for anthropic.
func grdAgent(t *testing.T, prefix string) (*Agent, string) {
	t.Helper()
	a := StartAgent(t, AgentOptions{Debug: true, Audit: true})
	token := fwdToken(t, prefix)
	if res := a.Client(t, token, "add", "anthropic"); res.Code != 0 {
		t.Fatalf("add on the laptop: %+v", res)
	}
	return a, token
}

// newGrdRigAgent is newGrdRig with a laptop agent from grdAgent, as most
// guard tests begin.
func newGrdRigAgent(t *testing.T, name, prefix string) (*grdRig, *Agent, string) {
	t.Helper()
	r := newGrdRig(t, name)
	a, token := grdAgent(t, prefix)
	return r, a, token
}

// grdShell is a login to the shared account that stays open: its remote
// shell runs the commands the test sends, one at a time, in the same shell
// (so eval'd variables stay), until the test closes its stdin.
type grdShell struct {
	t     *testing.T
	name  string
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
	done  chan struct{} // closed when the laptop-side ssh has exited

	mu     sync.Mutex
	stderr strings.Builder

	// PID and SessionID are the remote shell's pid and audit session id;
	// SSHPID is the laptop-side ssh's pid (the agent's peer for this
	// login's forwarded connections).
	PID       int
	SessionID string
	SSHPID    int
	// Profile holds what the login printed before its shell was ready
	// (a ~/.bashrc's output).
	Profile []string
}

// grdLoop is the remote side of a grdShell: each input line is a base64
// script, run by eval with stdin from /dev/null, followed by a marker line
// with its exit status.
const grdLoop = `echo "@@ready $$ $(cat /proc/self/sessionid 2>/dev/null)"
while IFS= read -r __l; do
	eval "$(printf %s "$__l" | base64 -d)" </dev/null
	printf '\n@@rc %d\n' $?
done`

// login opens a shell on the shared account; with agentSock set, the login
// forwards that laptop agent (ForwardAgent=<sock>, SSH_AUTH_SOCK the live
// ssh-agent), else it forwards nothing.
func (r *grdRig) login(name, agentSock string) *grdShell {
	r.t.Helper()
	var args, env []string
	if agentSock != "" {
		args = []string{"-o", "ForwardAgent=" + agentSock}
		env = []string{"SSH_AUTH_SOCK=" + r.live}
	}
	return r.loginWith(name, args, env)
}

// loginWith opens a shell on the shared account with extra ssh arguments
// and laptop-side environment.
func (r *grdRig) loginWith(name string, args, env []string) *grdShell {
	r.t.Helper()
	cmd := r.srv.SSH(r.user, args, remoteScript(grdLoop))
	cmd.Env = append(cmd.Env, env...)
	s := &grdShell{t: r.t, name: name, cmd: cmd, lines: make(chan string, 1024), done: make(chan struct{})}
	var err error
	if s.in, err = cmd.StdinPipe(); err != nil {
		r.t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		r.t.Fatal(err)
	}
	cmd.Stderr = grdWriter{s}
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("%s: start ssh: %v", name, err)
	}
	s.SSHPID = cmd.Process.Pid
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
		cmd.Wait()
		close(s.done)
	}()
	r.t.Cleanup(func() {
		go func() {
			for range s.lines {
			}
		}()
		s.in.Close()
		s.cmd.Process.Kill()
		<-s.done
	})
	timeout := time.After(grdCmdTimeout)
	for {
		select {
		case l, ok := <-s.lines:
			f := strings.Fields(l)
			if ok && (len(f) < 2 || f[0] != "@@ready") {
				s.Profile = append(s.Profile, l) // printed by the shell's profile
				continue
			}
			if !ok {
				r.t.Fatalf("%s: login failed: %q, stderr %q\n%s", name, s.Profile, s.Stderr(), r.srv.LogTail(20))
			}
			s.PID, _ = strconv.Atoi(f[1])
			if len(f) > 2 {
				s.SessionID = f[2]
			}
			return s
		case <-timeout:
			r.t.Fatalf("%s: no shell within %v; stderr %q", name, grdCmdTimeout, s.Stderr())
		}
	}
}

type grdWriter struct{ s *grdShell }

func (w grdWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.stderr.Write(p)
}

// Stderr is what the login wrote on stderr so far.
func (s *grdShell) Stderr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

// Run runs script in the login's shell and returns its stdout (without the
// newline the marker adds) and exit status. The output may hold a
// credential: callers compare it, never print it.
func (s *grdShell) Run(script string) (string, int) {
	s.t.Helper()
	if _, err := io.WriteString(s.in, base64.StdEncoding.EncodeToString([]byte(script))+"\n"); err != nil {
		s.t.Fatalf("%s: send command: %v; stderr %q", s.name, err, s.Stderr())
	}
	var out []string
	timeout := time.After(grdCmdTimeout)
	for {
		select {
		case l, ok := <-s.lines:
			if !ok {
				s.t.Fatalf("%s: the session ended during a command; stderr %q", s.name, s.Stderr())
			}
			if rc, found := strings.CutPrefix(l, "@@rc "); found {
				n, _ := strconv.Atoi(rc)
				o := strings.Join(out, "\n")
				return strings.TrimSuffix(o, "\n"), n
			}
			out = append(out, l)
		case <-timeout:
			s.t.Fatalf("%s: command ran longer than %v; stderr %q", s.name, grdCmdTimeout, s.Stderr())
		}
	}
}

// Logout ends the login as the owner would by leaving the shell: the
// remote shell reads end-of-file and exits.
func (s *grdShell) Logout() { s.in.Close() }

// Kill ends the laptop-side ssh (the owner's laptop drops the connection).
func (s *grdShell) Kill() { s.cmd.Process.Signal(syscall.SIGTERM) }

// Exited waits up to d for the laptop-side ssh to exit.
func (s *grdShell) Exited(d time.Duration) bool {
	select {
	case <-s.done:
		return true
	case <-time.After(d):
		return false
	}
}

// grdGuard is what `eval "$(llm-agent-client guard)"` set in a login.
type grdGuard struct {
	PID       int
	Sock      string // LLM_AUTH_SOCK: the stable path
	SSHSock   string // SSH_AUTH_SOCK after the eval
	Forwarded string // SSH_AUTH_SOCK before the eval: the forwarded socket
	Echo      string // what the eval lines echoed
}

// startGuard runs the guard the way a shell profile does and reports what
// it set.
func (s *grdShell) startGuard() grdGuard {
	s.t.Helper()
	out, rc := s.Run(`fwd=$SSH_AUTH_SOCK
eval "$("$C" guard)" || exit 97
printf 'fwd=%s\nguard=%s\nsock=%s\nssh=%s\n' "$fwd" "$LLM_GUARD_PID" "$LLM_AUTH_SOCK" "$SSH_AUTH_SOCK"`)
	if rc != 0 {
		s.t.Fatalf("%s: eval \"$(llm-agent-client guard)\": exit %d, output %q, stderr %q", s.name, rc, out, s.Stderr())
	}
	var g grdGuard
	for _, l := range strings.Split(out, "\n") {
		k, v, _ := strings.Cut(l, "=")
		switch k {
		case "fwd":
			g.Forwarded = v
		case "guard":
			g.PID, _ = strconv.Atoi(v)
		case "sock":
			g.Sock = v
		case "ssh":
			g.SSHSock = v
		default:
			g.Echo += l
		}
	}
	if g.PID <= 0 || g.Sock == "" {
		s.t.Fatalf("%s: the guard's eval lines set LLM_GUARD_PID %d, LLM_AUTH_SOCK %q (output %q)", s.name, g.PID, g.Sock, out)
	}
	return g
}

// grdPoll is a poller's log line: the exit status of one get and when it
// ended.
type grdPoll struct {
	rc int
	at time.Time
}

// grdReadPolls parses a poller's log ("rc unix-time" lines, date +%s.%N).
func grdReadPolls(t testing.TB, path string) []grdPoll {
	t.Helper()
	data, _ := os.ReadFile(path)
	var out []grdPoll
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue // a line still being written
		}
		rc, err := strconv.Atoi(f[0])
		if err != nil {
			continue
		}
		out = append(out, grdPoll{rc: rc, at: fwdParseTime(t, f[1])})
	}
	return out
}

// grdOKsAfter counts a poller's successful gets that ended after since.
func grdOKsAfter(t testing.TB, path string, since time.Time) int {
	n := 0
	for _, p := range grdReadPolls(t, path) {
		if p.rc == 0 && p.at.After(since) {
			n++
		}
	}
	return n
}

// grdWaitOKs waits up to limit for n successes after since in a poller's log.
func grdWaitOKs(t testing.TB, what, path string, since time.Time, n int, limit time.Duration) bool {
	t.Helper()
	took, ok := waitFor(limit, func() bool { return grdOKsAfter(t, path, since) >= n })
	if !ok {
		t.Errorf("%s: not %d successful gets within %v; log:\n%s", what, n, limit, grdPollSummary(t, path, since))
		return false
	}
	t.Logf("%s: %d successful gets within %v", what, n, took.Round(time.Millisecond))
	return true
}

// grdPollSummary renders a poller's log with times relative to ref.
func grdPollSummary(t testing.TB, path string, ref time.Time) string {
	var b strings.Builder
	polls := grdReadPolls(t, path)
	if len(polls) > 60 {
		fmt.Fprintf(&b, "  (%d earlier lines)\n", len(polls)-60)
		polls = polls[len(polls)-60:]
	}
	for _, p := range polls {
		fmt.Fprintf(&b, "  exit %d at %v\n", p.rc, p.at.Sub(ref).Round(time.Millisecond))
	}
	return b.String()
}

// grdLogout checks a poller's log around the owner's logout: successes
// before it, then from at most limit after it only exit 2. It returns
// when the first failure after the logout ended, relative to the logout.
func grdLogout(t testing.TB, what, path string, logout time.Time, limit time.Duration) time.Duration {
	t.Helper()
	var okBefore, failBefore, late, again, other int
	var first *grdPoll
	var lastLate time.Duration
	for _, p := range grdReadPolls(t, path) {
		p := p
		switch {
		case !p.at.After(logout):
			if p.rc == 0 {
				okBefore++
			} else {
				failBefore++
			}
		case first == nil && p.rc != 0:
			first = &p
			if p.rc != 2 {
				t.Errorf("%s: first failure after the logout: exit %d, want 2", what, p.rc)
			}
		case first == nil: // a get still served after the logout
			if d := p.at.Sub(logout); d > limit {
				late++
				lastLate = d
			}
		case p.rc == 0:
			again++
		case p.rc != 2:
			other++
		}
	}
	if late > 0 {
		t.Errorf("%s: %d gets still got the credential more than %v after the logout, the last %v after it", what, late, limit, lastLate.Round(time.Millisecond))
	}
	if again > 0 {
		t.Errorf("%s: %d gets got the credential again after the first failure", what, again)
	}
	if other > 0 {
		t.Errorf("%s: %d gets after the logout failed with an exit status other than 2", what, other)
	}
	if okBefore == 0 || failBefore > 0 {
		t.Errorf("%s: before the logout %d gets succeeded and %d failed; want only successes", what, okBefore, failBefore)
	}
	if first == nil {
		t.Errorf("%s: no failure after the logout; log:\n%s", what, grdPollSummary(t, path, logout))
		return -1
	}
	gap := first.at.Sub(logout)
	t.Logf("%s: %d gets with exit 0 before the logout; first failure (exit %d) ended %v after it",
		what, okBefore, first.rc, gap.Round(time.Millisecond))
	if gap > limit {
		t.Errorf("%s: first failure %v after the logout, want <= %v", what, gap, limit)
	}
	return gap
}

// grdTry is the outcome of one get run in a login with some environment.
type grdTry struct {
	rc     int
	out    string // what the get printed: compare it, never show it
	stderr string // its one-line complaint
}

// try runs `env llm-agent-client get anthropic` in the login; env is
// shell assignments such as LLM_AUTH_SOCK='/x'. The output comes back
// hex-encoded so that no terminal or scanner mangles it.
func (s *grdShell) try(env string) grdTry {
	s.t.Helper()
	out, rc := s.Run(`tmp=$(mktemp)
out=$(` + env + ` timeout 10 "$C" get anthropic 2>"$tmp"); rc=$?
printf '@@try\t%d\t%s\t%s\n' "$rc" "$(printf %s "$out" | od -An -tx1 | tr -d ' \n')" "$(head -c 300 "$tmp" | tr '\n\t' '  ')"
rm -f "$tmp"`)
	for _, l := range strings.Split(out, "\n") {
		f := strings.Split(l, "\t")
		if len(f) != 4 || f[0] != "@@try" || rc != 0 {
			continue
		}
		n, _ := strconv.Atoi(f[1])
		got, err := hex.DecodeString(f[2])
		if err != nil {
			s.t.Fatalf("%s: bad get output encoding", s.name)
		}
		return grdTry{rc: n, out: string(got), stderr: strings.TrimSpace(f[3])}
	}
	s.t.Fatalf("%s: get with %s: no result (exit %d); stderr %q", s.name, env, rc, s.Stderr())
	return grdTry{}
}

// grdSockScan is one socket a co-tenant found and tried.
type grdSockScan struct {
	path   string
	rc     int
	token  bool   // the get printed the token
	stderr string // the get's one-line complaint
}

// grdScanScript has the login find every Unix socket it can under /tmp,
// /run and its home and run a get against each one; the get's output comes
// back hex-encoded, so that it is compared, never shown.
const grdScanScript = `tmp=$(mktemp)
find /tmp /run "$HOME" -type s 2>/dev/null | while IFS= read -r s; do
	out=$(LLM_AUTH_SOCK="$s" SSH_AUTH_SOCK= timeout 10 "$C" get anthropic 2>"$tmp"); rc=$?
	printf '@@sock\t%s\t%d\t%s\t%s\n' "$s" "$rc" "$(printf %s "$out" | od -An -tx1 | tr -d ' \n')" "$(head -c 300 "$tmp" | tr '\n\t' '  ')"
done
rm -f "$tmp"`

// scanSockets runs grdScanScript in the login.
func (s *grdShell) scanSockets(token string) []grdSockScan {
	s.t.Helper()
	out, rc := s.Run(grdScanScript)
	if rc != 0 {
		s.t.Errorf("%s: socket scan: exit %d, stderr %q", s.name, rc, s.Stderr())
	}
	var res []grdSockScan
	for _, l := range strings.Split(out, "\n") {
		f := strings.Split(l, "\t")
		if len(f) != 5 || f[0] != "@@sock" {
			continue
		}
		rc, _ := strconv.Atoi(f[2])
		got, err := hex.DecodeString(f[3])
		if err != nil {
			s.t.Errorf("%s: socket scan: bad output for %s", s.name, f[1])
		}
		res = append(res, grdSockScan{path: f[1], rc: rc, token: strings.Contains(string(got), token), stderr: strings.TrimSpace(f[4])})
	}
	return res
}

// grdSessionID is a process's audit session id, read as root.
func grdSessionID(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/sessionid", pid))
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// grdNoSecretIn checks that none of files holds secret, reporting only
// found or not found.
func grdNoSecretIn(t testing.TB, secret string, files ...string) {
	t.Helper()
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Errorf("read %s: %v", f, err)
			continue
		}
		if strings.Contains(string(data), secret) {
			t.Errorf("%s (%d bytes): credential found", f, len(data))
			continue
		}
		t.Logf("%s: %d bytes, credential not found", filepath.Base(f), len(data))
	}
}

// grdWaitGone waits up to limit for pid to exit (a zombie counts, as in
// processGone), polling every 2 ms, and returns when it was seen gone.
func grdWaitGone(pid int, limit time.Duration) (time.Time, bool) {
	for deadline := time.Now().Add(limit); ; time.Sleep(2 * time.Millisecond) {
		if processGone(pid) {
			return time.Now(), true
		}
		if time.Now().After(deadline) {
			return time.Time{}, false
		}
	}
}

// grdAnswers reports whether something listens on a socket path (a stale
// socket file refuses the connection).
func grdAnswers(path string) bool {
	c, err := dialUnix(path)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// grdRequireTmux skips loudly without tmux, except under CI=true (.ci/run
// installs it), where that is a failure.
func grdRequireTmux(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s needs tmux, and CI=true: install it (apt-get install -y tmux)", t.Name())
	}
	t.Skipf("SKIPPED: %s needs tmux (apt-get install -y tmux)", t.Name())
}

package bench

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The client's own round trips: a whole `llm-agent-client get` on the
// server, through the forwarded agent at each RTT, against `ssh-add -l`
// through the same forwarded socket (one channel open and one exchange:
// what an agent request cannot go below).

// clientRTTCommands are timed on the server, in turn, in one shell: the
// label, then the command. $SSH_AUTH_SOCK is the socket sshd forwards.
var clientRTTCommands = [][2]string{
	{"ssh-add -l", "ssh-add -l"},
	{"get, SSH_AUTH_SOCK", "env -u LLM_AUTH_SOCK %s get anthropic"},
	{"get, LLM_AUTH_SOCK", "LLM_AUTH_SOCK=$SSH_AUTH_SOCK %s get anthropic"},
}

// clientRTTResult is one RTT's medians, by label.
type clientRTTResult struct {
	rtt    time.Duration
	median map[string]time.Duration
}

// measureClientRTT logs in through a link of rtt and times each command
// of clientRTTCommands n times, interleaved, by the server's clock.
func measureClientRTT(t *testing.T, e *rttEnv, rtt time.Duration, n int) clientRTTResult {
	path := newPath(rtt)
	before := path.probe(t, e.echo, 20)
	_, port, _ := net.SplitHostPort(path.link(t, e.server.Addr))
	var loop strings.Builder
	fmt.Fprintf(&loop, "for i in $(seq %d); do ", n)
	for i, c := range clientRTTCommands {
		cmd := c[1]
		if strings.Contains(cmd, "%s") {
			cmd = fmt.Sprintf(cmd, bins.Client)
		}
		fmt.Fprintf(&loop, "a=$(date +%%s%%N); %s >/dev/null 2>&1; b=$(date +%%s%%N); echo %d $((b-a)); ", cmd, i)
	}
	loop.WriteString("done")
	ssh := e.server.SSH(e.user, []string{"-o", "ForwardAgent=" + e.agent.Sock, "-o", "Port=" + port}, loop.String())
	ssh.Env = append(ssh.Env, "SSH_AUTH_SOCK="+e.agent.Sock) // see sshtest: ssh forwards only to a live agent
	out, err := ssh.Output()
	if err != nil {
		t.Fatalf("ssh (client round trips at %v): %v", rtt, err)
	}
	times := make([][]time.Duration, len(clientRTTCommands))
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		i, err1 := strconv.Atoi(f[0])
		ns, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 == nil && err2 == nil && i >= 0 && i < len(times) {
			times[i] = append(times[i], time.Duration(ns))
		}
	}
	after := path.probe(t, e.echo, 20)
	r := clientRTTResult{rtt: (before + after) / 2, median: map[string]time.Duration{}}
	for i, c := range clientRTTCommands {
		if len(times[i]) != n {
			t.Fatalf("client round trips at %v: %d times of %q, want %d; ssh printed %q", rtt, len(times[i]), c[0], n, out)
		}
		r.median[c[0]] = median(times[i])
	}
	return r
}

// clientRTTReport renders the client's round trips as markdown.
func clientRTTReport(rs []clientRTTResult, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nA whole `llm-agent-client get` on the server, through the forwarded agent, against `ssh-add -l` through the same socket, %d times each, interleaved, timed by the server's shell (`date +%%s%%N` around each command; process start included). With only SSH_AUTH_SOCK set, the client must first learn that the agent there is llm-agent; its probe and its request go out back to back. Target: ≤ 1.05× `ssh-add -l` whichever variable names the socket.\n\n", n)
	b.WriteString("| RTT measured | ssh-add -l | in RTT | get, SSH_AUTH_SOCK | in RTT | ratio | get, LLM_AUTH_SOCK | in RTT | ratio | target ≤ 1.05 | met |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rs {
		ref := r.median["ssh-add -l"]
		viaSSH, viaLLM := r.median["get, SSH_AUTH_SOCK"], r.median["get, LLM_AUTH_SOCK"]
		q := func(d time.Duration) float64 { return float64(d) / float64(ref) }
		inRTT := func(d time.Duration) float64 { return float64(d) / float64(r.rtt) }
		fmt.Fprintf(&b, "| %.1f ms | %.1f ms | %.2f | %.1f ms | %.2f | %.2f | %.1f ms | %.2f | %.2f | 1.05 | %s |\n", ms(r.rtt), ms(ref), inRTT(ref),
			ms(viaSSH), inRTT(viaSSH), q(viaSSH), ms(viaLLM), inRTT(viaLLM), q(viaLLM), yesNo(q(viaSSH) <= 1.05 && q(viaLLM) <= 1.05))
	}
	return b.String()
}

package clientcmd

import (
	"io"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh/agent"

	"github.com/llm-agent/llm-agent/internal/agenttest"
)

// TestNotConnectedMessages: every way of not reaching an agent exits 2 with
// one line that says what was found, and none suggests the command that
// brought the user there without saying what to check.
func TestNotConnectedMessages(t *testing.T) {
	dir := t.TempDir()

	// serve listens at name in dir and runs handle on each connection.
	serve := func(name string, handle func(net.Conn)) string {
		return agenttest.ServeUnix(t, filepath.Join(dir, name), handle)
	}
	stale := filepath.Join(dir, "stale.sock")
	if l, err := net.Listen("unix", stale); err != nil {
		t.Fatal(err)
	} else {
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		l.Close()
	}
	// silent reads requests and never answers: a laptop gone to sleep
	// behind a forwarded socket that sshd still holds.
	silent := serve("silent.sock", func(c net.Conn) { io.Copy(io.Discard, c) })
	// hangup reads the first request and closes: the laptop disconnected.
	hangup := serve("hangup.sock", func(c net.Conn) { c.Read(make([]byte, 64)) })
	// plain is an ssh-agent without llm-agent's extensions.
	plain := serve("plain.sock", func(c net.Conn) { agent.ServeAgent(agent.NewKeyring(), c) })
	missing := filepath.Join(dir, "gone", "agent.sock")

	for _, tc := range []struct {
		name string
		vars map[string]string
		cmd  string
		want string // regexp on the one line after "llm-agent-client: CMD: "
	}{
		{"neither variable", nil, "get",
			`^the owner is not connected: no agent: neither LLM_AUTH_SOCK nor SSH_AUTH_SOCK is set: this login has no forwarded agent \(on the laptop, connect with ssh -o ForwardAgent=\$LLM_AUTH_SOCK, and check AllowAgentForwarding on the server; to run an agent here: eval "\$\(llm-agent\)"\)$`},
		{"neither variable, list", nil, "list",
			`^no agent: neither LLM_AUTH_SOCK nor SSH_AUTH_SOCK is set: this login has no forwarded agent`},
		{"plain ssh-agent forwarded", map[string]string{"SSH_AUTH_SOCK": plain}, "get",
			`^the owner is not connected: LLM_AUTH_SOCK is not set and SSH_AUTH_SOCK=.*/plain.sock is an ssh-agent without llm-agent's extensions: the laptop forwarded its ssh-agent, not llm-agent \(connect with ssh -o ForwardAgent=\$LLM_AUTH_SOCK\)$`},
		{"LLM_AUTH_SOCK missing", map[string]string{"LLM_AUTH_SOCK": missing}, "get",
			`^the owner is not connected: LLM_AUTH_SOCK=.*/gone/agent.sock does not exist: the ssh session that forwarded it has ended, or the agent stopped`},
		{"SSH_AUTH_SOCK missing", map[string]string{"SSH_AUTH_SOCK": missing}, "list",
			`^SSH_AUTH_SOCK=.*/gone/agent.sock does not exist: the ssh session that forwarded it has ended`},
		{"stale socket", map[string]string{"LLM_AUTH_SOCK": stale}, "status",
			`^nothing is listening at LLM_AUTH_SOCK=.*/stale.sock \(a stale socket\): the ssh session or the agent that served it has ended`},
		{"no answer, LLM_AUTH_SOCK", map[string]string{"LLM_AUTH_SOCK": silent, "LLM_AGENT_TIMEOUT": "300ms"}, "get",
			`^the owner is not connected: the agent at LLM_AUTH_SOCK=.*/silent.sock did not answer within 300ms: the laptop may be asleep or the network gone \(LLM_AGENT_TIMEOUT sets how long to wait\)$`},
		{"no answer, SSH_AUTH_SOCK", map[string]string{"SSH_AUTH_SOCK": silent, "LLM_AGENT_TIMEOUT": "0.3"}, "list",
			`^the agent at SSH_AUTH_SOCK=.*/silent.sock did not answer within 300ms: the laptop may be asleep or the network gone`},
		{"hung up, LLM_AUTH_SOCK", map[string]string{"LLM_AUTH_SOCK": hangup}, "get",
			`^the owner is not connected: the agent at LLM_AUTH_SOCK=.*/hangup.sock hung up: the laptop disconnected or its agent stopped$`},
		{"hung up, SSH_AUTH_SOCK", map[string]string{"SSH_AUTH_SOCK": hangup}, "status",
			`^the agent at SSH_AUTH_SOCK=.*/hangup.sock hung up: the laptop disconnected or its agent stopped$`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			e := &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr,
				getenv: func(k string) string { return tc.vars[k] }}
			args := []string{tc.cmd}
			if tc.cmd == "get" {
				args = append(args, "anthropic")
			}
			code := run(e, args)
			msg := strings.TrimSuffix(stderr.String(), "\n")
			prefix := "llm-agent-client: " + tc.cmd + ": "
			if code != exitNoAgent || strings.Contains(msg, "\n") || !strings.HasPrefix(msg, prefix) {
				t.Fatalf("exit %d, stderr %q; want exit 2 and one line starting %q", code, stderr.String(), prefix)
			}
			if !regexp.MustCompile(tc.want).MatchString(strings.TrimPrefix(msg, prefix)) {
				t.Errorf("got  %q\nwant %s", msg, tc.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
		})
	}
}

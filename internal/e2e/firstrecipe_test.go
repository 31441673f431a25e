package e2e

import (
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/llm-agent/llm-agent/internal/sshtest"
)

// TestFirstRecipe runs the README's first recipe as a user types it on the
// laptop: eval "$(llm-agent)", add a credential, then
// ssh -o ForwardAgent=$LLM_AUTH_SOCK host llm-agent-client get PROVIDER.
// OpenSSH 9.2 forwards the ForwardAgent socket only when its own
// SSH_AUTH_SOCK reaches a live agent, so the recipe must work with no
// ssh-agent (llm-agent sets SSH_AUTH_SOCK), with a stale SSH_AUTH_SOCK
// (replaced), and with the user's live ssh-agent (left alone).
func TestFirstRecipe(t *testing.T) {
	t.Parallel()
	sshtest.RequireRoot(t)
	srv := sshtest.Start(t, sshtest.Options{Name: "recipehost"})
	user := sshtest.NewUser(t, "recipe")
	live := liveSSHAgent(t)

	// The ssh command line, with ForwardAgent naming $LLM_AUTH_SOCK as the
	// user writes it (expanded by the laptop's shell).
	const marker = "@LLM_AUTH_SOCK@"
	sshCmd := srv.SSH(user, []string{"-o", "ForwardAgent=" + marker}, remoteScript(`"$C" get anthropic`))
	var words []string
	for _, a := range sshCmd.Args {
		if a == "ForwardAgent="+marker {
			words = append(words, `ForwardAgent="$LLM_AUTH_SOCK"`)
			continue
		}
		words = append(words, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
	}
	words[0] = "'" + sshCmd.Path + "'"
	script := `eval "$(llm-agent)" >/dev/null || exit 90
echo "@@pid=$LLM_AGENT_PID"
echo "@@llm=$LLM_AUTH_SOCK"
echo "@@ssh=${SSH_AUTH_SOCK-unset}"
llm-agent-client add anthropic || exit 91
got=$(` + strings.Join(words, " ") + ` </dev/null); rc=$?
printf '@@rc=%s\n@@get=%s\n' "$rc" "$got"
eval "$(llm-agent -k)" >/dev/null
echo "@@after=${SSH_AUTH_SOCK-unset}"
`

	for _, tc := range []struct {
		name    string
		sshSock string // the laptop's SSH_AUTH_SOCK before eval; "" unset
		ours    bool   // eval must point SSH_AUTH_SOCK at the use socket
	}{
		{"no ssh-agent", "", true},
		{"stale SSH_AUTH_SOCK", "/nonexistent/ssh-agent.sock", true},
		{"live ssh-agent", live, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp, err := os.MkdirTemp("", "rcp")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(tmp) })
			env := append(cleanEnv(), "TMPDIR="+tmp, "PATH="+bins.Dir+":"+os.Getenv("PATH"))
			if tc.sshSock != "" {
				env = append(env, "SSH_AUTH_SOCK="+tc.sshSock)
			}
			token := fwdToken(t, "sk-ant-recipe")
			res := Run(t, env, token+"\n", "/bin/sh", "-c", script)
			vals := map[string]string{}
			for _, line := range strings.Split(res.Stdout, "\n") {
				if k, v, ok := strings.Cut(strings.TrimPrefix(line, "@@"), "="); ok && strings.HasPrefix(line, "@@") {
					vals[k] = v
				}
			}
			if pid, err := strconv.Atoi(vals["pid"]); err == nil {
				stopDaemonAtCleanup(t, pid)
			}
			if res.Code != 0 || vals["rc"] == "" {
				t.Fatalf("the recipe's laptop script: exit %d, stderr %q", res.Code, res.Stderr)
			}
			wantSSH, wantAfter := tc.sshSock, tc.sshSock
			if tc.ours {
				wantSSH, wantAfter = vals["llm"], "unset"
			}
			if vals["ssh"] != wantSSH {
				t.Errorf("after eval SSH_AUTH_SOCK=%s, want %s", vals["ssh"], wantSSH)
			}
			if vals["after"] != wantAfter {
				t.Errorf("after eval \"$(llm-agent -k)\" SSH_AUTH_SOCK=%s, want %s", vals["after"], wantAfter)
			}
			if vals["rc"] != "0" {
				t.Fatalf("ssh -o ForwardAgent=$LLM_AUTH_SOCK host llm-agent-client get anthropic: exit %s; stderr %q\n%s",
					vals["rc"], res.Stderr, srv.LogTail(10))
			}
			fwdSameSecret(t, "get through the first recipe", vals["get"], token)
		})
	}
}

// TestNotConnectedSaysWhatWasFound: on a real sshd, get without llm-agent
// forwarded fails with exit 2 and one line that says what the login has:
// the laptop's plain ssh-agent (ssh -A), or no forwarded agent at all.
func TestNotConnectedSaysWhatWasFound(t *testing.T) {
	t.Parallel()
	r := newFwdRig(t, AgentOptions{})
	srv := sshtest.Start(t, sshtest.Options{Name: "ncfound"})
	if res := r.agent.Client(t, fwdToken(t, "sk-ant-nc"), "add", "anthropic"); res.Code != 0 {
		t.Fatalf("add on the laptop: %+v", res)
	}
	for _, tc := range []struct {
		name string
		cmd  *exec.Cmd
		want *regexp.Regexp
	}{
		{"plain ssh-agent forwarded", func() *exec.Cmd {
			// The user forwarded their ssh-agent (ssh -A), not llm-agent.
			cmd := srv.SSH(r.user, []string{"-o", "ForwardAgent=yes"}, remoteScript(`"$C" get anthropic`))
			cmd.Env = append(cmd.Env, "SSH_AUTH_SOCK="+r.live, "LLM_AUTH_SOCK="+r.agent.Sock)
			return cmd
		}(), regexp.MustCompile(`^llm-agent-client: get: the owner is not connected: LLM_AUTH_SOCK is not set and SSH_AUTH_SOCK=\S+ is an ssh-agent without llm-agent's extensions: the laptop forwarded its ssh-agent, not llm-agent \(connect with ssh -o ForwardAgent=\$LLM_AUTH_SOCK\)$`)},
		{"nothing forwarded", srv.SSH(r.user, nil, remoteScript(`"$C" get anthropic`)),
			regexp.MustCompile(`^llm-agent-client: get: the owner is not connected: no agent: neither LLM_AUTH_SOCK nor SSH_AUTH_SOCK is set: this login has no forwarded agent \(on the laptop, connect with ssh -o ForwardAgent=\$LLM_AUTH_SOCK, and check AllowAgentForwarding on the server`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := fwdRun(t, tc.cmd, "")
			msg := strings.TrimSuffix(res.Stderr, "\n")
			t.Logf("exit %d: %s", res.Code, msg)
			if res.Code != 2 || res.Stdout != "" || strings.Contains(msg, "\n") || !tc.want.MatchString(msg) {
				t.Errorf("exit %d, stdout %d bytes, stderr %q; want exit 2 and one line matching %s", res.Code, len(res.Stdout), res.Stderr, tc.want)
			}
		})
	}
}

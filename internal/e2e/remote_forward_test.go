package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/llm-agent/llm-agent/internal/sshtest"
)

// readmeRForward is README.md's "As a plain socket" recipe: the commands
// run on the laptop (comments dropped) and the lines run on gpu1.
func readmeRForward(t *testing.T) (laptop, server []string) {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)\\*\\*As a plain socket\\*\\*.*?```sh\n(.*?)```").FindStringSubmatch(string(data))
	if m == nil {
		t.Fatal("README.md has no sh block after **As a plain socket**")
	}
	onServer := false
	for _, l := range strings.Split(strings.TrimSpace(m[1]), "\n") {
		switch {
		case strings.HasPrefix(l, "# on gpu1"):
			onServer = true
		case onServer:
			server = append(server, l)
		default:
			if i := strings.Index(l, "  #"); i >= 0 {
				l = l[:i]
			}
			laptop = append(laptop, strings.TrimSpace(l))
		}
	}
	if len(laptop) == 0 || !strings.Contains(laptop[len(laptop)-1], "-R") || len(server) == 0 {
		t.Fatalf("README.md's -R recipe is not laptop commands ending in ssh -R, then lines on gpu1: %q", m[1])
	}
	return laptop, server
}

// TestReadmeRemoteForward runs README.md's -R recipe as written (the
// server's home for /home/you, the harness's ssh config for gpu1) against
// a real sshd: the credential comes through it; and when another user's
// socket already sits at the remote path, ssh stops with an error rather
// than going on without the forward (and nothing reaches that socket).
func TestReadmeRemoteForward(t *testing.T) {
	sshtest.RequireRoot(t)
	srv := sshtest.Start(t, sshtest.Options{Name: "gpu1"})
	user := sshtest.NewUser(t, "rfw")
	mallory := sshtest.NewUser(t, "llme2e")
	a, token := grdAgent(t, "sk-ant-rfw")
	laptop, server := readmeRForward(t)

	// The recipe's own lines; ssh gets the harness's config for gpu1, and
	// the last laptop line (the login) runs the server lines and a get.
	var script strings.Builder
	script.WriteString("ssh() { command ssh -F \"$CFG\" \"$@\"; }\n")
	for i, l := range laptop {
		l = strings.ReplaceAll(l, "/home/you", user.Home)
		if i == len(laptop)-1 {
			l += " " + shq(remoteScript(strings.Join(server, "\n")+"\n\"$C\" get anthropic"))
		}
		script.WriteString(l + "\n")
	}
	t.Logf("the recipe as run on the laptop:\n%s", script.String())
	env := append(clientEnv(), "CFG="+srv.ClientConfig(user), "LLM_AUTH_SOCK="+a.Sock, "USER="+user.Name)
	run := func() Result { return Run(t, env, "", "sh", "-ec", script.String()) }

	res := run()
	if res.Code != 0 {
		t.Fatalf("the README's -R recipe: exit %d, stderr %q", res.Code, res.Stderr)
	}
	fwdSameSecret(t, "get through the README's -R recipe", strings.TrimSpace(res.Stdout), token)

	// Neither ssh nor sshd expands ~ in the remote path of -R (and the
	// laptop's shell would expand an unquoted one to the laptop's home):
	// the README gives the path in full.
	os.Remove(filepath.Join(user.Home, ".llm-agent", "sock"))
	tilde := Run(t, env, "", "ssh", "-F", srv.ClientConfig(user), "-o", "ExitOnForwardFailure=yes",
		"-R", "~/.llm-agent/tilde.sock:"+a.Sock, "gpu1", remoteScript(`LLM_AUTH_SOCK=~/.llm-agent/tilde.sock "$C" get anthropic`))
	t.Logf("-R '~/.llm-agent/tilde.sock:...': exit %d, stderr %q", tilde.Code, strings.TrimSpace(tilde.Stderr))
	if tilde.Code == 0 || !strings.Contains(tilde.Stderr, "remote port forwarding failed for listen path ~/") {
		t.Errorf("-R with ~ in the remote path: exit %d, stderr %q; this OpenSSH expands ~ there, and README.md says it does not", tilde.Code, tilde.Stderr)
	}

	// The remote socket path the recipe forwards to, as sshd saw it.
	m := regexp.MustCompile(`-R\s+(\S+?):\$LLM_AUTH_SOCK`).FindStringSubmatch(laptop[len(laptop)-1])
	if m == nil {
		t.Fatalf("no -R PATH:$LLM_AUTH_SOCK in %q", laptop[len(laptop)-1])
	}
	remote := strings.NewReplacer("/home/you", user.Home, "$USER", user.Name).Replace(m[1])
	// OpenSSH leaves the socket file behind (StreamLocalBindUnlink no).
	os.Remove(remote)
	// Another user's agent at that path (moved there by root: in the
	// recipe's private directory no other user can create it, in /tmp any
	// user can).
	planted := filepath.Join(plantedDir(t), "planted.sock")
	log := plantedFakeAgent(t, mallory.Cred(), planted, "LD_PRELOAD")
	if err := os.Rename(planted, remote); err != nil {
		t.Fatal(err)
	}
	res = run()
	t.Logf("with another user's socket at %s: exit %d, stderr %q", remote, res.Code, strings.TrimSpace(res.Stderr))
	if res.Code == 0 || !strings.Contains(res.Stderr, "remote port forwarding failed") {
		t.Errorf("with another user's socket at %s: exit %d, stderr %q; want ssh to stop: remote port forwarding failed", remote, res.Code, res.Stderr)
	}
	if strings.Contains(res.Stdout, "evil.so") || strings.Contains(res.Stdout, token) {
		t.Errorf("with another user's socket at the remote path, the login went on and got a credential")
	}
	if data, _ := os.ReadFile(log); len(data) != 0 {
		t.Errorf("the other user's agent received %q; want nothing", data)
	}
}

// clientEnv is the test's environment without agent variables.
func clientEnv() []string {
	var env []string
	for _, kv := range cleanEnv() {
		if !strings.HasPrefix(kv, "SSH_AUTH_SOCK=") && !strings.HasPrefix(kv, "LLM_AUTH_SOCK=") && !strings.HasPrefix(kv, "USER=") {
			env = append(env, kv)
		}
	}
	return env
}

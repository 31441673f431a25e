package e2e

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/internal/sshtest"
)

// plantedFakeAgent builds internal/e2e/testdata/fakeagent and runs it as cred on
// sock, offering a wellknown credential whose variable is variable. It
// returns the path of the agent's log of what it received.
func plantedFakeAgent(t *testing.T, cred *syscall.Credential, sock, variable string) string {
	t.Helper()
	bin := filepath.Join(bins.Dir, "fakeagent") // a 0755 directory: other users run it
	if _, err := os.Stat(bin); err != nil {
		if out, err := exec.Command("go", "build", "-o", bin, "./testdata/fakeagent").CombinedOutput(); err != nil {
			t.Fatalf("building the fake agent: %v\n%s", err, out)
		}
	}
	logPath := sock + ".log"
	cmd := exec.Command(bin, sock, logPath, variable)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Dir = "/"
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb strings.Builder
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ready := make(chan bool, 1)
	go func() { l, _ := bufio.NewReader(out).ReadString('\n'); ready <- l == "ready\n" }()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("the fake agent did not start: %s", errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the fake agent did not start within 10 s")
	}
	return logPath
}

// plantedDir makes a sticky, world-writable directory, as /tmp is.
func plantedDir(t *testing.T) string {
	var r [4]byte
	rand.Read(r[:])
	dir := filepath.Join(os.TempDir(), "llme2e-plant-"+hex.EncodeToString(r[:]))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o1777)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// TestPlantedAgentSocketRefused: another user plants a socket at the path
// the victim's LLM_AUTH_SOCK (or SSH_AUTH_SOCK) names, serving an agent
// that hands out a wellknown credential for LD_PRELOAD. Every client
// subcommand refuses it with exit 2 and one line naming the socket's
// owner, and sends it nothing: the fake agent sees connects, no request.
func TestPlantedAgentSocketRefused(t *testing.T) {
	sshtest.RequireRoot(t)
	mallory, victim := sshtest.NewUser(t, "llme2e"), sshtest.NewUser(t, "llme2e")
	sock := filepath.Join(plantedDir(t), "llm-victim.sock")
	log := plantedFakeAgent(t, mallory.Cred(), sock, "LD_PRELOAD")
	want := fmt.Sprintf("refusing the agent socket %s: it is served by uid %d (%s), not by you (uid %d) or root; someone else may have planted it",
		sock, mallory.UID, mallory.Name, victim.UID)
	cases := []struct {
		name, envVar string
		args         []string
	}{
		{"get", "LLM_AUTH_SOCK", []string{"get", "evil"}},
		{"get via SSH_AUTH_SOCK", "SSH_AUTH_SOCK", []string{"get", "evil"}},
		{"list", "LLM_AUTH_SOCK", []string{"list"}},
		{"status", "LLM_AUTH_SOCK", []string{"status"}},
		{"exec", "LLM_AUTH_SOCK", []string{"exec", "--", "env"}},
		{"exec via SSH_AUTH_SOCK", "SSH_AUTH_SOCK", []string{"exec", "-p", "evil", "--", "env"}},
		{"proxy", "LLM_AUTH_SOCK", []string{"proxy", "--", "env"}},
		{"guard", "SSH_AUTH_SOCK", []string{"guard", "-D", "--dir", "/nonexistent/llm-guard"}},
	}
	for _, c := range cases {
		env := []string{"PATH=/usr/bin:/bin", c.envVar + "=" + sock}
		res, _ := runAs(t, victim.Cred(), env, "", 30*time.Second, bins.Client, c.args...)
		stderr := strings.TrimSpace(res.Stderr)
		if res.Code != 2 || strings.Count(stderr, "\n") != 0 || !strings.Contains(stderr, want) {
			t.Errorf("%s: exit %d, stderr %q; want exit 2 and one line with %q", c.name, res.Code, stderr, want)
		}
		if strings.Contains(res.Stdout, "evil.so") {
			t.Errorf("%s: the planted agent's credential came out: %q", c.name, res.Stdout)
		}
	}
	data, _ := os.ReadFile(log)
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if l != "connect" {
			t.Errorf("the planted agent received %q; want connects only", l)
		}
	}
	t.Logf("the planted agent saw %d connects and no request", strings.Count(string(data), "connect"))
}

// TestExecRefusesLoaderVariables: an agent of the victim's own uid (so it
// passes the owner check) offers a wellknown credential whose variable
// changes how programs load or run; exec refuses it, naming the variable,
// and runs nothing.
func TestExecRefusesLoaderVariables(t *testing.T) {
	sshtest.RequireRoot(t)
	victim := sshtest.NewUser(t, "llme2e")
	dir := plantedDir(t)
	for i, variable := range []string{"LD_PRELOAD", "NODE_OPTIONS", "BASH_ENV", "PYTHONSTARTUP", "GIT_SSH_COMMAND", "ld_preload_key"} {
		sock := filepath.Join(dir, fmt.Sprintf("own%d.sock", i))
		plantedFakeAgent(t, victim.Cred(), sock, variable)
		env := []string{"PATH=/usr/bin:/bin", "LLM_AUTH_SOCK=" + sock}
		res, _ := runAs(t, victim.Cred(), env, "", 30*time.Second, bins.Client, "exec", "-p", "evil", "--", "env")
		stderr := strings.TrimSpace(res.Stderr)
		if res.Code != 1 || strings.Contains(stderr, "\n") || !strings.Contains(stderr, fmt.Sprintf("refusing to set the variable %q", variable)) {
			t.Errorf("%s: exit %d, stderr %q; want exit 1 and one line refusing the variable", variable, res.Code, stderr)
		}
		if strings.Contains(res.Stdout, "evil.so") {
			t.Errorf("%s: the command ran with the variable set", variable)
		}
	}
}

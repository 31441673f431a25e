package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/llm-agent/llm-agent/internal/sshtest"
)

// requireRoot skips (fails under CI=true) when not root.
func requireRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if ci() {
		t.Fatalf("needs root to %s; CI=true, so this is a failure, not a skip", why)
	}
	t.Skipf("SKIPPED: needs root to %s (euid %d)", why, os.Geteuid())
}

// TestDebInstall installs this machine's .deb with dpkg -i, then: the man
// page opens, both programs run from /usr/bin, and dpkg -r removes it all.
func TestDebInstall(t *testing.T) {
	dir := release(t)
	if runtime.GOOS != "linux" {
		t.Skip("SKIPPED: dpkg -i needs Linux")
	}
	requireRoot(t, "dpkg -i the package")
	needTool(t, "dpkg", "dpkg")
	if out, err := exec.Command("dpkg-query", "-W", "-f", "${Status}", pkgName).Output(); err == nil && strings.Contains(string(out), "installed") {
		t.Fatalf("package %s is installed already (%s); remove it with dpkg -r %s before this test", pkgName, out, pkgName)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("dpkg", "-r", pkgName).CombinedOutput(); err != nil {
			t.Errorf("dpkg -r %s: %v\n%s", pkgName, err, out)
		}
		for p := range wantFiles(allGenerated) {
			if _, err := os.Lstat(p); err == nil {
				t.Errorf("%s is still there after dpkg -r", p)
			}
		}
	})
	output(t, "dpkg", "-i", debPath(dir, runtime.GOARCH))

	listed := output(t, "dpkg", "-L", pkgName)
	for p, mode := range wantFiles(allGenerated) {
		if !strings.Contains(listed, p+"\n") {
			t.Errorf("dpkg -L does not list %s", p)
		}
		st, err := os.Stat(p)
		if err != nil {
			t.Errorf("installed: %v", err)
			continue
		}
		if st.Mode().String() != mode {
			t.Errorf("%s: mode %v, want %s", p, st.Mode(), mode)
		}
		if s := st.Sys().(*syscall.Stat_t); s.Uid != 0 || s.Gid != 0 {
			t.Errorf("%s owned by %d:%d, want root", p, s.Uid, s.Gid)
		}
	}

	t.Run("units", func(t *testing.T) {
		// What systemd would load: the installed units, their ExecStart the
		// installed /usr/bin/llm-agent, man:llm-agent(1) the installed page.
		needTool(t, "systemd-analyze", "systemd")
		cmd := exec.Command("systemd-analyze", "verify", "--user", unitDir+"llm-agent.socket", unitDir+"llm-agent.service")
		cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+t.TempDir(), "SYSTEMD_LOG_COLOR=0")
		if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("systemd-analyze verify --user of the installed units: %v\n%s", err, out)
		}
	})
	t.Run("bash", func(t *testing.T) {
		// bash-completion loads the file named after the command; each
		// must complete both programs.
		for _, name := range []string{"llm-agent", "llm-agent-client"} {
			out := output(t, "bash", "--norc", "--noprofile", "-c", "source "+bashDir+name+" && complete -p llm-agent llm-agent-client")
			if !strings.Contains(out, " llm-agent\n") || !strings.Contains(out, " llm-agent-client\n") {
				t.Errorf("%s%s does not complete both programs: complete -p says\n%s", bashDir, name, out)
			}
		}
	})
	for _, c := range commands {
		t.Run("man/"+c, func(t *testing.T) {
			page := manDir + c + ".1.gz"
			var text string
			if _, err := exec.LookPath("man"); err == nil {
				if w := strings.TrimSpace(output(t, "man", "-w", c)); w != page {
					t.Errorf("man -w %s = %q, want %s", c, w, page)
				}
				text = output(t, "man", "-P", "cat", c)
			} else {
				needTool(t, "mandoc", "mandoc")
				text = output(t, "mandoc", "-T", "utf8", page)
			}
			if !strings.Contains(text, "NAME") || !strings.Contains(text, c) {
				t.Errorf("the man page of %s does not render its NAME section:\n%.400s", c, text)
			}
		})
		t.Run("run/"+c, func(t *testing.T) {
			// --help with no agent about: it must run, not find one.
			cmd := exec.Command(binPrefix+c, "--help")
			cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s%s --help: %v\n%s", binPrefix, c, err, out)
			}
			if !strings.Contains(string(out), "usage: "+c) {
				t.Errorf("%s%s --help printed no usage:\n%s", binPrefix, c, out)
			}
		})
	}
}

// TestInstallClient runs the release's one-line server install,
// "sh install-client.sh [ssh options] HOST", against a real sshd and a fresh
// user with no Go: the linux client of the server's architecture lands in
// ~/.local/bin, mode 0755, owned by the user, and runs there; a server that
// reports another system or architecture is refused with one line and
// nothing written.
func TestInstallClient(t *testing.T) {
	dir := release(t)
	sshtest.RequireRoot(t)
	if runtime.GOOS != "linux" {
		t.Skip("SKIPPED: the test server is this machine, which must be Linux")
	}
	srv := sshtest.Start(t, sshtest.Options{Name: "relsrv"})
	u := sshtest.NewUser(t, "rel")
	remote := func(t *testing.T, cmdline string) (string, error) {
		t.Helper()
		cmd := srv.SSH(u, nil, cmdline)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Logf("ssh %s: %v: %s", cmdline, err, stderr.String())
		}
		return string(out), err
	}
	if out, err := remote(t, "command -v go || echo no go"); err != nil || strings.TrimSpace(out) != "no go" {
		t.Fatalf("the test user must have no go in its PATH; command -v go: %q", out)
	}
	install := func(t *testing.T) (string, error) {
		t.Helper()
		cmd := exec.Command("sh", filepath.Join(dir, "install-client.sh"), "-F", srv.ClientConfig(u), srv.Name)
		cmd.Env = append(clientEnv(), "HOME="+t.TempDir())
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	bashrc := filepath.Join(u.Home, ".bashrc")
	orig, err := os.ReadFile(bashrc)
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(u.Home, ".local", "bin", "llm-agent-client")

	// bash reads ~/.bashrc for commands run by sshd (Debian's bash does;
	// checked below), so a function there is what "uname" means to ssh.
	for _, tc := range []struct{ name, uname, shown string }{
		{"riscv64", "Linux riscv64", `"Linux riscv64"`},
		{"darwin", "Darwin arm64", `"Darwin arm64"`},
		{"banner_first", "Welcome!\nLinux x86_64", `"Welcome!?Linux x86_64"`},
		{"empty", "", `""`},
	} {
		t.Run("refuses/"+tc.name, func(t *testing.T) {
			fake := "uname() { printf '%s\\n' '" + strings.ReplaceAll(tc.uname, "\n", "' '") + "'; }\n"
			if tc.uname == "" {
				fake = "uname() { :; }\n"
			}
			if err := os.WriteFile(bashrc, append([]byte(fake), orig...), 0o644); err != nil {
				t.Fatal(err)
			}
			defer os.WriteFile(bashrc, orig, 0o644)
			if got, _ := remote(t, "uname -sm"); strings.TrimRight(got, "\n") != tc.uname {
				t.Fatalf("the stand-in uname was not used (got %q): this sshd's bash does not read ~/.bashrc", got)
			}
			out, err := install(t)
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
				t.Fatalf("want exit 1, got %v:\n%s", err, out)
			}
			if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 1 || !strings.Contains(out, tc.shown) {
				t.Errorf("want one line naming %s, got:\n%s", tc.shown, out)
			}
			if _, err := os.Lstat(filepath.Dir(dest)); err == nil {
				t.Errorf("%s was created for a refused server", filepath.Dir(dest))
			}
		})
	}

	out, err := install(t)
	if err != nil {
		t.Fatalf("install-client.sh: %v\n%s", err, out)
	}
	t.Logf("install-client.sh said: %s", out)
	checkInstalled := func(t *testing.T) uint64 {
		t.Helper()
		st, err := os.Stat(dest)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().String() != "-rwxr-xr-x" {
			t.Errorf("mode %v, want -rwxr-xr-x", st.Mode())
		}
		s := st.Sys().(*syscall.Stat_t)
		if int(s.Uid) != u.UID || int(s.Gid) != u.GID {
			t.Errorf("owned by %d:%d, want the user's %d:%d", s.Uid, s.Gid, u.UID, u.GID)
		}
		got, err := os.ReadFile(dest)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(dir, binDir(testVersion, target{"linux", runtime.GOARCH}), "llm-agent-client"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is not the release's linux/%s client", dest, runtime.GOARCH)
		}
		left, _ := filepath.Glob(filepath.Join(filepath.Dir(dest), ".llm-agent-client.*"))
		if len(left) > 0 {
			t.Errorf("temporary files left: %v", left)
		}
		return s.Ino
	}
	ino := checkInstalled(t)
	if out, err := remote(t, "~/.local/bin/llm-agent-client --help"); err != nil || !strings.Contains(out, "usage: llm-agent-client") {
		t.Errorf("~/.local/bin/llm-agent-client --help as the user: %v\n%s", err, out)
	}
	// A login shell finds it by name: Debian's ~/.profile puts an existing
	// ~/.local/bin in PATH.
	if out, _ := remote(t, "bash -lc 'command -v llm-agent-client'"); strings.TrimSpace(out) != dest {
		t.Errorf("a login shell finds llm-agent-client at %q, want %s", strings.TrimSpace(out), dest)
	}

	// Again, as an upgrade would: a new file renamed over the old one (a
	// client still running keeps its file; writing in place would fail with
	// "text file busy").
	if out, err := install(t); err != nil {
		t.Fatalf("second install-client.sh: %v\n%s", err, out)
	}
	if checkInstalled(t) == ino {
		t.Errorf("the second install wrote into the old file (same inode) rather than renaming a new one over it")
	}
}

// clientEnv is the test's environment without an ssh agent.
func clientEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "SSH_AUTH_SOCK=") || strings.HasPrefix(kv, "SSH_AGENT_PID=") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// TestInstallClientUsage: without a host the script says how to call it
// and exits 2, as ssh does, without running ssh.
func TestInstallClientUsage(t *testing.T) {
	script := filepath.Join(t.TempDir(), "install-client.sh")
	if err := os.WriteFile(script, []byte(installScript), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", script)
	cmd.Env = []string{"PATH=" + t.TempDir()} // no ssh to run
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("want exit 2, got %v:\n%s", err, out)
	}
	if string(out) != "usage: sh install-client.sh [ssh options] HOST\n" {
		t.Errorf("got %q", out)
	}
}

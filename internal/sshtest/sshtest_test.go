package sshtest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/crypto/ssh"
)

// fakeTB records Skipf/Fatalf instead of stopping the goroutine.
type fakeTB struct {
	testing.TB // nil: any other method panics
	skipped    bool
	failed     bool
	msg        string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skipped, f.msg = true, fmt.Sprintf(format, args...)
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed, f.msg = true, fmt.Sprintf(format, args...)
}

func TestRequireRootPolicy(t *testing.T) {
	for _, tc := range []struct {
		name        string
		euid        int
		ci          string
		skip, fatal bool
	}{
		{"root", 0, "", false, false},
		{"root in CI", 0, "true", false, false},
		{"user", 1000, "", true, false},
		{"user CI=false", 1000, "false", true, false},
		{"user CI=1", 1000, "1", true, false},
		{"user in CI", 1000, "true", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeTB{}
			requireRoot(f, tc.euid, tc.ci)
			if f.skipped != tc.skip || f.failed != tc.fatal {
				t.Fatalf("skipped=%v failed=%v, want skipped=%v failed=%v (msg %q)", f.skipped, f.failed, tc.skip, tc.fatal, f.msg)
			}
			if (f.skipped || f.failed) && !strings.Contains(f.msg, "needs root to create users, run sshd or act as other uids") {
				t.Errorf("message %q does not say why root is needed", f.msg)
			}
		})
	}
}

func TestKnownHostsLine(t *testing.T) {
	_, pub, err := newEd25519("test")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Name: "hostA", HostKey: pub}
	for _, tc := range []struct {
		aliases []string
		want    []string
	}{
		{nil, []string{"hostA"}},
		{[]string{"other"}, []string{"other"}},
		{[]string{"x", "[127.0.0.1]:2222"}, []string{"x", "[127.0.0.1]:2222"}},
	} {
		line := s.KnownHostsLine(tc.aliases...)
		_, hosts, key, _, _, err := ssh.ParseKnownHosts([]byte(line))
		if err != nil {
			t.Fatalf("KnownHostsLine(%q) = %q: %v", tc.aliases, line, err)
		}
		if strings.Join(hosts, " ") != strings.Join(tc.want, " ") || !bytes.Equal(key.Marshal(), pub.Marshal()) {
			t.Errorf("KnownHostsLine(%q) = %q: hosts %q, want %q (or key differs)", tc.aliases, line, hosts, tc.want)
		}
	}
}

func TestSSHDConfigExtra(t *testing.T) {
	s := &Server{Port: 2222}
	for _, tc := range []struct {
		name  string
		extra []string
		// want lists lines in the order they must appear.
		want []string
	}{
		{"override goes first", []string{"LogLevel DEBUG3"}, []string{"LogLevel DEBUG3", "LogLevel DEBUG1"}},
		{"match goes last", []string{"MaxSessions 3", "Match User x", "  AllowAgentForwarding no"},
			[]string{"MaxSessions 3", "ListenAddress 127.0.0.1:2222", "StreamLocalBindUnlink no", "Match User x", "  AllowAgentForwarding no"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := s.sshdConfig("/k", nil, tc.extra)
			pos := -1
			for _, w := range tc.want {
				i := strings.Index(cfg, w+"\n")
				if i <= pos {
					t.Fatalf("%q missing or out of order in\n%s", w, cfg)
				}
				pos = i
			}
		})
	}
}

// TestBindConflict checks that a port taken by another sshd is detected
// as a bind failure (which Start retries) and not mistaken for readiness
// because the other server answers with a banner.
func TestBindConflict(t *testing.T) {
	RequireRoot(t)
	first := Start(t, Options{Name: "first"})
	sshd, err := lookPath("sshd", "/usr/sbin/sshd")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := &Server{
		Name:       "second",
		Port:       first.Port,
		Addr:       first.Addr,
		Dir:        dir,
		LogPath:    filepath.Join(dir, "sshd.log"),
		t:          t,
		configPath: filepath.Join(dir, "sshd_config"),
	}
	cfg := s.sshdConfig(filepath.Join(first.Dir, "ssh_host_ed25519_key"), nil, nil)
	if err := os.WriteFile(s.configPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	err = s.launch(sshd)
	if !errors.Is(err, errBind) {
		t.Fatalf("launch on a taken port: got %v, want errBind\n%s", err, s.LogTail(10))
	}
	t.Logf("got, as expected: %v", err)
}

// run runs cmd and returns its stdout; on failure it fails t with stderr
// and the tails of the servers' logs.
func run(t *testing.T, cmd *exec.Cmd, servers ...*Server) string {
	t.Helper()
	out, stderr, err := runErr(cmd)
	if err != nil {
		var logs strings.Builder
		for _, s := range servers {
			fmt.Fprintf(&logs, "\n--- tail of %s's sshd log ---\n%s", s.Name, s.LogTail(30))
		}
		t.Fatalf("%s: %v\nstdout: %s\nstderr: %s%s", strings.Join(cmd.Args, " "), err, out, stderr, logs.String())
	}
	return out
}

func runErr(cmd *exec.Cmd) (stdout, stderr string, err error) {
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// startAgent runs a real ssh-agent on a short socket path (sun_path is
// limited to 108 bytes). With withKey it holds one fresh key whose
// fingerprint is returned; otherwise it is empty (a decoy).
func startAgent(t *testing.T, withKey bool) (sock, fingerprint string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "sshtest-agent-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock = filepath.Join(dir, "agent.sock")
	StartSSHAgent(t, sock, nil, nil)
	if !withKey {
		return sock, ""
	}

	priv, pub, err := newEd25519("laptop-agent-key")
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, "key")
	if err := os.WriteFile(keyPath, priv, 0o600); err != nil {
		t.Fatal(err)
	}
	add := exec.Command("ssh-add", keyPath)
	add.Env = append(clientEnv(), "SSH_AUTH_SOCK="+sock)
	run(t, add)
	return sock, ssh.FingerprintSHA256(pub)
}

// liveProcesses lists the non-zombie processes whose real uid is uid.
func liveProcesses(t *testing.T, uid int) []string {
	t.Helper()
	out, err := exec.Command("pgrep", "-U", strconv.Itoa(uid)).Output()
	if err != nil {
		return nil // exit 1: none
	}
	var live []string
	for _, pid := range strings.Fields(string(out)) {
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		// The state follows the parenthesised command name.
		if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			continue
		}
		live = append(live, strings.TrimSpace(string(stat)))
	}
	return live
}

// auditBlocker explains, if it can, why this machine cannot give logins
// an audit session: no kernel audit support, no CAP_AUDIT_CONTROL, or a
// user namespace (pam_loginuid ignores failures there). "" means nothing
// is in the way, so unset ids would be the harness's fault.
func auditBlocker() string {
	if _, err := os.Stat("/proc/self/sessionid"); err != nil {
		return fmt.Sprintf("kernel without audit support (CONFIG_AUDIT): %v", err)
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return fmt.Sprintf("cannot read /proc/self/status: %v", err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if hex, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			const capAuditControl = 30
			if err != nil || caps&(1<<capAuditControl) == 0 {
				return "test process (and so sshd) lacks CAP_AUDIT_CONTROL, so pam_loginuid cannot set loginuid; CapEff:" + hex
			}
		}
	}
	if m, err := os.ReadFile("/proc/self/uid_map"); err == nil && strings.Join(strings.Fields(string(m)), " ") != "0 0 4294967295" {
		return fmt.Sprintf("running in a user namespace (uid_map %q); pam_loginuid ignores loginuid write failures there", strings.TrimSpace(string(m)))
	}
	return ""
}

// TestEndToEnd proves the harness against the real OpenSSH: logins, strict
// host keys, agent forwarding both ways, hopping, and audit sessions.
func TestEndToEnd(t *testing.T) {
	RequireRoot(t)
	u := NewUser(t, "lat")
	a := Start(t, Options{Name: "hostA"})
	b := Start(t, Options{Name: "hostB"})
	sock, fp := startAgent(t, true)
	decoy, _ := startAgent(t, false)

	t.Run("effective sshd config", func(t *testing.T) {
		sshd, err := lookPath("sshd", "/usr/sbin/sshd")
		if err != nil {
			t.Fatal(err)
		}
		out := run(t, exec.Command(sshd, "-T", "-f", a.configPath), a)
		got := make(map[string]string)
		for _, line := range strings.Split(out, "\n") {
			k, v, _ := strings.Cut(line, " ")
			got[k] = v
		}
		for k, want := range map[string]string{
			"usepam":                       "yes",
			"passwordauthentication":       "no",
			"kbdinteractiveauthentication": "no",
			"pubkeyauthentication":         "yes",
			"allowagentforwarding":         "yes",
			"allowstreamlocalforwarding":   "yes",
			"allowtcpforwarding":           "yes",
			"streamlocalbindunlink":        "no",
			"pidfile":                      "none",
			"loglevel":                     "DEBUG", // sshd -T's name for DEBUG1
			"listenaddress":                a.Addr,
		} {
			if got[k] != want {
				t.Errorf("sshd -T: %s = %q, want %q", k, got[k], want)
			}
		}
	})

	t.Run("login", func(t *testing.T) {
		for _, s := range []*Server{a, b} {
			out := run(t, s.SSH(u, nil, `id -un; echo "$HOME"`), s)
			if want := u.Name + "\n" + u.Home + "\n"; out != want {
				t.Errorf("%s: got %q, want %q", s.Name, out, want)
			}
		}
	})

	t.Run("host keys differ", func(t *testing.T) {
		if bytes.Equal(a.HostKey.Marshal(), b.HostKey.Marshal()) {
			t.Fatal("hostA and hostB have the same host key")
		}
		if a.KnownHostsFile() == b.KnownHostsFile() {
			t.Fatal("servers share a known_hosts file; documented as one per server")
		}
	})

	t.Run("strict host key checking", func(t *testing.T) {
		// hostA's config and known_hosts, but hostB's port: must refuse.
		cmd := a.SSH(u, []string{"-o", "Port=" + strconv.Itoa(b.Port)}, "true")
		_, stderr, err := runErr(cmd)
		if err == nil {
			t.Fatal("ssh accepted hostB's host key under alias hostA")
		}
		if !strings.Contains(stderr, "Host key verification failed") {
			t.Errorf("want host key verification failure, got %v: %s", err, stderr)
		}
	})

	// OpenSSH 9.2's ssh only forwards an agent if SSH_AUTH_SOCK in its own
	// environment reaches a live agent (check_agent_present), even when
	// ForwardAgent names another socket; then it forwards that socket.
	t.Run("agent forwarding", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			args []string
			env  string // SSH_AUTH_SOCK for the laptop ssh, if any
		}{
			{"ForwardAgent=path, decoy SSH_AUTH_SOCK", []string{"-o", "ForwardAgent=" + sock}, decoy},
			{"ForwardAgent=path, same SSH_AUTH_SOCK", []string{"-o", "ForwardAgent=" + sock}, sock},
			{"IdentityAgent=path ForwardAgent=yes", []string{"-o", "IdentityAgent=" + sock, "-o", "ForwardAgent=yes"}, ""},
			{"-A with SSH_AUTH_SOCK", []string{"-A"}, sock},
		} {
			t.Run(tc.name, func(t *testing.T) {
				cmd := a.SSH(u, tc.args, `ssh-add -l; echo "$SSH_AUTH_SOCK"`)
				if tc.env != "" {
					cmd.Env = append(cmd.Env, "SSH_AUTH_SOCK="+tc.env)
				}
				out := run(t, cmd, a)
				if !strings.Contains(out, fp) {
					t.Errorf("forwarded agent does not list %s:\n%s", fp, out)
				}
				lines := strings.Split(strings.TrimSpace(out), "\n")
				if remote := lines[len(lines)-1]; !strings.HasPrefix(remote, "/tmp/ssh-") {
					t.Errorf("remote SSH_AUTH_SOCK = %q, want sshd's /tmp/ssh-*/agent.* socket", remote)
				}
			})
		}
		t.Run("ForwardAgent=path, no SSH_AUTH_SOCK", func(t *testing.T) {
			// Not asserted: this is OpenSSH's behaviour, not the harness's.
			out, stderr, err := runErr(a.SSH(u, []string{"-o", "ForwardAgent=" + sock}, `echo "$SSH_AUTH_SOCK"`))
			if err != nil {
				t.Fatalf("ssh: %v: %s", err, stderr)
			}
			if strings.TrimSpace(out) == "" {
				t.Logf("as expected for OpenSSH 9.2: ForwardAgent=%s is silently dropped without a live SSH_AUTH_SOCK", sock)
			} else {
				t.Logf("this ssh forwards ForwardAgent=path without SSH_AUTH_SOCK (remote socket %s)", strings.TrimSpace(out))
			}
		})
	})

	t.Run("RemoteForward socket", func(t *testing.T) {
		suffix, err := randHex(4)
		if err != nil {
			t.Fatal(err)
		}
		remote := "/tmp/sshtest-" + suffix + ".sock"
		t.Cleanup(func() { os.Remove(remote) })
		fwd := []string{"-o", "ExitOnForwardFailure=yes", "-R", remote + ":" + sock}
		out := run(t, a.SSH(u, fwd, "SSH_AUTH_SOCK="+remote, "ssh-add -l"), a)
		if !strings.Contains(out, fp) {
			t.Errorf("agent via -R does not list %s:\n%s", fp, out)
		}
		// StreamLocalBindUnlink no: the socket stays behind and blocks a
		// second forward to the same path.
		fi, err := os.Lstat(remote)
		if err != nil {
			t.Fatalf("forwarded socket gone after the session: %v", err)
		}
		if fi.Mode().Type() != os.ModeSocket {
			t.Errorf("%s is %v, want a socket", remote, fi.Mode())
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != u.UID {
			t.Errorf("%s is not owned by %s", remote, u.Name)
		}
		_, stderr, err := runErr(a.SSH(u, fwd, "true"))
		if err == nil {
			t.Errorf("second -R to stale %s succeeded; want failure with StreamLocalBindUnlink no", remote)
		} else if !strings.Contains(stderr, "forwarding failed") {
			t.Errorf("second -R failed for another reason: %v: %s", err, stderr)
		}
	})

	t.Run("hop A to B", func(t *testing.T) {
		a.Trust(u)
		b.Trust(u)
		// The plain hop of the brief: user's own key, host key checked.
		run(t, a.SSH(u, nil, "ssh hostB true"), a, b)
		// The inner ssh forwards the already forwarded laptop agent one hop
		// further.
		inner := `ssh -A hostB 'ssh-add -l; echo "$SSH_CONNECTION"'`
		cmd := a.SSH(u, []string{"-A"}, inner)
		cmd.Env = append(cmd.Env, "SSH_AUTH_SOCK="+sock)
		out := run(t, cmd, a, b)
		if !strings.Contains(out, fp) {
			t.Errorf("agent forwarded over two hops does not list %s:\n%s", fp, out)
		}
		if !strings.Contains(out, " 127.0.0.1 "+strconv.Itoa(b.Port)+"\n") {
			t.Errorf("inner session is not on hostB (port %d):\n%s", b.Port, out)
		}
		// And back by alias.
		run(t, b.SSH(u, nil, "ssh hostA true"), a, b)
	})

	t.Run("user cleanup kills lingering processes", func(t *testing.T) {
		var v *User
		t.Run("inner", func(t *testing.T) {
			v = NewUser(t, "linger")
			run(t, a.SSH(v, nil, "setsid sleep 600 </dev/null >/dev/null 2>&1 &"), a)
			out, err := exec.Command("pgrep", "-U", strconv.Itoa(v.UID), "sleep").Output()
			if err != nil {
				t.Fatalf("no lingering sleep of %s found: %v", v.Name, err)
			}
			t.Logf("lingering process of %s: pid %s", v.Name, strings.TrimSpace(string(out)))
		})
		if v == nil {
			t.Fatal("inner subtest did not create a user")
		}
		if _, err := user.Lookup(v.Name); err == nil {
			t.Errorf("user %s still exists after its test's Cleanup", v.Name)
		}
		if _, err := os.Stat(v.Home); !os.IsNotExist(err) {
			t.Errorf("home %s still there after Cleanup: %v", v.Home, err)
		}
		// Killed processes may linger as zombies until init reaps them;
		// those are dead, so only live ones count.
		if live := liveProcesses(t, v.UID); len(live) > 0 {
			t.Errorf("processes of uid %d survived Cleanup: %v", v.UID, live)
		}
	})

	t.Run("audit session ids", func(t *testing.T) {
		const unset = "4294967295"
		var ids []string
		for i := range 2 {
			out := run(t, a.SSH(u, nil,
				"cat /proc/self/loginuid 2>/dev/null || echo none; echo; cat /proc/self/sessionid 2>/dev/null || echo none"), a)
			f := strings.Fields(out)
			if len(f) != 2 {
				t.Fatalf("login %d: unexpected output %q", i, out)
			}
			loginuid, sessionid := f[0], f[1]
			if loginuid == unset || sessionid == unset || loginuid == "none" || sessionid == "none" {
				if why := auditBlocker(); why != "" {
					t.Skipf("login %d: loginuid=%s sessionid=%s: no audit sessions here: %s", i, loginuid, sessionid, why)
				}
				t.Fatalf("login %d: loginuid=%s sessionid=%s although audit looks usable: pam_loginuid did not run?\n--- sshd log ---\n%s",
					i, loginuid, sessionid, a.LogTail(40))
			}
			if loginuid != strconv.Itoa(u.UID) {
				t.Errorf("login %d: loginuid %s, want uid %d", i, loginuid, u.UID)
			}
			ids = append(ids, sessionid)
		}
		if ids[0] == ids[1] {
			t.Errorf("two logins share audit session id %s", ids[0])
		}
		t.Logf("audit session ids of two logins: %v", ids)
	})
}

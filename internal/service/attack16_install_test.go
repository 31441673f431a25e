package service

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/internal/sshtest"
)

// Attack review of issue #16: --install-service against a unit directory
// someone else prepared, and units for an llm-agent someone else can
// replace.

// safeProgram is an llm-agent only root can replace (the test runs as
// root): a copy of the test binary in a fresh 0755 directory.
func safeProgram(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "llm-agent")
	if err := os.Symlink(exe, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAttack16InstallSymlinkPlanted: a unit file that is a symlink
// planted to another user's file (or to a file not there yet) is never
// written through: without --force the install refuses, with --force the
// link itself is replaced by our own file.
func TestAttack16InstallSymlinkPlanted(t *testing.T) {
	other := sshtest.NewUser(t, "atk16")
	victim := filepath.Join(other.Home, "victim")
	const theirs = "the other user's own file\n"
	if err := os.WriteFile(victim, []byte(theirs), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chown(victim, other.UID, other.GID)
	for _, tt := range []struct {
		name   string
		target string
	}{
		{"to another user's file", victim},
		{"dangling, into another user's home", filepath.Join(other.Home, "not-yet")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			home := t.TempDir()
			target := Target{OS: "linux", Program: safeProgram(t), Home: home}
			dir := filepath.Join(home, ".config", "systemd", "user")
			os.MkdirAll(dir, 0o755)
			unit := filepath.Join(dir, ServiceUnit)
			if err := os.Symlink(tt.target, unit); err != nil {
				t.Fatal(err)
			}
			_, err := Install(target, false)
			exists := tt.target == victim
			if exists && (err == nil || !strings.Contains(err.Error(), "--force")) {
				t.Errorf("without --force: err %v, want a refusal", err)
			}
			if _, err := Install(target, true); err != nil {
				t.Fatalf("--force: %v", err)
			}
			if got, _ := os.ReadFile(victim); string(got) != theirs {
				t.Errorf("wrote through the planted symlink into %s: %q", victim, got)
			}
			if _, err := os.Lstat(filepath.Join(other.Home, "not-yet")); err == nil {
				t.Error("created the dangling symlink's target in the other user's home")
			}
			fi, err := os.Lstat(unit)
			if err != nil || !fi.Mode().IsRegular() {
				t.Fatalf("%s is not our own regular file now: %v %v", unit, fi, err)
			}
			if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != os.Getuid() {
				t.Errorf("%s belongs to uid %d", unit, st.Uid)
			}
		})
	}
}

// TestAttack16InstallFIFO: a unit file that is a FIFO (or a symlink to
// one, or to a device) makes --install-service refuse, not hang reading
// it.
func TestAttack16InstallFIFO(t *testing.T) {
	for _, tt := range []struct {
		name  string
		plant func(t *testing.T, unit string) (unblock func())
	}{
		{"a FIFO", func(t *testing.T, unit string) func() {
			if err := syscall.Mkfifo(unit, 0o644); err != nil {
				t.Fatal(err)
			}
			return func() { openWriter(unit) }
		}},
		{"a symlink to a FIFO", func(t *testing.T, unit string) func() {
			fifo := filepath.Join(t.TempDir(), "fifo")
			if err := syscall.Mkfifo(fifo, 0o644); err != nil {
				t.Fatal(err)
			}
			os.Symlink(fifo, unit)
			return func() { openWriter(fifo) }
		}},
		{"a symlink to /dev/zero", func(t *testing.T, unit string) func() {
			os.Symlink("/dev/zero", unit)
			return func() {}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			home := t.TempDir()
			dir := filepath.Join(home, ".config", "systemd", "user")
			os.MkdirAll(dir, 0o755)
			unblock := tt.plant(t, filepath.Join(dir, ServiceUnit))
			done := make(chan error, 1)
			go func() {
				_, err := Install(Target{OS: "linux", Program: safeProgram(t), Home: home}, false)
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("installed over a file that is not a regular file, without --force")
				}
				t.Logf("refused: %v", err)
			case <-time.After(time.Minute): // a hang, not a timing
				unblock()
				t.Fatal("--install-service hangs reading the planted unit file")
			}
		})
	}
}

// openWriter opens the FIFO at p for writing and closes it, so that a
// reader blocked in open or read returns.
func openWriter(p string) {
	if f, err := os.OpenFile(p, os.O_WRONLY, 0); err == nil {
		f.Close()
	}
}

// TestAttack16InstallOpenUnitDir: a unit directory (or one above it, up
// to the configuration directory) that others can write, or that belongs
// to another user, lets them replace the unit, and with it what runs at
// every login with the owner's credentials: --install-service refuses.
func TestAttack16InstallOpenUnitDir(t *testing.T) {
	other := sshtest.NewUser(t, "atk16")
	for _, tt := range []struct {
		name  string
		setup func(t *testing.T, home string) (configHome, want string)
	}{
		{"unit directory 0777", func(t *testing.T, home string) (string, string) {
			dir := filepath.Join(home, ".config", "systemd", "user")
			os.MkdirAll(dir, 0o755)
			os.Chmod(dir, 0o777)
			return "", dir
		}},
		{"~/.config/systemd 0777", func(t *testing.T, home string) (string, string) {
			dir := filepath.Join(home, ".config", "systemd")
			os.MkdirAll(dir, 0o755)
			os.Chmod(dir, 0o777)
			return "", dir
		}},
		{"~/.config 0777", func(t *testing.T, home string) (string, string) {
			dir := filepath.Join(home, ".config")
			os.MkdirAll(dir, 0o755)
			os.Chmod(dir, 0o777)
			return "", dir
		}},
		{"unit directory of another user, through a symlink", func(t *testing.T, home string) (string, string) {
			theirs := filepath.Join(other.Home, "units")
			os.Mkdir(theirs, 0o755)
			os.Chown(theirs, other.UID, other.GID)
			os.MkdirAll(filepath.Join(home, ".config", "systemd"), 0o755)
			os.Symlink(theirs, filepath.Join(home, ".config", "systemd", "user"))
			return "", "belongs to uid"
		}},
		{"XDG_CONFIG_HOME of another user", func(t *testing.T, home string) (string, string) {
			cfg := filepath.Join(other.Home, "cfg")
			os.Mkdir(cfg, 0o755)
			os.Chown(cfg, other.UID, other.GID)
			return cfg, cfg
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			home := t.TempDir()
			cfg, want := tt.setup(t, home)
			target := Target{OS: "linux", Program: safeProgram(t), Home: home, ConfigHome: cfg}
			r, err := Install(target, false)
			if err == nil {
				t.Fatalf("installed %q; want a refusal naming %q", r.Wrote, want)
			}
			if !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err %q, want one line with %q", err, want)
			}
			files, _ := Files(target)
			for _, f := range files {
				if _, err := os.Lstat(f.Path); err == nil {
					t.Errorf("a refused install wrote %s", f.Path)
				}
			}
		})
	}
	t.Run("a private sticky-free tree installs", func(t *testing.T) {
		home := t.TempDir()
		if _, err := Install(Target{OS: "linux", Program: safeProgram(t), Home: home}, false); err != nil {
			t.Fatal(err)
		}
	})
}

// TestAttack16InstallReplaceableProgram: units that run an llm-agent
// another user can replace (the file, or a directory on its path, is
// writable by others or belongs to another user) would run their code at
// every login: --install-service refuses, and says how to do better.
func TestAttack16InstallReplaceableProgram(t *testing.T) {
	other := sshtest.NewUser(t, "atk16")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	copyExe := func(t *testing.T, p string, mode os.FileMode) {
		t.Helper()
		b, err := os.ReadFile(exe)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
	}
	for _, tt := range []struct {
		name  string
		setup func(t *testing.T) string
		ok    bool
	}{
		{"in a directory others can write (/tmp/x, 0777)", func(t *testing.T) string {
			dir := sshtest.PublicDir(t, 0o777, nil)
			p := filepath.Join(dir, "llm-agent")
			copyExe(t, p, 0o755)
			return p
		}, false},
		{"a file others can write", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "llm-agent")
			copyExe(t, p, 0o777)
			return p
		}, false},
		{"in another user's directory", func(t *testing.T) string {
			dir := sshtest.PublicDir(t, 0o755, other)
			p := filepath.Join(dir, "llm-agent")
			copyExe(t, p, 0o755)
			return p
		}, false},
		{"a file of another user", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "llm-agent")
			copyExe(t, p, 0o755)
			os.Chown(p, other.UID, other.GID)
			return p
		}, false},
		{"a symlink in a safe directory to one others can replace", func(t *testing.T) string {
			dir := sshtest.PublicDir(t, 0o777, nil)
			p := filepath.Join(dir, "llm-agent")
			copyExe(t, p, 0o755)
			link := filepath.Join(t.TempDir(), "llm-agent")
			os.Symlink(p, link)
			return link
		}, false},
		{"in a directory whose parent others can write", func(t *testing.T) string {
			dir := sshtest.PublicDir(t, 0o777, nil)
			sub := filepath.Join(dir, "bin")
			os.Mkdir(sub, 0o755)
			p := filepath.Join(sub, "llm-agent")
			copyExe(t, p, 0o755)
			return p
		}, false},
		{"ours, directly in the sticky /tmp", func(t *testing.T) string {
			dir := sshtest.PublicDir(t, 0o755, nil)
			p := filepath.Join(dir, "llm-agent")
			copyExe(t, p, 0o755)
			return p
		}, true},
		{"ours, in a 0755 directory of ours", func(t *testing.T) string {
			return safeProgram(t)
		}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			program := tt.setup(t)
			home := t.TempDir()
			r, err := Install(Target{OS: "linux", Program: program, Home: home}, false)
			switch {
			case tt.ok && err != nil:
				t.Fatalf("refused a program only its owner can replace: %v", err)
			case !tt.ok && err == nil:
				t.Fatalf("wrote %q: units that run %s, which another user can replace", r.Wrote, program)
			case err != nil && strings.Contains(err.Error(), "\n"):
				t.Errorf("refusal is not one line: %q", err)
			case err != nil:
				t.Logf("refused: %v", err)
			}
		})
	}
}

// TestAttack16ProgramNames: whatever bytes the path of llm-agent holds,
// the printed units either refuse it or name that very file: systemd
// finds the executable (verify), and the plist round-trips through
// plistlib, so that no name adds a directive, an argument or a key.
func TestAttack16ProgramNames(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{
		"llm-agent\nExecStartPre=/bin/evil",
		"llm-agent\r",
		"llm agent -a /tmp/evil.sock",
		"llm-agent;/bin/evil",
		"llm-agent%n%t",
		"llm-agent$HOME${PATH}",
		"llm-agent\u0085x",  // NEL
		"llm-agent\u2028x",  // line separator
		"llm-agent\xffx",    // not UTF-8
		"llm-agent\ufffex",  // not an XML character
		"llm-agent]]><key>", // XML
		"llm-agent&amp;<!--",
	} {
		t.Run(strings.ToValidUTF8(name, "?"), func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, name)
			os.MkdirAll(filepath.Dir(p), 0o755) // a name with a slash
			if err := os.Symlink(exe, p); err != nil {
				t.Fatal(err)
			}
			if svc, err := Systemd(p); err == nil {
				if out, err := verify(t, svc, SystemdSocket()); err != nil || out != "" {
					t.Errorf("systemd does not read ExecStart as %q: %v\n%s", p, err, out)
				}
			}
			text, err := Launchd(p, "/Users/me")
			if err != nil {
				return
			}
			m := readPlist(t, text)
			var args []string
			for _, a := range m["ProgramArguments"].([]any) {
				args = append(args, a.(string))
			}
			if want := []string{p, "-D", "-a", "/Users/me/.llm-agent/agent.sock"}; !slices.Equal(args, want) {
				t.Errorf("plist ProgramArguments %q, want %q", args, want)
			}
		})
	}
}

// TestAttack16PlistHome: a home directory with XML's special characters,
// or characters XML cannot hold, never changes the plist's paths: it is
// refused, or every path comes back exactly.
func TestAttack16PlistHome(t *testing.T) {
	for _, home := range []string{
		"/Users/a]]>b",
		`/Users/"a'`,
		"/Users/<!--x-->",
		"/Users/a&#x41;b",
		"/Users/a\nb",
		"/Users/a\x01b",
		"/Users/a\xffb",
		"/Users/a\ufffeb",
		"/Users/a</string><string>-d",
	} {
		t.Run(strings.ToValidUTF8(home, "?"), func(t *testing.T) {
			text, err := Launchd("/usr/local/bin/llm-agent", home)
			if err != nil {
				t.Logf("refused: %v", err)
				return
			}
			m := readPlist(t, text)
			var args []string
			for _, a := range m["ProgramArguments"].([]any) {
				args = append(args, a.(string))
			}
			if want := []string{"/usr/local/bin/llm-agent", "-D", "-a", LaunchdSock(home)}; !slices.Equal(args, want) {
				t.Errorf("ProgramArguments %q, want %q", args, want)
			}
			if m["StandardOutPath"] != launchdLog(home) || m["StandardErrorPath"] != launchdLog(home) {
				t.Errorf("log paths %q %q, want %q", m["StandardOutPath"], m["StandardErrorPath"], launchdLog(home))
			}
		})
	}
}

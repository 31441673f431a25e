package service

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// envOf is a lookup over a map: a missing key is an unset variable.
func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func TestParseListenEnv(t *testing.T) {
	const self = 4242
	two := FDName + ":" + FDName
	tests := []struct {
		name    string
		env     map[string]string
		ok      bool
		n       int
		wantErr string // substring; "" for no error
	}{
		{"none", map[string]string{}, false, 0, ""},
		{"ours", map[string]string{envPID: "4242", envFDs: "2", envNames: two}, true, 2, ""},
		{"no names (systemd before 227)", map[string]string{envPID: "4242", envFDs: "2"}, true, 2, ""},
		{"other pid", map[string]string{envPID: "4243", envFDs: "2", envNames: two}, false, 0, "names another process"},
		{"pid only", map[string]string{envPID: "4242"}, false, 0, "must both be set"},
		{"fds only", map[string]string{envFDs: "2"}, false, 0, "must both be set"},
		{"names only", map[string]string{envNames: two}, false, 0, "must both be set"},
		{"pid not a number", map[string]string{envPID: "42x", envFDs: "2"}, false, 0, "not a decimal number"},
		{"pid signed", map[string]string{envPID: "+4242", envFDs: "2"}, false, 0, "not a decimal number"},
		{"pid leading zero", map[string]string{envPID: "04242", envFDs: "2"}, false, 0, "not a decimal number"},
		{"pid empty", map[string]string{envPID: "", envFDs: "2"}, false, 0, "not a decimal number"},
		{"pid huge", map[string]string{envPID: "99999999999", envFDs: "2"}, false, 0, "not a decimal number"},
		{"pid over int32", map[string]string{envPID: "4294967295", envFDs: "2"}, false, 0, "more than"},
		{"fds zero", map[string]string{envPID: "4242", envFDs: "0"}, false, 0, "no sockets"},
		{"fds negative", map[string]string{envPID: "4242", envFDs: "-1"}, false, 0, "not a decimal number"},
		{"fds too many", map[string]string{envPID: "4242", envFDs: "65"}, false, 0, "more than 64"},
		{"fds blank", map[string]string{envPID: "4242", envFDs: " 2"}, false, 0, "not a decimal number"},
		{"names short", map[string]string{envPID: "4242", envFDs: "2", envNames: FDName}, false, 0, "names 1 sockets"},
		{"names long", map[string]string{envPID: "4242", envFDs: "1", envNames: two}, false, 0, "names 2 sockets"},
		{"foreign name", map[string]string{envPID: "4242", envFDs: "2", envNames: FDName + ":stored"}, false, 0, `named "stored"`},
		{"empty name", map[string]string{envPID: "4242", envFDs: "1", envNames: ""}, false, 0, `named ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, ok, err := parseListenEnv(envOf(tt.env), self)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if ok != tt.ok || env.n != tt.n {
				t.Fatalf("ok %v n %d, want %v %d", ok, env.n, tt.ok, tt.n)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

// socketDir is a private directory short enough for sun_path (also the
// tests' XDG_RUNTIME_DIR).
func socketDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "svc-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// listenFD listens on path with mode and returns a duplicate fd of the
// listener, as a service manager would pass it.
func listenFD(t *testing.T, path string, mode os.FileMode) int {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	t.Cleanup(func() { l.Close() })
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	f, err := l.File()
	if err != nil {
		t.Fatal(err)
	}
	return rawDup(t, f)
}

// rawDup returns a duplicate of f's fd that no *os.File owns, and closes
// f: take closes the fds it is given, and an *os.File would close the same
// number again when collected, by then perhaps another test's file.
func rawDup(t *testing.T, f *os.File) int {
	t.Helper()
	defer f.Close()
	fd, err := unix.Dup(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	return fd
}

// rawFD is a Unix socket of typ bound to path, not listening.
func rawFD(t *testing.T, path string, typ int) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, typ, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o600)
	return fd
}

func TestTake(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string) (fds []int, want string)
		wantErr string
	}{
		{"ok", func(t *testing.T, dir string) ([]int, string) {
			p := filepath.Join(dir, "agent.sock")
			return []int{listenFD(t, p, 0o600), listenFD(t, p+".admin", 0o600)}, p
		}, ""},
		{"ok, admin first, no -a", func(t *testing.T, dir string) ([]int, string) {
			p := filepath.Join(dir, "agent.sock")
			return []int{listenFD(t, p+".admin", 0o600), listenFD(t, p, 0o600)}, ""
		}, ""},
		{"one socket", func(t *testing.T, dir string) ([]int, string) {
			return []int{listenFD(t, filepath.Join(dir, "agent.sock"), 0o600)}, ""
		}, "want 2 sockets"},
		{"mode 0644", func(t *testing.T, dir string) ([]int, string) {
			p := filepath.Join(dir, "agent.sock")
			return []int{listenFD(t, p, 0o644), listenFD(t, p+".admin", 0o600)}, ""
		}, "want 0600"},
		{"not a pair", func(t *testing.T, dir string) ([]int, string) {
			return []int{listenFD(t, filepath.Join(dir, "a.sock"), 0o600), listenFD(t, filepath.Join(dir, "b.sock"), 0o600)}, ""
		}, "want PATH and PATH.admin"},
		{"-a elsewhere", func(t *testing.T, dir string) ([]int, string) {
			p := filepath.Join(dir, "agent.sock")
			return []int{listenFD(t, p, 0o600), listenFD(t, p+".admin", 0o600)}, filepath.Join(dir, "other.sock")
		}, "is not the passed socket"},
		{"not listening", func(t *testing.T, dir string) ([]int, string) {
			p := filepath.Join(dir, "agent.sock")
			return []int{rawFD(t, p, unix.SOCK_STREAM), listenFD(t, p+".admin", 0o600)}, ""
		}, "not listening"},
		{"datagram", func(t *testing.T, dir string) ([]int, string) {
			p := filepath.Join(dir, "agent.sock")
			return []int{rawFD(t, p, unix.SOCK_DGRAM), listenFD(t, p+".admin", 0o600)}, ""
		}, "not a stream socket"},
		{"a file", func(t *testing.T, dir string) ([]int, string) {
			f, err := os.Create(filepath.Join(dir, "file"))
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, "agent.sock")
			return []int{rawDup(t, f), listenFD(t, p+".admin", 0o600)}, ""
		}, "not a socket"},
		{"closed fd", func(t *testing.T, dir string) ([]int, string) {
			p := filepath.Join(dir, "agent.sock")
			admin := listenFD(t, p+".admin", 0o600)
			fd := listenFD(t, p, 0o600)
			unix.Close(fd) // the last one opened: nothing reuses its number
			return []int{fd, admin}, ""
		}, "not open"},
		{"dir writable by others", func(t *testing.T, dir string) ([]int, string) {
			sub := filepath.Join(dir, "open")
			os.Mkdir(sub, 0o777)
			os.Chmod(sub, 0o777)
			p := filepath.Join(sub, "agent.sock")
			return []int{listenFD(t, p, 0o600), listenFD(t, p+".admin", 0o600)}, ""
		}, "writable by group or others"},
		{"socket removed", func(t *testing.T, dir string) ([]int, string) {
			p := filepath.Join(dir, "agent.sock")
			fds := []int{listenFD(t, p, 0o600), listenFD(t, p+".admin", 0o600)}
			os.Remove(p)
			return fds, ""
		}, "which is gone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := socketDir(t)
			fds, want := tt.setup(t, dir)
			s, err := take(fds, want)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				defer s.Use.Close()
				defer s.Admin.Close()
				if s.Path != filepath.Join(dir, "agent.sock") || s.Use.Addr().String() != s.Path || s.Admin.Addr().String() != s.Path+".admin" {
					t.Fatalf("took %s: use %s admin %s", s.Path, s.Use.Addr(), s.Admin.Addr())
				}
				for _, l := range []*net.UnixListener{s.Use, s.Admin} {
					if !closeOnExec(t, l) {
						t.Errorf("%s: not close-on-exec", l.Addr())
					}
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want one line with %q", err, tt.wantErr)
			}
		})
	}
}

// TestFromEnvUnsets: whatever the variables say, FromEnv leaves none of
// them for children.
func TestFromEnvUnsets(t *testing.T) {
	for _, env := range []map[string]string{
		{envPID: "1", envFDs: "2", envNames: FDName + ":" + FDName},
		{envPID: "1"},
		{envNames: "x"},
	} {
		for k, v := range env {
			t.Setenv(k, v)
		}
		if _, err := FromEnv(""); err == nil {
			t.Errorf("FromEnv with %v: no error", env)
		}
		for _, k := range []string{envPID, envFDs, envNames} {
			if v, ok := os.LookupEnv(k); ok {
				t.Errorf("FromEnv with %v left %s=%s", env, k, v)
			}
		}
	}
}

// closeOnExec reports whether l's fd has FD_CLOEXEC.
func closeOnExec(t *testing.T, l *net.UnixListener) bool {
	t.Helper()
	rc, err := l.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var flags int
	rc.Control(func(fd uintptr) { flags, err = unix.FcntlInt(fd, unix.F_GETFD, 0) })
	if err != nil {
		t.Fatal(err)
	}
	return flags&unix.FD_CLOEXEC != 0
}

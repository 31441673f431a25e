package service

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/llm-agent/llm-agent/internal/agenttest"
	"github.com/llm-agent/llm-agent/internal/sshtest"
)

// Attack review of issue #16: are the sockets the agent inherits the
// owner's, and does it serve where the user thinks?

// TestAttack16ListenEnv: odd LISTEN_ values a tool or a stale shell may
// leave are refused in one line, never taken.
func TestAttack16ListenEnv(t *testing.T) {
	const self = 4242
	two := FDName + ":" + FDName
	for _, tt := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"LISTEN_PID of the parent (a shell of a service)", map[string]string{envPID: "4241", envFDs: "2", envNames: two}, "names another process"},
		{"LISTEN_PID 0", map[string]string{envPID: "0", envFDs: "2"}, "names another process"},
		{"LISTEN_PID negative", map[string]string{envPID: "-4242", envFDs: "2"}, "not a decimal number"},
		{"LISTEN_PID hex", map[string]string{envPID: "0x1092", envFDs: "2"}, "not a decimal number"},
		{"LISTEN_PID wrapping to self mod 2^32", map[string]string{envPID: strconv.FormatInt(1<<32+self, 10), envFDs: "2"}, "more than"},
		{"LISTEN_PID Arabic-Indic digits", map[string]string{envPID: "٤٢٤٢", envFDs: "2"}, "not a decimal number"},
		{"LISTEN_PID trailing newline", map[string]string{envPID: "4242\n", envFDs: "2"}, "not a decimal number"},
		{"LISTEN_FDS exported by a tool, no LISTEN_PID", map[string]string{envFDs: "2"}, "must both be set"},
		{"LISTEN_FDS overflowing int64", map[string]string{envPID: "4242", envFDs: "18446744073709551618"}, "not a decimal number"},
		{"LISTEN_FDS overflowing int32", map[string]string{envPID: "4242", envFDs: "4294967298"}, "more than 64"},
		{"LISTEN_FDS negative zero", map[string]string{envPID: "4242", envFDs: "-0"}, "not a decimal number"},
		{"LISTEN_FDS plus sign", map[string]string{envPID: "4242", envFDs: "+2"}, "not a decimal number"},
		{"LISTEN_FDS 2147483647", map[string]string{envPID: "4242", envFDs: "2147483647"}, "more than 64"},
		{"names with an empty one between", map[string]string{envPID: "4242", envFDs: "3", envNames: FDName + "::" + FDName}, `named ""`},
		{"names with a trailing colon", map[string]string{envPID: "4242", envFDs: "2", envNames: FDName + ":"}, `named ""`},
		{"names with a leading colon", map[string]string{envPID: "4242", envFDs: "2", envNames: ":" + FDName}, `named ""`},
		{"names only colons", map[string]string{envPID: "4242", envFDs: "2", envNames: ":"}, `named ""`},
		{"a name with our name as prefix", map[string]string{envPID: "4242", envFDs: "2", envNames: FDName + ":" + FDName + "x"}, `named "llm-agentx"`},
		{"a name with a newline", map[string]string{envPID: "4242", envFDs: "2", envNames: FDName + ":" + FDName + "\n"}, "not \"llm-agent\""},
		{"a very long name", map[string]string{envPID: "4242", envFDs: "2", envNames: FDName + ":" + strings.Repeat("x", 5000)}, "..."},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, ok, err := parseListenEnv(envOf(tt.env), self)
			if ok || err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") || len(err.Error()) > 400 {
				t.Fatalf("ok %v err %q; want a short one-line refusal with %q", ok, err, tt.want)
			}
		})
	}
}

// takeDups is take on duplicates of fds, so that the fds stay their
// owners' to close (take closes what it takes; a double close would hit a
// number reused elsewhere), and the duplicates are closed on a refusal.
func takeDups(t *testing.T, fds []int, want string) (*Sockets, error) {
	t.Helper()
	dups := make([]int, len(fds))
	for i, fd := range fds {
		d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		dups[i] = d
	}
	s, err := take(dups, want)
	if err != nil {
		for _, d := range dups {
			unix.Close(d)
		}
	}
	return s, err
}

// pty opens a pseudo-terminal master: an fd that is a tty.
func pty(t *testing.T) int {
	t.Helper()
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// rawListen is a listening socket of family and type, bound to sa (nil:
// not bound).
func rawListen(t *testing.T, family, typ int, sa unix.Sockaddr) int {
	t.Helper()
	fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if sa != nil {
		if err := unix.Bind(fd, sa); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Listen(fd, 8); err != nil {
		t.Fatal(err)
	}
	return fd
}

// TestAttack16PassedFDs: fds 3 and 4 that are not what they seem. Every
// row passes take a good admin socket (or use socket) beside the odd one,
// so that only the odd one can be the reason for a refusal.
func TestAttack16PassedFDs(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setup func(t *testing.T, dir string) (fds []int, want string)
		err   string
	}{
		{"a pipe", func(t *testing.T, dir string) ([]int, string) {
			var p [2]int
			if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { unix.Close(p[0]); unix.Close(p[1]) })
			return []int{p[0], listenFD(t, filepath.Join(dir, "agent.sock.admin"), 0o600)}, ""
		}, "not a socket"},
		{"a tty", func(t *testing.T, dir string) ([]int, string) {
			return []int{pty(t), listenFD(t, filepath.Join(dir, "agent.sock.admin"), 0o600)}, ""
		}, "not a socket"},
		{"a listening TCP socket", func(t *testing.T, dir string) ([]int, string) {
			fd := rawListen(t, unix.AF_INET, unix.SOCK_STREAM, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}})
			return []int{fd, listenFD(t, filepath.Join(dir, "agent.sock.admin"), 0o600)}, ""
		}, "not a Unix socket bound to an absolute path"},
		{"a listening seqpacket socket at the path", func(t *testing.T, dir string) ([]int, string) {
			p := filepath.Join(dir, "agent.sock")
			fd := rawListen(t, unix.AF_UNIX, unix.SOCK_SEQPACKET, &unix.SockaddrUnix{Name: p})
			os.Chmod(p, 0o600)
			return []int{fd, listenFD(t, p+".admin", 0o600)}, p
		}, "not a stream socket"},
		{"an abstract socket named like the path", func(t *testing.T, dir string) ([]int, string) {
			p := filepath.Join(dir, "agent.sock")
			fd := rawListen(t, unix.AF_UNIX, unix.SOCK_STREAM, &unix.SockaddrUnix{Name: "@" + p})
			return []int{fd, listenFD(t, p+".admin", 0o600)}, p
		}, "not a Unix socket bound to an absolute path"},
		{"an unnamed (autobound) listening socket", func(t *testing.T, dir string) ([]int, string) {
			fd := rawListen(t, unix.AF_UNIX, unix.SOCK_STREAM, &unix.SockaddrUnix{}) // autobind
			return []int{fd, listenFD(t, filepath.Join(dir, "agent.sock.admin"), 0o600)}, ""
		}, "not a Unix socket bound to an absolute path"},
		{"a socket bound to a relative path", func(t *testing.T, dir string) ([]int, string) {
			wd, _ := os.Getwd()
			if err := os.Chdir(dir); err != nil {
				t.Fatal(err)
			}
			defer os.Chdir(wd)
			fd := rawListen(t, unix.AF_UNIX, unix.SOCK_STREAM, &unix.SockaddrUnix{Name: "agent.sock"})
			os.Chmod("agent.sock", 0o600)
			return []int{fd, listenFD(t, filepath.Join(dir, "agent.sock.admin"), 0o600)}, ""
		}, "not a Unix socket bound to an absolute path"},
		{"one end of a socketpair", func(t *testing.T, dir string) ([]int, string) {
			sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { unix.Close(sp[0]); unix.Close(sp[1]) })
			return []int{sp[0], listenFD(t, filepath.Join(dir, "agent.sock.admin"), 0o600)}, ""
		}, "not listening"},
		{"the same listener twice", func(t *testing.T, dir string) ([]int, string) {
			fd := listenFD(t, filepath.Join(dir, "agent.sock"), 0o600)
			return []int{fd, fd}, ""
		}, "want PATH and PATH.admin"},
		{"a socket unlinked and replaced by another of this user", func(t *testing.T, dir string) ([]int, string) {
			p := filepath.Join(dir, "agent.sock")
			stale := listenFD(t, p, 0o600)
			os.Remove(p)
			listenFD(t, p, 0o600) // the socket clients now reach
			return []int{stale, listenFD(t, p+".admin", 0o600)}, p
		}, "replaced"},
		{"both sockets unlinked and replaced", func(t *testing.T, dir string) ([]int, string) {
			p := filepath.Join(dir, "agent.sock")
			stale := []int{listenFD(t, p, 0o600), listenFD(t, p+".admin", 0o600)}
			os.Remove(p)
			os.Remove(p + ".admin")
			listenFD(t, p, 0o600)
			listenFD(t, p+".admin", 0o600)
			return stale, p
		}, "replaced"},
		{"bound through a symlink and .. into a directory others can write", func(t *testing.T, dir string) ([]int, string) {
			open := filepath.Join(dir, "open", "sub")
			os.MkdirAll(open, 0o777)
			os.Chmod(filepath.Dir(open), 0o777)
			os.Symlink(open, filepath.Join(dir, "link"))
			// Lexically the socket is in dir (0700); really it is in
			// dir/open (0777).
			p := filepath.Join(dir, "link") + "/../agent.sock"
			fd := rawListen(t, unix.AF_UNIX, unix.SOCK_STREAM, &unix.SockaddrUnix{Name: p})
			os.Chmod(p, 0o600)
			admin := rawListen(t, unix.AF_UNIX, unix.SOCK_STREAM, &unix.SockaddrUnix{Name: p + ".admin"})
			os.Chmod(p+".admin", 0o600)
			return []int{fd, admin}, ""
		}, "writable by group or others"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fds, want := tt.setup(t, socketDir(t))
			s, err := takeDups(t, fds, want)
			if err == nil {
				s.Use.Close()
				s.Admin.Close()
				t.Fatalf("took them (serving at %s); want a refusal with %q", s.Path, tt.err)
			}
			if !strings.Contains(err.Error(), tt.err) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err %q, want one line with %q", err, tt.err)
			}
		})
	}
}

// grabFD copies fd of process pid into this process (pidfd_getfd: what
// SCM_RIGHTS or inheritance would hand over).
func grabFD(t *testing.T, pid, fd int) int {
	t.Helper()
	pfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Skipf("pidfd_open: %v", err)
	}
	defer unix.Close(pfd)
	got, err := unix.PidfdGetfd(pfd, fd, 0)
	if err != nil {
		t.Skipf("pidfd_getfd: %v", err)
	}
	t.Cleanup(func() { unix.Close(got) })
	return got
}

// listenersOf are the listening Unix sockets of process pid, copied into
// this process, by the path they are bound to.
func listenersOf(t *testing.T, pid int) map[string]int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, n)); !strings.HasPrefix(l, "socket:") {
			continue
		}
		fd := grabFD(t, pid, n)
		if sa, err := unix.Getsockname(fd); err == nil {
			if u, ok := sa.(*unix.SockaddrUnix); ok {
				out[u.Name] = fd
			}
		}
	}
	return out
}

// TestAttack16ForeignSocketSwappedPath: another user (a real second uid)
// binds and listens on a path through a symlink it controls, then points
// the symlink at the owner's real socket directory. Its listening sockets,
// handed to the owner's agent (inherited, or passed with SCM_RIGHTS), must
// be refused: by name they look like the owner's private sockets, but they
// are the other user's, bound to the other user's files.
func TestAttack16ForeignSocketSwappedPath(t *testing.T) {
	activate := need(t, "systemd-socket-activate", "systemd")
	other := sshtest.NewUser(t, "atk16")
	pub := sshtest.PublicDir(t, 0o755, other)
	// The owner's runtime directory, as systemd makes it: mine/llm-agent,
	// 0700, with both sockets 0600.
	mine := socketDir(t)
	if err := os.Mkdir(filepath.Join(mine, "llm-agent"), 0o700); err != nil {
		t.Fatal(err)
	}
	real := filepath.Join(mine, "llm-agent", "agent.sock")
	listenFD(t, real, 0o600)
	listenFD(t, real+".admin", 0o600)

	// The other user's look-alike: pub/link -> pub/theirs, with
	// theirs/llm-agent its own.
	theirs := filepath.Join(pub, "theirs")
	for _, d := range []string{theirs, filepath.Join(theirs, "llm-agent")} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		os.Chown(d, other.UID, other.GID)
	}
	link := filepath.Join(pub, "link")
	if err := os.Symlink(theirs, link); err != nil {
		t.Fatal(err)
	}
	os.Lchown(link, other.UID, other.GID)
	path := filepath.Join(link, "llm-agent", "agent.sock")
	cmd := exec.Command(activate, "-l", path, "-l", path+".admin", "--fdname="+FDName+":"+FDName, "/bin/true")
	cmd.Env = agenttest.CleanEnv()
	cmd.Dir = pub
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: other.Cred()}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var fds map[string]int
	for i := 0; ; i++ {
		if _, err := os.Lstat(filepath.Join(theirs, "llm-agent", "agent.sock.admin")); err == nil {
			if fds = listenersOf(t, cmd.Process.Pid); len(fds) == 2 {
				break
			}
		}
		if i == 3000 { // 30 s: a hang
			t.Fatal("the other user's systemd-socket-activate made no sockets")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Now the name leads to the owner's sockets.
	os.Remove(link)
	if err := os.Symlink(mine, link); err != nil {
		t.Fatal(err)
	}
	use, admin := fds[path], fds[path+".admin"]
	var st unix.Stat_t
	unix.Fstat(use, &st)
	cred, _ := unix.GetsockoptUcred(use, unix.SOL_SOCKET, unix.SO_PEERCRED)
	t.Logf("the other user's listener: inode owner %d, listen(2) by uid %d; the other user is %d", st.Uid, cred.Uid, other.UID)

	s, err := takeDups(t, []int{use, admin}, path)
	if err == nil {
		defer s.Use.Close()
		defer s.Admin.Close()
		t.Fatalf("took another user's listening sockets as %s", s.Path)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("refusal is not one line: %q", err)
	}
	t.Logf("refused: %v", err)

	// The owner's own sockets, in a directory of the other user, are
	// refused too: that user could swap them.
	os.Chmod(theirs, 0o755)
	in := filepath.Join(theirs, "llm-agent", "own.sock")
	s, err = takeDups(t, []int{listenFD(t, in, 0o600), listenFD(t, in+".admin", 0o600)}, in)
	if err == nil || !strings.Contains(err.Error(), "belongs to uid") {
		if s != nil {
			s.Use.Close()
			s.Admin.Close()
		}
		t.Fatalf("sockets in another user's directory: err %v, want a refusal", err)
	}

	// And the owner's own sockets, reached by the same name, still pass.
	var own []int
	for _, p := range []string{real, real + ".admin"} {
		c, err := net.Dial("unix", p) // keeps the test honest: they listen
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	own = append(own, listenFD(t, filepath.Join(mine, "llm-agent", "b.sock"), 0o600), listenFD(t, filepath.Join(mine, "llm-agent", "b.sock.admin"), 0o600))
	s, err = takeDups(t, own, "")
	if err != nil {
		t.Fatalf("the owner's own sockets: %v", err)
	}
	s.Use.Close()
	s.Admin.Close()
}

// FuzzVFSAttr: whatever attributes a unix_diag reply carries, vfsAttr
// never panics, and finds a file only in a whole UNIX_DIAG_VFS attribute.
func FuzzVFSAttr(f *testing.F) {
	vfs := []byte{12, 0, unixDiagVFS, 0, 0x39, 0x30, 0, 0, 0x05, 0, 0x10, 0} // ino 12345, dev 1:5
	if dev, ino, err := vfsAttr(vfs); err != nil || dev != unix.Mkdev(1, 5) || ino != 12345 {
		f.Fatalf("vfsAttr of ino 12345 on 1:5 = %d %d %v", dev, ino, err)
	}
	f.Add(vfs)
	f.Add(append([]byte{8, 0, 4, 0, 1, 2, 3, 4}, vfs...)) // RQLEN first
	f.Add([]byte{5, 0, 4, 0, 1, 0, 0, 0, 12, 0, 1, 0})    // unaligned length
	f.Add([]byte{0, 0, 1, 0})                             // zero length
	f.Add([]byte{255, 255, 1, 0, 0, 0, 0, 0})             // longer than the reply
	f.Add([]byte{8, 0, unixDiagVFS, 0, 1, 0, 0, 0})       // short VFS
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		dev, ino, err := vfsAttr(b)
		if err != nil {
			if dev != 0 || ino != 0 {
				t.Fatalf("error %v with dev %d ino %d", err, dev, ino)
			}
			return
		}
		for off := 0; off+4 <= len(b); {
			l := int(b[off]) | int(b[off+1])<<8
			if l < 4 || off+l > len(b) {
				t.Fatalf("found a file in a malformed reply %x", b)
			}
			if b[off+2] == unixDiagVFS && b[off+3] == 0 && l >= 12 {
				return
			}
			off += (l + 3) &^ 3
		}
		t.Fatalf("found a file in %x, which has no VFS attribute", b)
	})
}

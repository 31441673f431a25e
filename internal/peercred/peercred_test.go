//go:build linux

package peercred

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/llm-agent/llm-agent/internal/sshtest"
)

// Environment switches for TestHelperProcess, the child side of the tests.
const (
	envSocket = "PEERCRED_HELPER_SOCKET"
	envMode   = "PEERCRED_HELPER_MODE"
)

// Distinct ids for the setresuid helper, so that every uid/gid field of
// struct pidfd_info has a value of its own.
const (
	rgid, egid, sgid = 101, 102, 103
	ruid, euid, suid = 201, 202, 203
)

// TestHelperProcess is not a test: the other tests re-exec the test binary
// with envSocket set to run it as a client process.
func TestHelperProcess(t *testing.T) {
	sock := os.Getenv(envSocket)
	if sock == "" {
		return
	}
	switch os.Getenv(envMode) {
	case "sleep":
		time.Sleep(time.Minute)
		os.Exit(0)
	case "exit":
		// Connect and leave at once, before the parent looks at us.
		if _, err := net.Dial("unix", sock); err != nil {
			fmt.Fprintln(os.Stderr, "dial:", err)
			os.Exit(2)
		}
		os.Exit(0)
	case "setresuid":
		// syscall's setres[ug]id apply to all threads of the process.
		if err := syscall.Setresgid(rgid, egid, sgid); err != nil {
			fmt.Fprintln(os.Stderr, "setresgid:", err)
			os.Exit(2)
		}
		if err := syscall.Setresuid(ruid, euid, suid); err != nil {
			fmt.Fprintln(os.Stderr, "setresuid:", err)
			os.Exit(2)
		}
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dial:", err)
		os.Exit(2)
	}
	// Stay connected until the parent hangs up or kills us.
	io.Copy(io.Discard, c)
	os.Exit(0)
}

// listen creates a listener on dir/agent.sock that any uid may connect to.
func listen(t *testing.T, dir string) (*net.UnixListener, string) {
	t.Helper()
	path := filepath.Join(dir, "agent.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	return l, path
}

func accept(t *testing.T, l *net.UnixListener, child *helper) *net.UnixConn {
	t.Helper()
	if err := l.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	c, err := l.AcceptUnix()
	if err != nil {
		if child != nil {
			t.Fatalf("accept: %v; child stderr: %s", err, child.stderr.String())
		}
		t.Fatalf("accept: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

type helper struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	waited bool
}

func (h *helper) pid() int { return h.cmd.Process.Pid }

// killAndReap kills the helper and waits for it.
func (h *helper) killAndReap(t *testing.T) {
	t.Helper()
	if h.waited {
		return
	}
	h.cmd.Process.Kill()
	h.cmd.Wait()
	h.waited = true
}

// startHelper runs the test binary exe as a TestHelperProcess client of sock.
func startHelper(t *testing.T, exe, sock, mode string, cred *syscall.Credential) *helper {
	t.Helper()
	h := &helper{cmd: exec.Command(exe, "-test.run=^TestHelperProcess$", "-test.count=1")}
	h.cmd.Env = append(os.Environ(), envSocket+"="+sock, envMode+"="+mode)
	h.cmd.Dir = filepath.Dir(sock)
	h.cmd.Stderr = &h.stderr
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.killAndReap(t) })
	return h
}

func fromConn(t *testing.T, c *net.UnixConn) *Peer {
	t.Helper()
	p, err := FromConn(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	return p
}

func describe(t *testing.T, p *Peer) Process {
	t.Helper()
	pr, err := p.Describe()
	if err != nil {
		t.Fatalf("Describe: %v (partial: %v)", err, pr)
	}
	return pr
}

func testExe(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// procStatus returns the values of key in /proc/pid/status.
func procStatus(t *testing.T, pid int, key string) []string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	v, ok := statusField(b, key)
	if !ok {
		t.Fatalf("/proc/%d/status: no %s line", pid, key)
	}
	return v
}

func readAuditID(t *testing.T, pid int, name string) uint32 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, name))
	if errors.Is(err, os.ErrNotExist) {
		return AuditUnset // kernel without CONFIG_AUDIT
	}
	if err != nil {
		t.Fatal(err)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(v)
}

// waitExited waits until the process behind pidfd has exited (its whole
// thread group: a leader can be 'Z' while other threads are still dying)
// and checks that it is a zombie, not yet reaped.
func waitExited(t *testing.T, pidfd, pid int) {
	t.Helper()
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 10_000)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || n != 1 {
			t.Fatalf("poll pidfd: n=%d err=%v", n, err)
		}
		break
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	if st, err := parseStat(b); err != nil || st.state != 'Z' {
		t.Fatalf("pid %d: state %q, %v; want zombie", pid, st.state, err)
	}
}

func TestFromConnSelf(t *testing.T) {
	l, sock := listen(t, t.TempDir())
	dialed, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dialed.Close() })
	accepted := accept(t, l, nil)
	exe := testExe(t)

	// Both ends of the connection belong to this process.
	for _, tc := range []struct {
		name string
		conn *net.UnixConn
	}{{"accepted", accepted}, {"dialed", dialed}} {
		t.Run(tc.name, func(t *testing.T) {
			p := fromConn(t, tc.conn)
			want := Cred{UID: uint32(os.Geteuid()), GID: uint32(os.Getegid()), PID: os.Getpid()}
			if p.Cred != want {
				t.Errorf("Cred = %+v, want %+v", p.Cred, want)
			}
			if !p.HasPidfd() {
				t.Fatal("no pidfd from SO_PEERPIDFD (needs Linux 6.5+)")
			}
			pr := describe(t, p)
			t.Logf("%s (verified by %s)", pr, pr.VerifiedBy)
			if !pr.Verified {
				t.Errorf("Verified = false, want true")
			}
			if pr.VerifiedBy != viaGetInfo {
				t.Logf("note: verified by %q, not %s (kernel < 6.13?)", pr.VerifiedBy, viaGetInfo)
			}
			comm, err := os.ReadFile("/proc/self/comm")
			if err != nil {
				t.Fatal(err)
			}
			checks := []struct {
				field     string
				got, want any
			}{
				{"PID", pr.PID, os.Getpid()},
				{"UID", pr.UID, uint32(os.Geteuid())},
				{"Exe", pr.Exe, exe},
				{"Argv0", pr.Argv0, os.Args[0]},
				{"Comm", pr.Comm, strings.TrimSuffix(string(comm), "\n")},
				{"PPID", pr.PPID, os.Getppid()},
				{"LoginUID", pr.LoginUID, readAuditID(t, os.Getpid(), "loginuid")},
				{"SessionID", pr.SessionID, readAuditID(t, os.Getpid(), "sessionid")},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s = %v, want %v", c.field, c.got, c.want)
				}
			}
			if pr.StartTime == 0 {
				t.Error("StartTime = 0")
			}
		})
	}
}

func TestFromConnChild(t *testing.T) {
	l, sock := listen(t, t.TempDir())
	exe := testExe(t)
	child := startHelper(t, exe, sock, "", nil)
	p := fromConn(t, accept(t, l, child))
	pid := child.pid()

	if p.PID != pid || p.UID != uint32(os.Geteuid()) || p.GID != uint32(os.Getegid()) {
		t.Fatalf("Cred = %+v, want pid %d uid %d gid %d", p.Cred, pid, os.Geteuid(), os.Getegid())
	}
	if !p.HasPidfd() {
		t.Fatal("no pidfd from SO_PEERPIDFD")
	}
	first := describe(t, p)
	t.Logf("running: %s (verified by %s)", first, first.VerifiedBy)
	if !first.Verified || first.PID != pid || first.Exe != exe || first.PPID != os.Getpid() {
		t.Fatalf("running child: got %+v, want verified pid %d exe %s ppid %d", first, pid, exe, os.Getpid())
	}

	// Each step moves the child further along; after every step both
	// verification mechanisms must agree on whether it is still the live
	// process that connected.
	steps := []struct {
		name  string
		do    func(t *testing.T)
		alive bool
	}{
		{"running", func(*testing.T) {}, true},
		{"zombie", func(t *testing.T) {
			if err := child.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			waitExited(t, p.pidfd, pid)
		}, false},
		{"reaped", func(t *testing.T) { child.killAndReap(t) }, false},
		{"pid reused", func(t *testing.T) {
			sshtest.RequireRoot(t)
			reuser := reusePid(t, exe, sock, pid)
			pr, err := ProcessOf(pid)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("pid %d now: %s (first start %d, now %d)", pid, pr, first.StartTime, pr.StartTime)
			if pr.PPID != os.Getpid() || reuser.pid() != pid {
				t.Fatalf("pid %d is not our new child: %+v", pid, pr)
			}
		}, false},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			s.do(t)
			pr := describe(t, p)
			t.Logf("%s (verified by %s)", pr, pr.VerifiedBy)
			if pr.Verified != s.alive {
				t.Errorf("Verified = %v, want %v", pr.Verified, s.alive)
			}
			if pr.PID != pid || pr.VerifiedBy == "" {
				t.Errorf("PID = %d VerifiedBy = %q, want %d and a mechanism", pr.PID, pr.VerifiedBy, pid)
			}
			for _, getInfo := range []bool{true, false} {
				alive, method, err := checkPidfdVia(p.pidfd, pid, getInfo)
				if err != nil {
					t.Fatalf("%s: %v", method, err)
				}
				if alive != s.alive {
					t.Errorf("%s: alive = %v, want %v", method, alive, s.alive)
				}
			}
		})
	}
}

// TestFromConnPeerGone asks about a peer that was reaped before FromConn.
func TestFromConnPeerGone(t *testing.T) {
	l, sock := listen(t, t.TempDir())
	child := startHelper(t, testExe(t), sock, "exit", nil)
	conn := accept(t, l, child)
	if err := child.cmd.Wait(); err != nil {
		t.Fatalf("child: %v; stderr: %s", err, child.stderr.String())
	}
	child.waited = true
	p := fromConn(t, conn)
	t.Logf("cred %+v, pidfd %v", p.Cred, p.HasPidfd())
	if p.PID != child.pid() {
		t.Errorf("PID = %d, want %d", p.PID, child.pid())
	}
	pr := describe(t, p)
	t.Logf("%s (verified by %q)", pr, pr.VerifiedBy)
	if pr.Verified || pr.PID != child.pid() {
		t.Errorf("got %+v, want unverified pid %d", pr, child.pid())
	}
}

// reusePid starts a sleeping helper that gets pid, using ns_last_pid (root).
func reusePid(t *testing.T, exe, sock string, pid int) *helper {
	t.Helper()
	for try := 0; try < 20; try++ {
		// Another fork on the system may take the pid first; retry.
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(pid-1)), 0); err != nil {
			t.Skipf("cannot steer pid allocation: %v", err)
		}
		h := startHelper(t, exe, sock, "sleep", nil)
		if h.pid() == pid {
			return h
		}
		h.killAndReap(t)
	}
	t.Skipf("could not get pid %d reused", pid)
	return nil
}

func TestFromConnOtherUID(t *testing.T) {
	sshtest.RequireRoot(t)
	const nobody = 65534
	dir := sshtest.PublicDir(t, 0o755, nil)
	l, sock := listen(t, dir)

	// The go test binary lives in a 0700 directory; nobody needs a copy.
	exe := filepath.Join(dir, "peercred.test")
	src, err := os.ReadFile(testExe(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, src, 0o755); err != nil {
		t.Fatal(err)
	}

	child := startHelper(t, exe, sock, "", &syscall.Credential{Uid: nobody, Gid: nobody})
	p := fromConn(t, accept(t, l, child))
	want := Cred{UID: nobody, GID: nobody, PID: child.pid()}
	if p.Cred != want {
		t.Fatalf("Cred = %+v, want %+v", p.Cred, want)
	}
	pr := describe(t, p)
	t.Logf("%s (verified by %s)", pr, pr.VerifiedBy)
	if !pr.Verified || pr.UID != nobody || pr.Exe != exe || pr.PPID != os.Getpid() {
		t.Errorf("got %+v, want verified uid %d exe %s ppid %d", pr, nobody, exe, os.Getpid())
	}
}

// TestPidfdInfoLayout checks struct pidfd_info and PIDFD_GET_INFO from
// x/sys against include/uapi/linux/pidfd.h and against what the kernel
// reports in /proc/PID/status.
func TestPidfdInfoLayout(t *testing.T) {
	var info unix.PidfdInfo
	offsets := []struct {
		field     string
		got, uapi uintptr
	}{
		{"mask", unsafe.Offsetof(info.Mask), 0},
		{"cgroupid", unsafe.Offsetof(info.Cgroupid), 8},
		{"pid", unsafe.Offsetof(info.Pid), 16},
		{"tgid", unsafe.Offsetof(info.Tgid), 20},
		{"ppid", unsafe.Offsetof(info.Ppid), 24},
		{"ruid", unsafe.Offsetof(info.Ruid), 28},
		{"rgid", unsafe.Offsetof(info.Rgid), 32},
		{"euid", unsafe.Offsetof(info.Euid), 36},
		{"egid", unsafe.Offsetof(info.Egid), 40},
		{"suid", unsafe.Offsetof(info.Suid), 44},
		{"sgid", unsafe.Offsetof(info.Sgid), 48},
		{"fsuid", unsafe.Offsetof(info.Fsuid), 52},
		{"fsgid", unsafe.Offsetof(info.Fsgid), 56},
		{"exit_code", unsafe.Offsetof(info.Exit_code), 60},
		{"coredump_mask", unsafe.Offsetof(info.Coredump_mask), 64},
		{"supported_mask", unsafe.Offsetof(info.Supported_mask), 80},
		{"sizeof", unsafe.Sizeof(info), unix.SizeofPidfdInfo},
		{"PIDFD_INFO_SIZE_VER0", unsafe.Offsetof(info.Coredump_mask), unix.PIDFD_INFO_SIZE_VER0},
	}
	for _, o := range offsets {
		if o.got != o.uapi {
			t.Errorf("offset of %s = %d, uapi says %d", o.field, o.got, o.uapi)
		}
	}
	// _IOWR(PIDFS_IOCTL_MAGIC=0xFF, 11, struct pidfd_info); read|write is
	// 0b11 at bit 30 on most architectures and 0b110 at bit 29 on the
	// others, which is the same number.
	if want := uint32(3<<30 | unsafe.Sizeof(info)<<16 | 0xFF<<8 | 11); unix.PIDFD_GET_INFO != want {
		t.Errorf("PIDFD_GET_INFO = %#x, want %#x", unix.PIDFD_GET_INFO, want)
	}

	self := os.Getpid()
	if _, err := getPidfdInfoFor(t, self); errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) {
		t.Skipf("kernel lacks PIDFD_GET_INFO: %v", err)
	}

	cases := []struct {
		name  string
		setup func(t *testing.T) int
	}{
		{"self", func(*testing.T) int { return self }},
		{"setresuid child", func(t *testing.T) int {
			sshtest.RequireRoot(t)
			l, sock := listen(t, sshtest.PublicDir(t, 0o755, nil))
			child := startHelper(t, testExe(t), sock, "setresuid", nil)
			p := fromConn(t, accept(t, l, child))
			// SO_PEERCRED records the effective ids.
			if want := (Cred{UID: euid, GID: egid, PID: child.pid()}); p.Cred != want {
				t.Errorf("Cred = %+v, want %+v", p.Cred, want)
			}
			return child.pid()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pid := tc.setup(t)
			info, err := getPidfdInfoFor(t, pid)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("pidfd_info: %+v", *info)
			uids := procStatus(t, pid, "Uid")
			gids := procStatus(t, pid, "Gid")
			fields := []struct {
				name string
				got  uint32
				want string
			}{
				{"pid", info.Pid, procStatus(t, pid, "Pid")[0]},
				{"tgid", info.Tgid, procStatus(t, pid, "Tgid")[0]},
				{"ppid", info.Ppid, procStatus(t, pid, "PPid")[0]},
				{"ruid", info.Ruid, uids[0]},
				{"euid", info.Euid, uids[1]},
				{"suid", info.Suid, uids[2]},
				{"fsuid", info.Fsuid, uids[3]},
				{"rgid", info.Rgid, gids[0]},
				{"egid", info.Egid, gids[1]},
				{"sgid", info.Sgid, gids[2]},
				{"fsgid", info.Fsgid, gids[3]},
			}
			for _, f := range fields {
				if strconv.FormatUint(uint64(f.got), 10) != f.want {
					t.Errorf("%s = %d, /proc/%d/status says %s", f.name, f.got, pid, f.want)
				}
			}
			if want := uint64(unix.PIDFD_INFO_PID | unix.PIDFD_INFO_CREDS | unix.PIDFD_INFO_CGROUPID); info.Mask&want != want {
				t.Errorf("mask = %#x, want bits %#x", info.Mask, want)
			}
			if ino, ok := cgroupInode(t, pid); ok && info.Cgroupid != ino {
				t.Errorf("cgroupid = %d, cgroup2 directory inode is %d", info.Cgroupid, ino)
			}
		})
	}

	t.Run("exit code", func(t *testing.T) {
		l, sock := listen(t, t.TempDir())
		child := startHelper(t, testExe(t), sock, "", nil)
		p := fromConn(t, accept(t, l, child))
		child.killAndReap(t)
		info, err := getPidfdInfo(p.pidfd, unix.PIDFD_INFO_EXIT)
		if errors.Is(err, unix.ESRCH) {
			t.Skip("kernel does not keep exit information (< 6.15)")
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("pidfd_info after reap: %+v", *info)
		if info.Mask&unix.PIDFD_INFO_EXIT == 0 {
			t.Fatalf("mask = %#x lacks PIDFD_INFO_EXIT", info.Mask)
		}
		if info.Mask&unix.PIDFD_INFO_PID != 0 {
			t.Errorf("mask = %#x: reaped process still reports PIDFD_INFO_PID", info.Mask)
		}
		// exit_code is the wait status: killed by SIGKILL.
		ws := syscall.WaitStatus(info.Exit_code)
		if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Errorf("exit_code = %#x, want killed by SIGKILL", info.Exit_code)
		}
	})
}

func getPidfdInfoFor(t *testing.T, pid int) (*unix.PidfdInfo, error) {
	t.Helper()
	fd, err := PidfdOpen(pid)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	return getPidfdInfo(fd, unix.PIDFD_INFO_PID|unix.PIDFD_INFO_CREDS|unix.PIDFD_INFO_CGROUPID)
}

// cgroupInode returns the inode of pid's cgroup2 directory, which is the
// cgroup id, if cgroup2 is mounted at /sys/fs/cgroup.
func cgroupInode(t *testing.T, pid int) (uint64, bool) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	path, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "0::")
	if !ok || strings.Contains(path, "\n") {
		return 0, false // cgroup v1 or hybrid
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join("/sys/fs/cgroup", path), &st); err != nil {
		return 0, false
	}
	return st.Ino, true
}

func TestDescribeWithoutPidfd(t *testing.T) {
	l, sock := listen(t, t.TempDir())
	exe := testExe(t)
	child := startHelper(t, exe, sock, "", nil)
	accept(t, l, child)
	// What FromConn returns on kernels without SO_PEERPIDFD.
	p := &Peer{Cred: Cred{UID: uint32(os.Geteuid()), GID: uint32(os.Getegid()), PID: child.pid()}}
	pr := describe(t, p)
	t.Logf("%s", pr)
	if pr.Verified || pr.VerifiedBy != "" || pr.Exe != exe || pr.PPID != os.Getpid() {
		t.Errorf("got %+v, want unverified exe %s ppid %d", pr, exe, os.Getpid())
	}
	child.killAndReap(t)
	pr, err := p.Describe()
	if err != nil || pr.Verified || pr.PID != child.pid() || pr.UID != p.UID {
		t.Errorf("after exit: %+v, %v; want unverified pid %d uid %d and no error", pr, err, child.pid(), p.UID)
	}
}

func TestProcessOf(t *testing.T) {
	maxPid := 1 << 22 // PID_MAX_LIMIT: never a valid pid
	cases := []struct {
		name    string
		pid     int
		wantErr error // nil: success
		check   func(t *testing.T, pr Process)
	}{
		{"self", os.Getpid(), nil, func(t *testing.T, pr Process) {
			if pr.Exe != testExe(t) || pr.PPID != os.Getppid() || pr.Verified {
				t.Errorf("got %+v", pr)
			}
		}},
		{"init", 1, nil, func(t *testing.T, pr Process) {
			if pr.PPID != 0 || pr.Comm == "" {
				t.Errorf("got %+v", pr)
			}
		}},
		{"kernel thread", 2, nil, func(t *testing.T, pr Process) {
			// kthreadd has no exe and an empty cmdline: unknown, not an error.
			if pr.Exe != "" || pr.Argv0 != "" || pr.Comm != "kthreadd" {
				t.Errorf("got %+v", pr)
			}
		}},
		{"missing", maxPid, ErrNoProcess, nil},
		{"zero", 0, errors.New("invalid"), nil},
		{"negative", -1, errors.New("invalid"), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pr, err := ProcessOf(tc.pid)
			t.Logf("%s; err=%v", pr, err)
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatal(err)
			case tc.wantErr == ErrNoProcess && !errors.Is(err, ErrNoProcess):
				t.Fatalf("err = %v, want ErrNoProcess", err)
			case tc.wantErr != nil && err == nil:
				t.Fatalf("no error, want %v", tc.wantErr)
			}
			if tc.check != nil {
				tc.check(t, pr)
			}
		})
	}
}

func TestPidfdOpen(t *testing.T) {
	fd, err := PidfdOpen(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	alive, method, err := checkPidfd(fd, os.Getpid())
	if err != nil || !alive {
		t.Errorf("checkPidfd(self) = %v, %s, %v; want alive", alive, method, err)
	}
	if _, err := PidfdOpen(1 << 22); !errors.Is(err, ErrNoProcess) {
		t.Errorf("PidfdOpen(missing) err = %v, want ErrNoProcess", err)
	}
}

func TestCloseAndDescribe(t *testing.T) {
	l, sock := listen(t, t.TempDir())
	dialed, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer dialed.Close()
	p, err := FromConn(accept(t, l, nil))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { // Close must wait for, not break, a running Describe
		defer close(done)
		for i := 0; i < 100; i++ {
			if _, err := p.Describe(); err != nil && !errors.Is(err, errClosed) {
				t.Error(err)
			}
		}
	}()
	for i := 0; i < 2; i++ {
		if err := p.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	<-done
	if _, err := p.Describe(); !errors.Is(err, errClosed) {
		t.Errorf("Describe after Close: err = %v", err)
	}
	if p.HasPidfd() {
		t.Error("HasPidfd after Close")
	}
	if _, err := FromConn(nil); err == nil {
		t.Error("FromConn(nil) succeeded")
	}
}

func TestParseStat(t *testing.T) {
	// Fields 5 to 21 carry their own number; field 22 (starttime) is 4242.
	tail := " 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 4242 23 24"
	cases := []struct {
		name, in string
		want     statFields
		wantErr  bool
	}{
		{"plain", "123 (sshd) S 77" + tail, statFields{"sshd", 'S', 77, 4242}, false},
		{"hostile comm", "123 (a) R 1 (b) S 9" + tail, statFields{"a) R 1 (b", 'S', 9, 4242}, false},
		{"empty comm", "123 () Z 5" + tail, statFields{"", 'Z', 5, 4242}, false},
		{"no parens", "123 sshd S 77" + tail, statFields{}, true},
		{"short", "123 (sshd) S 77 1 2", statFields{}, true},
		{"bad ppid", "123 (sshd) S x" + tail, statFields{}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStat([]byte(tc.in + "\n"))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

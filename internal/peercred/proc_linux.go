package peercred

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Verification mechanisms, reported in Process.VerifiedBy.
const (
	viaGetInfo = "PIDFD_GET_INFO"
	viaSignal  = "pidfd_send_signal+fdinfo"
)

// Read limits: generous for real data, bounded against hostile processes.
const (
	maxProcFile = 64 << 10
	maxArgv0    = 4096
	maxExe      = 64 << 10
)

// errNoGetInfo means the kernel lacks the PIDFD_GET_INFO ioctl (< 6.13).
var errNoGetInfo = errors.New("PIDFD_GET_INFO not supported")

// ProcessOf describes pid from /proc on a best-effort basis. Nothing ties the
// result to any earlier observation of pid, so Verified is always false. The
// error wraps ErrNoProcess when pid does not exist or exited while being
// read; the returned Process holds whatever was read.
func ProcessOf(pid int) (Process, error) {
	if pid <= 0 {
		return newProcess(pid), fmt.Errorf("peercred: invalid pid %d", pid)
	}
	pr := newProcess(pid)
	if err := readProc(pid, &pr); err != nil {
		return pr, fmt.Errorf("peercred: describe pid %d: %w", pid, err)
	}
	return pr, nil
}

// readProc fills pr from /proc/pid. All files are opened relative to one
// directory fd, which stays bound to the process it was opened for: reads
// after that process is reaped fail with ESRCH instead of describing a newer
// process that got the same pid. The start time is read before and after the
// other fields as a second guard. Fields the kernel does not show us
// (permission, kernel threads, zombies) stay unknown without error.
func readProc(pid int, pr *Process) error {
	dir := "/proc/" + strconv.Itoa(pid)
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return procErr(dir, err)
	}
	defer unix.Close(dfd)

	st, err := readStat(dfd)
	if err != nil {
		return procErr(dir+"/stat", err)
	}
	pr.Comm, pr.PPID, pr.StartTime = st.comm, st.ppid, st.start

	var errs []error
	optional := func(name string, err error) {
		if err != nil && !skippable(err) {
			errs = append(errs, fmt.Errorf("%s/%s: %w", dir, name, err))
		}
	}

	b, err := readFileAt(dfd, "status", maxProcFile)
	if err == nil {
		if uid, ok := statusEUID(b); ok {
			pr.UID = uid
		}
	}
	optional("status", err)

	exe, err := readlinkAt(dfd, "exe")
	if err == nil {
		pr.Exe = exe
		var st unix.Stat_t
		if unix.Fstatat(dfd, "exe", &st, 0) == nil {
			pr.ExeDev, pr.ExeIno = uint64(st.Dev), st.Ino
		}
	}
	optional("exe", err)

	b, err = readFileAt(dfd, "cmdline", maxArgv0)
	if err == nil {
		if i := bytes.IndexByte(b, 0); i >= 0 {
			b = b[:i]
		}
		pr.Argv0 = string(b)
	}
	optional("cmdline", err)

	for _, f := range []struct {
		name string
		dst  *uint32
	}{{"loginuid", &pr.LoginUID}, {"sessionid", &pr.SessionID}} {
		b, err := readFileAt(dfd, f.name, 64)
		if err == nil {
			v, perr := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
			if perr != nil {
				err = perr
			} else {
				*f.dst = uint32(v)
			}
		}
		optional(f.name, err)
	}

	st2, err := readStat(dfd)
	if err != nil {
		return procErr(dir+"/stat", err)
	}
	if st2.start != st.start {
		return fmt.Errorf("%s: start time changed while reading: %w", dir, ErrNoProcess)
	}
	return errors.Join(errs...)
}

// procErr wraps err for path, marking a vanished process with ErrNoProcess.
func procErr(path string, err error) error {
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("%s: %w (%w)", path, ErrNoProcess, err)
	}
	return fmt.Errorf("%s: %w", path, err)
}

// skippable errors leave a field unknown: the process is gone (caught by the
// final stat read), has no such data (kernel thread, zombie), or we may not
// look (ptrace access mode for exe).
func skippable(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) ||
		errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM)
}

type statFields struct {
	comm  string
	state byte
	ppid  int
	start uint64
}

func readStat(dfd int) (statFields, error) {
	b, err := readFileAt(dfd, "stat", maxProcFile)
	if err != nil {
		return statFields{}, err
	}
	return parseStat(b)
}

// parseStat parses /proc/PID/stat. The comm field is in parentheses and may
// itself contain spaces and ')', so the fixed fields are counted from the
// last ')'.
func parseStat(b []byte) (statFields, error) {
	s := string(b)
	open := strings.IndexByte(s, '(')
	end := strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return statFields{}, fmt.Errorf("malformed stat %q", truncate(s))
	}
	rest := strings.Fields(s[end+1:])
	// rest[0] is field 3 (state), so field n is rest[n-3].
	if len(rest) < 22-3+1 || len(rest[0]) != 1 {
		return statFields{}, fmt.Errorf("malformed stat %q", truncate(s))
	}
	ppid, err := strconv.Atoi(rest[4-3])
	if err != nil {
		return statFields{}, fmt.Errorf("stat ppid: %w", err)
	}
	start, err := strconv.ParseUint(rest[22-3], 10, 64)
	if err != nil {
		return statFields{}, fmt.Errorf("stat starttime: %w", err)
	}
	return statFields{comm: s[open+1 : end], state: rest[0][0], ppid: ppid, start: start}, nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// statusEUID returns the effective uid from the "Uid:" line of
// /proc/PID/status (real, effective, saved, fs).
func statusEUID(b []byte) (uint32, bool) {
	f, ok := statusField(b, "Uid")
	if !ok || len(f) < 2 {
		return 0, false
	}
	v, err := strconv.ParseUint(f[1], 10, 32)
	return uint32(v), err == nil
}

// statusField returns the whitespace-separated values of key in a
// /proc/PID/status style file.
func statusField(b []byte, key string) ([]string, bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && k == key {
			return strings.Fields(v), true
		}
	}
	return nil, false
}

// readFileAt reads at most limit bytes of name relative to dfd.
func readFileAt(dfd int, name string, limit int64) ([]byte, error) {
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name) // for EINTR handling and short reads
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit))
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the caller adds the full path
		}
		return nil, err
	}
	return b, nil
}

func readlinkAt(dfd int, name string) (string, error) {
	for size := 256; ; size *= 4 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size || size >= maxExe {
			return string(buf[:n]), nil
		}
	}
}

// checkPidfd reports whether pidfd refers to a process that has pid in our
// pid namespace and has not exited, and which mechanism said so. Unexpected
// errors are returned; a gone process is alive=false with no error.
func checkPidfd(pidfd, pid int) (alive bool, method string, err error) {
	return checkPidfdVia(pidfd, pid, true)
}

// checkPidfdVia is checkPidfd with PIDFD_GET_INFO optional, so that tests
// can exercise the fallback on kernels that have the ioctl.
func checkPidfdVia(pidfd, pid int, getInfo bool) (alive bool, method string, err error) {
	err = errNoGetInfo
	if getInfo {
		method = viaGetInfo
		alive, err = aliveByGetInfo(pidfd, pid)
	}
	if errors.Is(err, errNoGetInfo) {
		method = viaSignal
		alive, err = aliveBySignal(pidfd, pid)
	}
	if err != nil || !alive {
		return false, method, err
	}
	// The pid checks pass for zombies too; poll tells whether it exited.
	exited, err := pidfdExited(pidfd)
	if err != nil {
		return false, method, err
	}
	return !exited, method, nil
}

// getPidfdInfo issues the PIDFD_GET_INFO ioctl (Linux 6.13+) requesting mask.
// The kernel copies min(our size, its size) bytes, so the current struct
// works with older and newer kernels alike.
func getPidfdInfo(pidfd int, mask uint64) (*unix.PidfdInfo, error) {
	info := &unix.PidfdInfo{Mask: mask}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(pidfd), uintptr(unix.PIDFD_GET_INFO), uintptr(unsafe.Pointer(info)))
	if errno != 0 {
		return nil, errno
	}
	return info, nil
}

func aliveByGetInfo(pidfd, pid int) (bool, error) {
	// PIDFD_INFO_EXIT makes a reaped process answer with its exit status
	// (6.15+) instead of ESRCH; either way it lacks PIDFD_INFO_PID.
	info, err := getPidfdInfo(pidfd, unix.PIDFD_INFO_PID|unix.PIDFD_INFO_EXIT)
	switch {
	case err == nil:
	case errors.Is(err, unix.ESRCH):
		return false, nil
	case errors.Is(err, unix.ENOTTY), errors.Is(err, unix.EINVAL), errors.Is(err, unix.EOPNOTSUPP):
		return false, errNoGetInfo
	default:
		return false, fmt.Errorf("ioctl PIDFD_GET_INFO: %w", err)
	}
	if info.Mask&unix.PIDFD_INFO_PID == 0 {
		return false, nil
	}
	return int(info.Tgid) == pid && int(info.Pid) == pid, nil
}

func aliveBySignal(pidfd, pid int) (bool, error) {
	// Signal 0 checks existence only; EPERM still means it exists.
	switch err := unix.PidfdSendSignal(pidfd, 0, nil, 0); {
	case err == nil, errors.Is(err, unix.EPERM):
	case errors.Is(err, unix.ESRCH):
		return false, nil
	default:
		return false, fmt.Errorf("pidfd_send_signal: %w", err)
	}
	fdPid, err := pidfdFdinfoPid(pidfd)
	if err != nil {
		return false, err
	}
	// -1: reaped; 0: outside our pid namespace.
	return fdPid == pid, nil
}

// pidfdFdinfoPid returns the "Pid:" value of /proc/self/fdinfo/<pidfd>.
func pidfdFdinfoPid(pidfd int) (int, error) {
	path := "/proc/self/fdinfo/" + strconv.Itoa(pidfd)
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxProcFile))
	if err != nil {
		return 0, err
	}
	v, ok := statusField(b, "Pid")
	if !ok || len(v) != 1 {
		return 0, fmt.Errorf("%s: no Pid line (not a pidfd?)", path)
	}
	n, err := strconv.Atoi(v[0])
	if err != nil {
		return 0, fmt.Errorf("%s: Pid: %w", path, err)
	}
	return n, nil
}

// pidfdExited reports whether the process has exited: a pidfd becomes
// readable once the whole thread group is gone (zombie or reaped).
func pidfdExited(pidfd int) (bool, error) {
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("poll pidfd: %w", err)
		}
		return n > 0 && fds[0].Revents != 0, nil
	}
}

package guard

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// parentOf reads a process's parent pid and start time from its stat.
func parentOf(pid int) (ppid int, start uint64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// comm is in parentheses and may hold spaces and ')': count the
	// fixed fields from the last ')'. Field 3 (state) is f[0].
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return 0, 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	if ppid, err = strconv.Atoi(f[1]); err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat ppid: %w", pid, err)
	}
	if start, err = strconv.ParseUint(f[19], 10, 64); err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat start time: %w", pid, err)
	}
	return ppid, start, nil
}

// checkProxyProcess says why pid (started at start) is not a proxy the
// guard can accept: traced, or running another executable than the
// guard's own (compared by device and inode, not by name). The kernel
// shows a process's executable to its own uid only while the process is
// dumpable, so the executable is compared while it is (llm-agent-client
// proxy registers before it makes itself non-dumpable); a process whose
// executable cannot be read must be not dumpable (its /proc files belong
// to root then), as a proxy is when it registers again with a new guard.
// Registration only adds refusals (of the registrant's descendants), so a
// non-dumpable registrant gains nothing it did not have.
func checkProxyProcess(pid int, start uint64) (note string, err error) {
	dir := "/proc/" + strconv.Itoa(pid)
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("reading %s: %v", dir, err)
	}
	defer unix.Close(dfd)
	status, err := readAt(dfd, "status")
	if err != nil {
		return "", fmt.Errorf("reading its status: %v", err)
	}
	tracer, uid := "", ""
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "TracerPid:"); ok {
			tracer = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "Uid:"); ok {
			if f := strings.Fields(v); len(f) > 1 {
				uid = f[1]
			}
		}
	}
	if tracer != "0" {
		return "", fmt.Errorf("it is traced (TracerPid %q)", tracer)
	}
	var self, exe, environ unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &self); err != nil {
		return "", fmt.Errorf("reading the guard's own executable: %v", err)
	}
	switch err := unix.Fstatat(dfd, "exe", &exe, 0); {
	case err == nil:
		if exe.Dev != self.Dev || exe.Ino != self.Ino {
			return "", fmt.Errorf("it runs another executable than the guard's (device %d inode %d, not %d/%d)", exe.Dev, exe.Ino, self.Dev, self.Ino)
		}
		note = "its executable is the guard's"
	case err == unix.EACCES:
		// The kernel gives a process's /proc files to root when the
		// process is not dumpable.
		if err := unix.Fstatat(dfd, "environ", &environ, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return "", fmt.Errorf("reading its environ: %v", err)
		}
		if uid == "0" || environ.Uid != 0 {
			return "", fmt.Errorf("its executable cannot be read: %v", err)
		}
		note = "not dumpable; its executable cannot be read then"
	default:
		return "", fmt.Errorf("reading its executable: %v", err)
	}
	// The directory fd still names the process we were asked about.
	b, err := readAt(dfd, "stat")
	if err != nil {
		return "", fmt.Errorf("reading its stat: %v", err)
	}
	if end := bytes.LastIndexByte(b, ')'); end >= 0 {
		if f := strings.Fields(string(b[end+1:])); len(f) >= 20 && f[19] == strconv.FormatUint(start, 10) {
			return note, nil
		}
	}
	return "", fmt.Errorf("pid %d changed during the check", pid)
}

func readAt(dfd int, name string) ([]byte, error) {
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	b := make([]byte, 0, 4096)
	for {
		n, err := f.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil || n == 0 || len(b) == cap(b) {
			break
		}
	}
	return b, nil
}

// noNewPrivs reports whether pid runs with no_new_privs (NoNewPrivs in its
// status), which llm-agent-client proxy sets on the tool it starts: the
// kernel keeps it for every descendant, across reparenting, and no process
// can clear it.
func noNewPrivs(pid int) (bool, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "NoNewPrivs:"); ok {
			return strings.TrimSpace(v) != "0", nil
		}
	}
	return false, fmt.Errorf("/proc/%d/status has no NoNewPrivs line", pid)
}

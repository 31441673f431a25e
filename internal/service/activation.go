package service

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The variables of systemd's socket activation protocol (sd_listen_fds(3)).
const (
	envPID   = "LISTEN_PID"
	envFDs   = "LISTEN_FDS"
	envNames = "LISTEN_FDNAMES"
)

// FDName is the name the socket unit gives its sockets (FileDescriptorName=).
const FDName = "llm-agent"

// firstFD is SD_LISTEN_FDS_START: passed sockets start at fd 3.
const firstFD = 3

// maxFDs bounds LISTEN_FDS; the agent takes exactly two.
const maxFDs = 64

// listenEnv is what the LISTEN_ variables say.
type listenEnv struct {
	n     int      // LISTEN_FDS
	names []string // LISTEN_FDNAMES split, or nil when unset
}

// parseListenEnv decodes LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES as
// lookup finds them, for the process self. It returns ok false when none
// is set (no service manager passed anything); any other inconsistency is
// an error, including sockets passed to another process: with -D, the
// agent was meant to take them.
func parseListenEnv(lookup func(string) (string, bool), self int) (env listenEnv, ok bool, err error) {
	pid, pidSet := lookup(envPID)
	fds, fdsSet := lookup(envFDs)
	names, namesSet := lookup(envNames)
	if !pidSet && !fdsSet && !namesSet {
		return listenEnv{}, false, nil
	}
	if !pidSet || !fdsSet {
		return listenEnv{}, false, fmt.Errorf("%s and %s must both be set (they are %s); start llm-agent from its socket unit, or unset them", envPID, envFDs, setOrNot(pidSet, fdsSet))
	}
	p, err := decimal(pid, 1<<31-1)
	if err != nil {
		return listenEnv{}, false, fmt.Errorf("%s=%q: %v", envPID, cut(pid), err)
	}
	if p != self {
		return listenEnv{}, false, fmt.Errorf("%s=%d names another process, not this one (%d): the sockets were not passed to it; start llm-agent from its socket unit, or unset %s and %s", envPID, p, self, envPID, envFDs)
	}
	n, err := decimal(fds, maxFDs)
	if err != nil {
		return listenEnv{}, false, fmt.Errorf("%s=%q: %v", envFDs, cut(fds), err)
	}
	if n == 0 {
		return listenEnv{}, false, fmt.Errorf("%s=0: no sockets were passed; check llm-agent.socket's ListenStream lines", envFDs)
	}
	env.n = n
	if namesSet {
		env.names = strings.Split(names, ":")
		if len(env.names) != n {
			return listenEnv{}, false, fmt.Errorf("%s names %d sockets, %s says %d", envNames, len(env.names), envFDs, n)
		}
		for _, name := range env.names {
			if name != FDName {
				return listenEnv{}, false, fmt.Errorf("%s: a socket is named %q, not %q; pass only llm-agent.socket's sockets (FileDescriptorName=%s)", envNames, cut(name), FDName, FDName)
			}
		}
	}
	return env, true, nil
}

// decimal parses a positive decimal number of at most max, digits only
// (no sign, no blanks, no leading zero).
func decimal(s string, max int) (int, error) {
	if s == "" || len(s) > 10 || strings.TrimLeft(s, "0123456789") != "" || s[0] == '0' && s != "0" {
		return 0, errors.New("not a decimal number")
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > max {
		return 0, fmt.Errorf("more than %d", max)
	}
	return n, nil
}

// cut shortens a value quoted in an error to 64 bytes.
func cut(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

func setOrNot(pid, fds bool) string {
	word := func(b bool) string {
		if b {
			return "set"
		}
		return "unset"
	}
	return fmt.Sprintf("%s %s, %s %s", envPID, word(pid), envFDs, word(fds))
}

// unsetListenEnv removes the variables, so that no child (the SSH-key
// ssh-agent, a credential's command) takes them for its own.
func unsetListenEnv() {
	for _, v := range []string{envPID, envFDs, envNames} {
		os.Unsetenv(v)
	}
}

// Sockets are the agent's two listening sockets, passed by the service
// manager.
type Sockets struct {
	Use, Admin *net.UnixListener
	Path       string // the use socket's path (LLM_AUTH_SOCK)
}

// FromEnv takes the agent's sockets from a service manager: exactly two
// listening Unix stream sockets, at path and path.admin, each a socket of
// this user with mode 0600 in a directory that group and others cannot
// write. want, when not empty, is the path -a named, which must be path.
// It returns nil when no LISTEN_ variable is set. Either way the variables
// are unset, and the fds it takes become close-on-exec.
func FromEnv(want string) (*Sockets, error) {
	env, ok, err := parseListenEnv(os.LookupEnv, os.Getpid())
	unsetListenEnv()
	if err != nil || !ok {
		return nil, err
	}
	fds := make([]int, env.n)
	for i := range fds {
		fds[i] = firstFD + i
		unix.CloseOnExec(fds[i]) // also those refused; EBADF when not open
	}
	return take(fds, want)
}

// PassedToThisProcess reports whether LISTEN_PID names this process, and
// unsets the variables: for the modes that cannot take sockets (the daemon,
// a command), which refuse when they were meant to.
func PassedToThisProcess() bool {
	pid, ok := os.LookupEnv(envPID)
	unsetListenEnv()
	return ok && pid == strconv.Itoa(os.Getpid())
}

// take checks fds and makes listeners of them; see FromEnv.
func take(fds []int, want string) (*Sockets, error) {
	if len(fds) != 2 {
		return nil, fmt.Errorf("%s=%d: want 2 sockets (the agent's and its .admin socket, as llm-agent.socket listens)", envFDs, len(fds))
	}
	paths := make([]string, len(fds))
	for i, fd := range fds {
		p, err := checkListener(fd)
		if err != nil {
			return nil, fmt.Errorf("passed socket (fd %d): %v", fd, err)
		}
		paths[i] = p
	}
	use, admin := 0, 1
	if paths[0] == paths[1]+adminSuffix {
		use, admin = 1, 0
	}
	if paths[admin] != paths[use]+adminSuffix {
		return nil, fmt.Errorf("passed sockets are %s and %s; want PATH and PATH%s, as llm-agent.socket listens", paths[0], paths[1], adminSuffix)
	}
	if want != "" && want != paths[use] {
		return nil, fmt.Errorf("-a %s is not the passed socket %s; make ExecStart's -a and the socket unit's ListenStream agree", want, paths[use])
	}
	s := &Sockets{Path: paths[use]}
	var err error
	if s.Use, err = listener(fds[use]); err != nil {
		return nil, err
	}
	if s.Admin, err = listener(fds[admin]); err != nil {
		s.Use.Close()
		return nil, err
	}
	return s, nil
}

// checkListener checks that fd is a listening Unix stream socket this
// user created, bound to the file its path names, which this user owns,
// with mode 0600, in a directory that group and others cannot write, and
// returns the path.
func checkListener(fd int) (string, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return "", fmt.Errorf("not open (%v); check the socket unit", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return "", errors.New("not a socket; check the socket unit")
	}
	// A socket's inode belongs to whoever created it.
	if int(st.Uid) != os.Getuid() && st.Uid != 0 {
		return "", fmt.Errorf("a socket created by uid %d, not by this user (%d); check the socket unit", st.Uid, os.Getuid())
	}
	if typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || typ != unix.SOCK_STREAM {
		return "", errors.New("not a stream socket; use ListenStream=")
	}
	if on, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || on == 0 {
		return "", errors.New("not listening; use Accept=no")
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return "", fmt.Errorf("getsockname: %v", err)
	}
	u, ok := sa.(*unix.SockaddrUnix)
	if !ok || !filepath.IsAbs(u.Name) {
		return "", errors.New("not a Unix socket bound to an absolute path")
	}
	path := u.Name
	fi, err := os.Lstat(path)
	if err != nil {
		return "", fmt.Errorf("bound to %s, which is gone: %v", path, err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		return "", fmt.Errorf("bound to %s, which is no longer a socket", path)
	}
	if uid, ok := owner(fi); !ok || uid != os.Getuid() {
		return "", fmt.Errorf("%s belongs to uid %d, not to this user (%d)", path, uid, os.Getuid())
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		return "", fmt.Errorf("%s has mode %04o, want 0600 (SocketMode=0600)", path, perm)
	}
	// The path only names a socket: fd must be the very socket there, not
	// one whose file was unlinked and replaced, or reached through a
	// symlink that now points elsewhere.
	dev, ino, err := boundFile(fd)
	if err != nil {
		return "", fmt.Errorf("bound to %s, but which file is it: %v", path, err)
	}
	if pst, ok := fi.Sys().(*syscall.Stat_t); !ok || uint64(pst.Dev) != dev || uint64(uint32(pst.Ino)) != ino {
		return "", fmt.Errorf("bound to %s, but the socket there now is another one (the path was replaced); restart llm-agent.socket", path)
	}
	// The directory that really holds it, after symlinks and "..".
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", fmt.Errorf("socket path %s: %v", path, err)
	}
	dir := filepath.Dir(real)
	di, err := os.Lstat(dir)
	if err != nil {
		return "", fmt.Errorf("socket directory: %v", err)
	}
	if !di.IsDir() {
		return "", fmt.Errorf("socket directory %s is not a directory", dir)
	}
	if di.Mode().Perm()&0o022 != 0 {
		return "", fmt.Errorf("socket directory %s is writable by group or others (mode %04o); use DirectoryMode=0700", dir, di.Mode().Perm())
	}
	if uid, ok := owner(di); !ok || (uid != os.Getuid() && uid != 0) {
		return "", fmt.Errorf("socket directory %s belongs to uid %d, not to this user", dir, uid)
	}
	return path, nil
}

// owner is the uid that owns fi.
func owner(fi os.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return -1, false
	}
	return int(st.Uid), true
}

// listener makes fd a *net.UnixListener. net.FileListener works on a
// close-on-exec duplicate, and fd itself is closed: no child inherits it.
func listener(fd int) (*net.UnixListener, error) {
	unix.CloseOnExec(fd)
	f := os.NewFile(uintptr(fd), "passed socket")
	fl, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("passed socket (fd %d): %v", fd, err)
	}
	l, ok := fl.(*net.UnixListener)
	if !ok {
		fl.Close()
		return nil, fmt.Errorf("passed socket (fd %d) is not a Unix socket", fd)
	}
	l.SetUnlinkOnClose(false) // the path is the socket unit's
	return l, nil
}

package proxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/llm-agent/llm-agent/internal/guard"
	"github.com/llm-agent/llm-agent/internal/peercred"
	"github.com/llm-agent/llm-agent/protocol"
)

// PeerCheck decides whether the process at the other end of a loopback TCP
// connection may use the proxy. The kernel records no process for a TCP
// connection, so it is found the way ss -p finds it: the peer socket's uid
// and inode from NETLINK_SOCK_DIAG, then the process of our uid that holds
// that inode among its open files (/proc/PID/fd), pinned with a pidfd.
// That process must be the proxy's own descendant (the command of proxy
// -- CMD) or pass guard.LoginPolicy: same uid and the proxy's audit login
// session, or, when the kernel keeps no audit session ids, a descendant
// of the proxy's login. Whatever cannot be identified is refused.
type PeerCheck struct {
	uid     uint32
	pid     int
	start   uint64
	login   *guard.LoginPolicy
	procDir string
}

// NewPeerCheck reads the calling process's login and identity.
func NewPeerCheck() (*PeerCheck, error) {
	login, err := guard.NewLoginPolicy()
	if err != nil {
		return nil, fmt.Errorf("reading the proxy's login: %w", err)
	}
	me, err := peercred.ProcessOf(os.Getpid())
	if err != nil {
		return nil, fmt.Errorf("reading the proxy's own process: %w", err)
	}
	return &PeerCheck{uid: uint32(os.Getuid()), pid: me.PID, start: me.StartTime, login: login, procDir: "/proc"}, nil
}

// KnowOwnerSessions extends the rule to the owner's other logins that the
// agent knows (see guard.LoginPolicy.KnowOwnerSessions).
func (pc *PeerCheck) KnowOwnerSessions(refresh func() ([]protocol.Session, error)) {
	pc.login.KnowOwnerSessions(refresh)
}

// Check returns nil when the process that opened the connection from
// remote to local (both as the proxy sees them) may use the proxy, else
// why not, naming the process when it was found.
func (pc *PeerCheck) Check(local, remote net.Addr) error {
	l, ok1 := local.(*net.TCPAddr)
	r, ok2 := remote.(*net.TCPAddr)
	if !ok1 || !ok2 {
		return fmt.Errorf("not a TCP connection (%s)", remote)
	}
	// The peer's socket is the one bound to remote and connected to local.
	uid, inode, err := sockDiag(r, l)
	if err != nil {
		return fmt.Errorf("connection from %s: cannot find its socket: %v", r, err)
	}
	if uid != pc.uid {
		return fmt.Errorf("connection from %s: uid %d is not the proxy's uid %d", r, uid, pc.uid)
	}
	proc, err := pc.holder(inode)
	if err != nil {
		return fmt.Errorf("connection from %s: %v", r, err)
	}
	if guard.Descends(proc, pc.pid, pc.start) {
		return nil
	}
	if err := pc.login.Allow(proc, uid); err != nil {
		return fmt.Errorf("connection from %s: %v", r, err)
	}
	return nil
}

// holder finds the process of our uid that holds socket inode and
// describes it, verified: a pidfd taken after the find, a second look at
// the descriptor, and the pidfd still alive at the end prove that the
// process described is one that holds the socket.
func (pc *PeerCheck) holder(inode uint64) (peercred.Process, error) {
	target := "socket:[" + strconv.FormatUint(inode, 10) + "]"
	pid, fd, err := pc.scan(target)
	if err != nil {
		return peercred.Process{}, err
	}
	pidfd, err := peercred.PidfdOpen(pid)
	if err != nil {
		return peercred.Process{}, fmt.Errorf("pid %d went away during the check", pid)
	}
	defer unix.Close(pidfd)
	if l, err := os.Readlink(pc.procDir + "/" + strconv.Itoa(pid) + "/fd/" + fd); err != nil || l != target {
		return peercred.Process{}, fmt.Errorf("pid %d changed during the check", pid)
	}
	proc, err := peercred.ProcessOf(pid)
	if err != nil {
		return proc, fmt.Errorf("pid %d: %v", pid, err)
	}
	if unix.PidfdSendSignal(pidfd, 0, nil, 0) != nil {
		return proc, fmt.Errorf("pid %d went away during the check", pid)
	}
	proc.Verified = true
	return proc, nil
}

// scan looks through the open files of every process of our uid for
// target and returns the first holder's pid and descriptor. Processes we
// may not look into (another uid, non-dumpable) are skipped: a peer among
// them is not found, and refused.
func (pc *PeerCheck) scan(target string) (int, string, error) {
	buf := make([]byte, 64)
	// The proxy's own descendants first (the command of proxy -- CMD and
	// its children): the owner's requests are answered without a look at
	// every process of the uid.
	kids := pc.descendants()
	for _, pid := range kids {
		if fd, ok := holds(pc.procDir+"/"+strconv.Itoa(pid)+"/fd", target, buf); ok {
			return pid, fd, nil
		}
	}
	d, err := os.Open(pc.procDir)
	if err != nil {
		return 0, "", fmt.Errorf("reading %s: %w", pc.procDir, err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return 0, "", fmt.Errorf("reading %s: %w", pc.procDir, err)
	}
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil || pid <= 0 || slices.Contains(kids, pid) {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(pc.procDir+"/"+name, &st) != nil || st.Uid != pc.uid {
			continue
		}
		if fd, ok := holds(pc.procDir+"/"+name+"/fd", target, buf); ok {
			return pid, fd, nil
		}
	}
	return 0, "", errors.New("no process of the proxy's uid that can be looked into holds its socket (gone, another uid, another namespace, or not dumpable)")
}

// maxKids bounds the walk of the proxy's descendants; the full scan
// finds the rest.
const maxKids = 256

// descendants lists the proxy's descendants, breadth first, from the
// children files of each thread (/proc/PID/task/TID/children; a kernel
// without them yields none, and the full scan does the work).
func (pc *PeerCheck) descendants() []int {
	var out []int
	queue := []int{pc.pid}
	for len(queue) > 0 && len(out) < maxKids {
		p := queue[0]
		queue = queue[1:]
		tasks, err := os.ReadDir(pc.procDir + "/" + strconv.Itoa(p) + "/task")
		if err != nil {
			continue
		}
		for _, t := range tasks {
			b, err := os.ReadFile(pc.procDir + "/" + strconv.Itoa(p) + "/task/" + t.Name() + "/children")
			if err != nil {
				continue
			}
			for _, f := range strings.Fields(string(b)) {
				if c, err := strconv.Atoi(f); err == nil && c > 0 && !slices.Contains(out, c) {
					out = append(out, c)
					queue = append(queue, c)
				}
			}
		}
	}
	return out
}

// holds reports which descriptor in the fd directory dir links to target.
func holds(dir, target string, buf []byte) (string, bool) {
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", false
	}
	f := os.NewFile(uintptr(dfd), dir)
	defer f.Close()
	fds, err := f.Readdirnames(-1)
	if err != nil {
		return "", false
	}
	for _, fd := range fds {
		n, err := unix.Readlinkat(dfd, fd, buf)
		if err == nil && n == len(target) && string(buf[:n]) == target {
			return fd, true
		}
	}
	return "", false
}

// inet_diag wire structures (linux/inet_diag.h), which x/sys/unix lacks.
const (
	sizeofSockID     = 48 // sport, dport, src[4], dst[4], if, cookie[2]
	sizeofDiagReq    = 8 + sizeofSockID
	sizeofDiagMsg    = 4 + sizeofSockID + 20
	inetDiagNoCookie = ^uint32(0)
)

// sockDiag asks the kernel for the TCP socket bound to src and connected to
// dst, and returns its owner uid and inode.
func sockDiag(src, dst *net.TCPAddr) (uint32, uint64, error) {
	family := unix.AF_INET
	s4, d4 := src.IP.To4(), dst.IP.To4()
	if s4 == nil || d4 == nil {
		family = unix.AF_INET6
	}
	req := make([]byte, unix.NLMSG_HDRLEN+sizeofDiagReq)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST)
	ne.PutUint32(req[8:], 1) // seq
	b := req[unix.NLMSG_HDRLEN:]
	b[0], b[1] = byte(family), unix.IPPROTO_TCP
	ne.PutUint32(b[4:], ^uint32(0)) // every state
	id := b[8:]
	binary.BigEndian.PutUint16(id[0:], uint16(src.Port))
	binary.BigEndian.PutUint16(id[2:], uint16(dst.Port))
	if family == unix.AF_INET {
		copy(id[4:8], s4)
		copy(id[20:24], d4)
	} else {
		copy(id[4:20], src.IP.To16())
		copy(id[20:36], dst.IP.To16())
	}
	ne.PutUint32(id[40:], inetDiagNoCookie)
	ne.PutUint32(id[44:], inetDiagNoCookie)

	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return 0, 0, fmt.Errorf("netlink socket: %w", err)
	}
	defer unix.Close(fd)
	tv := unix.Timeval{Sec: 2}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, 0, fmt.Errorf("sock_diag request: %w", err)
	}
	resp := make([]byte, 8192)
	n, _, err := unix.Recvfrom(fd, resp, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("sock_diag reply: %w", err)
	}
	for b := resp[:n]; len(b) >= unix.NLMSG_HDRLEN; {
		l := int(ne.Uint32(b[0:]))
		typ := ne.Uint16(b[4:])
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return 0, 0, errors.New("sock_diag: malformed reply")
		}
		data := b[unix.NLMSG_HDRLEN:l]
		switch typ {
		case unix.NLMSG_ERROR:
			if len(data) >= 4 {
				if e := int32(ne.Uint32(data)); e != 0 {
					return 0, 0, fmt.Errorf("sock_diag: %w", unix.Errno(-e))
				}
			}
		case unix.SOCK_DIAG_BY_FAMILY:
			if len(data) < sizeofDiagMsg {
				return 0, 0, errors.New("sock_diag: short reply")
			}
			uid := ne.Uint32(data[4+sizeofSockID+12:])
			inode := ne.Uint32(data[4+sizeofSockID+16:])
			if inode == 0 {
				return 0, 0, errors.New("sock_diag: the socket has no inode (closed)")
			}
			return uid, uint64(inode), nil
		}
		b = b[min(len(b), (l+unix.NLMSG_ALIGNTO-1)&^(unix.NLMSG_ALIGNTO-1)):]
	}
	return 0, 0, errors.New("sock_diag: no such socket")
}

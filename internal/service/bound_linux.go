package service

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// unix_diag's wire layout (linux/unix_diag.h), which x/sys/unix lacks.
const (
	unixDiagReqLen = 24 // family, protocol, pad, states, ino, show, cookie[2]
	unixDiagMsgLen = 16 // family, type, state, pad, ino, cookie[2]
	udiagShowVFS   = 0x2
	unixDiagVFS    = 1 // attribute: struct unix_diag_vfs {ino, dev}
)

// boundFile is the file the Unix socket fd is bound to, as the kernel
// keeps it (its device and inode, asked of sock_diag): the file the socket
// really is, whatever its path names now.
func boundFile(fd int) (dev, ino uint64, err error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, 0, err
	}
	ne := binary.NativeEndian
	req := make([]byte, unix.NLMSG_HDRLEN+unixDiagReqLen)
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST)
	r := req[unix.NLMSG_HDRLEN:]
	r[0] = unix.AF_UNIX
	ne.PutUint32(r[4:], ^uint32(0))     // any state
	ne.PutUint32(r[8:], uint32(st.Ino)) // the socket's own inode names it
	ne.PutUint32(r[12:], udiagShowVFS)
	ne.PutUint64(r[16:], ^uint64(0)) // no cookie

	nl, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return 0, 0, fmt.Errorf("netlink: %w", err)
	}
	defer unix.Close(nl)
	timeout := unix.Timeval{Sec: 2}
	unix.SetsockoptTimeval(nl, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &timeout)
	if err := unix.Sendto(nl, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, 0, fmt.Errorf("unix_diag: %w", err)
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(nl, buf, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("unix_diag: %w", err)
	}
	msgs, err := syscall.ParseNetlinkMessage(buf[:n])
	if err != nil {
		return 0, 0, fmt.Errorf("unix_diag: %w", err)
	}
	for _, m := range msgs {
		switch m.Header.Type {
		case unix.NLMSG_ERROR:
			if len(m.Data) >= 4 {
				if e := int32(ne.Uint32(m.Data)); e != 0 {
					return 0, 0, fmt.Errorf("unix_diag: %w", unix.Errno(-e))
				}
			}
		case unix.SOCK_DIAG_BY_FAMILY:
			if len(m.Data) < unixDiagMsgLen || ne.Uint32(m.Data[4:]) != uint32(st.Ino) {
				return 0, 0, errors.New("unix_diag: a reply about another socket")
			}
			return vfsAttr(m.Data[unixDiagMsgLen:])
		}
	}
	return 0, 0, errors.New("unix_diag: no reply")
}

// vfsAttr finds UNIX_DIAG_VFS among the attributes of a unix_diag reply.
func vfsAttr(b []byte) (dev, ino uint64, err error) {
	ne := binary.NativeEndian
	for len(b) >= unix.SizeofRtAttr {
		l, typ := int(ne.Uint16(b)), ne.Uint16(b[2:])
		if l < unix.SizeofRtAttr || l > len(b) {
			break
		}
		if typ == unixDiagVFS && l >= unix.SizeofRtAttr+8 {
			ino = uint64(ne.Uint32(b[4:]))
			kdev := ne.Uint32(b[8:]) // the kernel's dev_t: major<<20 | minor
			return unix.Mkdev(kdev>>20, kdev&(1<<20-1)), ino, nil
		}
		b = b[min(len(b), (l+unix.RTA_ALIGNTO-1)&^(unix.RTA_ALIGNTO-1)):]
	}
	return 0, 0, errors.New("not bound to a file")
}

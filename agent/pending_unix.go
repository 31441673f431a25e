package agent

import (
	"net"

	"golang.org/x/sys/unix"
)

// Connection states seen by peek.
const (
	peerIdle    = iota // nothing to read
	peerPending        // a request waits unread
	peerGone           // the client closed its end
)

// peek tells, without consuming anything, whether a request waits unread
// on c, its client has gone, or it is idle.
func peek(c *net.UnixConn) int {
	rc, err := c.SyscallConn()
	if err != nil {
		return peerPending // unknown: do not evict
	}
	var n int
	var rerr error
	var b [1]byte
	if err := rc.Control(func(fd uintptr) {
		n, _, rerr = unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	}); err != nil {
		return peerPending
	}
	switch {
	case rerr == unix.EAGAIN || rerr == unix.EWOULDBLOCK:
		return peerIdle
	case rerr != nil, n == 0:
		return peerGone
	}
	return peerPending
}

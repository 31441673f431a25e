package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/llm-agent/llm-agent/internal/peercred"
)

// sessionWatch follows the child processes that the server of an agent
// socket had when a connection to it was dialled: for sshd, the login
// sessions of the ssh connection that forwards the socket. It is over
// once all of them have exited, or the server has.
type sessionWatch struct {
	pid    int   // the socket's server
	server int   // its pidfd
	fds    []int // pidfds of its children then
	ended  atomic.Bool
	once   sync.Once
}

// peerPID is the pid of the process that serves c's socket (the one that
// listens on it), or 0.
func peerPID(c net.Conn) int {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	var cred *unix.Ucred
	if rc.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}) != nil || err != nil {
		return 0
	}
	return int(cred.Pid)
}

// watchSessions pins pid and its child processes; nil when it has no
// child that can be pinned.
func watchSessions(pid int) *sessionWatch {
	server, err := peercred.PidfdOpen(pid)
	if err != nil {
		return nil
	}
	w := &sessionWatch{pid: pid, server: server}
	for _, child := range childrenOf(pid) {
		fd, err := peercred.PidfdOpen(child)
		if err != nil {
			continue
		}
		// The pid may have gone to another process since the list was
		// read: keep it only if it is pid's child.
		if pr, err := peercred.ProcessOf(child); err != nil || pr.PPID != pid {
			unix.Close(fd)
			continue
		}
		w.fds = append(w.fds, fd)
	}
	if len(w.fds) == 0 {
		unix.Close(server)
		return nil
	}
	return w
}

// childrenOf lists pid's child processes, from every thread's
// /proc/PID/task/TID/children.
func childrenOf(pid int) []int {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil
	}
	var kids []int
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if k, err := strconv.Atoi(f); err == nil {
				kids = append(kids, k)
			}
		}
	}
	return kids
}

// over reports whether every watched session has ended.
func (w *sessionWatch) over() bool { return w.ended.Load() }

// wait blocks until every watched session, or the server, has exited
// and reports true, or until stop ends and reports false; it closes the
// pidfds. A watch it cannot keep is over: the connections held for it are
// let go.
func (w *sessionWatch) wait(stop context.Context) bool {
	defer w.stop()
	left := w.fds
	for len(left) > 0 {
		if stop.Err() != nil {
			return false
		}
		polls := []unix.PollFd{{Fd: int32(w.server), Events: unix.POLLIN}}
		for _, fd := range left {
			polls = append(polls, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
		}
		n, err := unix.Poll(polls, 200)
		if errors.Is(err, unix.EINTR) || n == 0 {
			continue
		}
		if err != nil || polls[0].Revents != 0 {
			break
		}
		var still []int
		for i, p := range polls[1:] {
			if p.Revents == 0 {
				still = append(still, left[i])
			}
		}
		left = still
	}
	w.ended.Store(true)
	return true
}

// stop closes the pidfds.
func (w *sessionWatch) stop() {
	w.once.Do(func() {
		unix.Close(w.server)
		for _, fd := range w.fds {
			unix.Close(fd)
		}
	})
}

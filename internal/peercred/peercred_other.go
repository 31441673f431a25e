//go:build !linux && !darwin

package peercred

import (
	"errors"
	"fmt"
	"net"
	"runtime"
)

func unsupported(what string) error {
	return fmt.Errorf("peercred: %s: %w on %s", what, errors.ErrUnsupported, runtime.GOOS)
}

// FromConn is not implemented on this operating system.
func FromConn(c *net.UnixConn) (*Peer, error) {
	return nil, unsupported("peer credentials")
}

// Close is a no-op here.
func (p *Peer) Close() error { return nil }

// Describe is not implemented on this operating system.
func (p *Peer) Describe() (Process, error) {
	return p.credProcess(), unsupported("process description")
}

// ProcessOf is not implemented on this operating system.
func ProcessOf(pid int) (Process, error) {
	return newProcess(pid), unsupported("process description")
}

// PidfdOpen is Linux-only.
func PidfdOpen(pid int) (int, error) {
	return -1, unsupported("pidfd_open")
}

func pidfdAlive(int) bool { return false }

func closePidfd(int) {}

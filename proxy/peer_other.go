//go:build !linux

package proxy

import "net"

// PeerCheck is Linux-only: elsewhere (a Mac laptop running a tool
// locally) the proxy does not identify the process behind a connection.
type PeerCheck struct{}

// NewPeerCheck returns nil: no check on this platform.
func NewPeerCheck() (*PeerCheck, error) { return nil, nil }

// Check allows every connection.
func (*PeerCheck) Check(local, remote net.Addr) error { return nil }

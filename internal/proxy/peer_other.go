//go:build !linux

package proxy

import "github.com/llm-agent/llm-agent/protocol"

import "net"

// PeerCheck is Linux-only: elsewhere (a Mac laptop running a tool
// locally) the proxy does not identify the process behind a connection.
type PeerCheck struct{}

// NewPeerCheck returns nil: no check on this platform.
func NewPeerCheck() (*PeerCheck, error) { return nil, nil }

// Check allows every connection.
func (*PeerCheck) Check(local, remote net.Addr) error { return nil }

// KnowOwnerSessions does nothing: there is no check on this platform.
func (pc *PeerCheck) KnowOwnerSessions(func() ([]protocol.Session, error)) {}

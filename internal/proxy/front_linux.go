package proxy

import (
	"fmt"
	"net"

	"github.com/llm-agent/llm-agent/internal/guard"
	"github.com/llm-agent/llm-agent/internal/peercred"
)

// CheckConn judges the process behind c: for a TCP connection as Check
// does; for a Unix socket connection (the front's socket, which the
// owner's ssh -L reaches through the sshd session process of the owner's
// login) by the peer's credentials, which the kernel records at connect:
// the same rule, the proxy's descendant or guard.LoginPolicy. sshd's
// session process is not dumpable, so over TCP it cannot be found among
// the uid's processes; over a Unix socket its pid comes from the kernel.
func (pc *PeerCheck) CheckConn(c net.Conn) error {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return pc.Check(c.LocalAddr(), c.RemoteAddr())
	}
	peer, err := peercred.FromConn(uc)
	if err != nil {
		return fmt.Errorf("peer credentials: %v", err)
	}
	defer peer.Close()
	if peer.UID != pc.uid {
		return fmt.Errorf("uid %d is not the proxy's uid %d", peer.UID, pc.uid)
	}
	proc, recheck, release := peer.Pinned()
	defer release()
	if !proc.Verified {
		return fmt.Errorf("pid %d could not be identified race-free", proc.PID)
	}
	if !guard.Descends(proc, pc.pid, pc.start) {
		if err := pc.login.Allow(proc, peer.UID); err != nil {
			return err
		}
	}
	if !recheck() {
		return fmt.Errorf("pid %d changed during the check", proc.PID)
	}
	return nil
}

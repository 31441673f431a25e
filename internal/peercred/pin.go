package peercred

// Pinned describes the peer for a trust decision and returns, with the
// description, recheck (true while the process described is still the one
// connected and alive: call it after deciding, before acting) and release
// (closes what pinning opened). Where the kernel gave a pidfd with the
// connection (Linux 6.5+), Describe and that pidfd do the work; on older
// Linux kernels the pid is pinned now with pidfd_open, and the process it
// names is judged (a pid reused between connect and here would need a
// full pid wrap). Elsewhere the description is unverified.
func (p *Peer) Pinned() (proc Process, recheck func() bool, release func()) {
	proc, _ = p.Describe()
	recheck = func() bool {
		again, _ := p.Describe()
		return again.Verified && again.StartTime == proc.StartTime
	}
	release = func() {}
	if p.HasPidfd() || p.PID <= 0 {
		return proc, recheck, release
	}
	fd, err := PidfdOpen(p.PID)
	if err != nil {
		return proc, recheck, release
	}
	release = func() { closePidfd(fd) }
	if pr, err := ProcessOf(p.PID); err == nil && pidfdAlive(fd) {
		proc, proc.Verified = pr, true
		recheck = func() bool {
			again, err := ProcessOf(p.PID)
			return err == nil && pidfdAlive(fd) && again.StartTime == proc.StartTime
		}
	}
	return proc, recheck, release
}

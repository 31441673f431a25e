package sshtest

import "syscall"

// dieWithParent makes a child get SIGTERM when the thread that started it
// exits, so that sshd is not left behind by a test binary that dies.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

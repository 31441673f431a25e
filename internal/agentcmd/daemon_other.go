//go:build !linux

package agentcmd

import "syscall"

// daemonAttr detaches the daemon into its own session; without
// Pdeathsig, the daemon polls its parent instead (see serve).
func daemonAttr(bool) *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }

// childAttr: without Pdeathsig, the SSH-key ssh-agent is stopped by serve.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }

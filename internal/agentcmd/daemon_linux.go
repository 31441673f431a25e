package agentcmd

import "syscall"

// daemonAttr detaches the daemon into its own session. For llm-agent
// command, the daemon also dies with its parent.
func daemonAttr(withParent bool) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setsid: true}
	if withParent {
		a.Pdeathsig = syscall.SIGTERM
	}
	return a
}

// childAttr makes the SSH-key ssh-agent die with the agent, even when the
// agent is killed without a chance to stop it.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

package agent

import (
	"os"
	"os/exec"
	"syscall"

	"github.com/llm-agent/llm-agent/internal/peercred"
)

// fileID is a file's identity: device and inode.
type fileID struct{ dev, ino uint64 }

// sshAddIDs finds the ssh-add programs a local user runs: the one on the
// agent's PATH and the system's. ssh-add is a management client that never
// relays anything, so a peer that the kernel shows running one of these
// very files (by device and inode, not by name: a renamed copy of a relay
// has another inode) is the laptop's own ssh-add. That is what lets
// `ssh-add KEY` keep working on LLM_AUTH_SOCK, which is otherwise
// use-only.
func sshAddIDs() map[fileID]string {
	ids := map[fileID]string{}
	paths := []string{"/usr/bin/ssh-add"}
	if p, err := exec.LookPath("ssh-add"); err == nil {
		paths = append(paths, p)
	}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			ids[fileID{uint64(st.Dev), uint64(st.Ino)}] = p
		}
	}
	return ids
}

// isSSHAdd reports whether proc, verified race-free, runs one of the
// agent's known ssh-add files, and which.
func (a *Agent) isSSHAdd(proc peercred.Process) (string, bool) {
	if !proc.Verified || proc.ExeIno == 0 {
		return "", false
	}
	p, ok := a.sshAdd[fileID{proc.ExeDev, proc.ExeIno}]
	return p, ok
}

package agent

import (
	"os"
	"os/exec"
	"path/filepath"
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
	paths := []string{"/usr/bin/ssh-add"}
	if p, err := exec.LookPath("ssh-add"); err == nil {
		paths = append(paths, p)
	}
	return fileIDs(paths)
}

// commandClientPaths are the llm-agent-client programs that may add a
// credential from a command when Config.CommandClients is nil: the one
// beside the agent's own executable and the one on its PATH.
func commandClientPaths() []string {
	var paths []string
	if exe, err := os.Executable(); err == nil {
		paths = append(paths, filepath.Join(filepath.Dir(exe), "llm-agent-client"))
	}
	if p, err := exec.LookPath("llm-agent-client"); err == nil {
		paths = append(paths, p)
	}
	return paths
}

// fileIDs maps the regular files among paths (symbolic links followed) by
// their identity.
func fileIDs(paths []string) map[fileID]string {
	ids := map[fileID]string{}
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
func (a *Agent) isSSHAdd(proc peercred.Process) (string, bool) { return runs(a.sshAdd, proc) }

// runs reports whether proc, verified race-free, runs one of the files
// ids names, and which.
func runs(ids map[fileID]string, proc peercred.Process) (string, bool) {
	if !proc.Verified || proc.ExeIno == 0 {
		return "", false
	}
	p, ok := ids[fileID{proc.ExeDev, proc.ExeIno}]
	return p, ok
}

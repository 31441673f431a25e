//go:build linux

package agent_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/llm-agent/llm-agent/agent"
	"github.com/llm-agent/llm-agent/internal/sshtest"
	"github.com/llm-agent/llm-agent/protocol"
)

// TestRelayFlood attacks the SSH-key relay with 10000 connections on the
// use socket, each holding a connection to the private ssh-agent (a list
// opens it), against a child with a laptop's usual 1024 descriptors: the
// agent must stay within its connection limit (and so the child within
// its descriptors), keep serving credentials, and still relay SSH-key
// requests on a fresh connection.
func TestRelayFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("10000 connections")
	}
	up := filepath.Join(t.TempDir(), "upstream.sock")
	if _, err := os.Stat("/usr/bin/ssh-agent"); err != nil {
		t.Skip("OpenSSH's ssh-agent is not installed")
	}
	pid := sshtest.StartSSHAgent(t, up, nil, nil)
	lim := unix.Rlimit{Cur: 1024, Max: 1024}
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &lim, nil); err != nil {
		t.Fatal(err)
	}
	ta := startAgent(t, agent.Config{Upstream: up, UpstreamPrivate: true, SSHAgentRights: true})
	mustAdd(t, ta.client(t), apiCred("anthropic", "sk-ant-secret"))
	list := protocol.Frame([]byte{protocol.MsgRequestIdentities})
	n := 10000
	if s := os.Getenv("FLOOD_N"); s != "" {
		fmt.Sscan(s, &n)
	}
	start := time.Now()
	failed := 0
	for i := 0; i < n; i++ {
		c := dialRaw(t, ta.use)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(list); err != nil {
			failed++
			continue
		}
		if reply, err := protocol.ReadFrame(c, protocol.MaxFrame); err != nil || reply[0] != protocol.MsgIdentitiesAnswer {
			failed++
		}
	}
	flood := time.Since(start)
	fds := func(pid int) int {
		e, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		return len(e)
	}
	childFDs := fds(pid)
	t0 := time.Now()
	cr, err := newClient(ta.useRaw(t)).Get("anthropic", nil)
	get := time.Since(t0)
	if err != nil {
		t.Errorf("get after the flood: %v", err)
	} else {
		cr.Wipe()
	}
	t.Logf("%d connections in %v (%d lists failed); child holds %d descriptors; a get after it took %v",
		n, flood, failed, childFDs, get)
	if failed > 0 {
		t.Errorf("%d of %d SSH-key lists failed or hung", failed, n)
	}
	c := ta.useRaw(t)
	if reply := exchange(t, c, list); reply[0] != protocol.MsgIdentitiesAnswer {
		t.Errorf("SSH-key list on a fresh connection after the flood: reply %d", reply[0])
	}
	if childFDs > 1024 {
		t.Errorf("the child holds %d descriptors, over its limit", childFDs)
	}
}

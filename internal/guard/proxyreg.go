package guard

import (
	"errors"
	"fmt"
	"sync"

	"github.com/llm-agent/llm-agent/internal/peercred"
	"github.com/llm-agent/llm-agent/protocol"
)

// Proxy registration (proxy@llm-agent). A tool run under
// llm-agent-client proxy runs commands for whoever reaches it (opencode
// serve's shell endpoint), inside the owner's login: the per-process check
// lets those through. A proxy registers with the guard before it starts
// the tool; from then on the guard refuses every process that descends
// from a registered proxy, and serves the proxy itself. The proxy is a
// child subreaper, so a descendant that double-forks or calls setsid is
// reparented to it and stays under it.

// proxyKey names a process incarnation.
type proxyKey struct {
	pid   int
	start uint64
}

// proxies is the guard's registry of proxies, dropped as they exit.
type proxies struct {
	mu  sync.Mutex
	set map[proxyKey]string // exe, for the log
}

func (r *proxies) has(k proxyKey) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.set[k]
	return ok
}

func (r *proxies) empty() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.set) == 0
}

// maxAncestry bounds the walk up to init; a longer chain is refused
// rather than taken as not under a proxy (a tool could nest shells to
// escape a shorter walk).
const maxAncestry = 4096

// errAncestry says the walk up the process tree could not be completed.
var errAncestry = errors.New("its ancestry changed while it was read")

// underProxy returns the registered proxy that proc descends from (proc
// itself not counted), or ok false. err is set when the ancestry could not
// be read consistently: the caller refuses then.
func (g *Guard) underProxy(proc peercred.Process) (proxy proxyKey, ok bool, err error) {
	if g.proxies.empty() {
		return proxyKey{}, false, nil
	}
	for try := 0; try < 3; try++ {
		proxy, ok, err = g.walkToProxy(proc.PID, proc.StartTime)
		if !errors.Is(err, errAncestry) {
			return proxy, ok, err
		}
	}
	return proxy, ok, err
}

func (g *Guard) walkToProxy(pid int, start uint64) (proxyKey, bool, error) {
	ppid, st, err := parentOf(pid)
	if err != nil || st != start {
		return proxyKey{}, false, errAncestry
	}
	childStart := start
	for i := 0; i < maxAncestry; i++ {
		if ppid <= 1 {
			// Reached init (or a process outside our pid namespace).
			return proxyKey{}, false, nil
		}
		next, st, err := parentOf(ppid)
		if err != nil || st > childStart {
			// Gone, or a reused pid younger than its child: the tree
			// moved under us (a subreaper took an orphan); walk again.
			return proxyKey{}, false, errAncestry
		}
		k := proxyKey{ppid, st}
		if g.proxies.has(k) {
			return k, true, nil
		}
		ppid, childStart = next, st
	}
	return proxyKey{}, false, fmt.Errorf("its ancestry is deeper than %d processes", maxAncestry)
}

// checkUnderProxy returns why proc may not use the guard because it runs
// under a registered proxy, or ran under a proxy (no_new_privs, which the
// proxy sets on its tool and which outlives the proxy: a process the tool
// left behind after killing its proxy, or one that asks a guard started
// after the owner reconnected before the proxy registered again), or nil.
func (g *Guard) checkUnderProxy(proc peercred.Process) error {
	k, ok, err := g.underProxy(proc)
	if err != nil {
		return fmt.Errorf("pid %d (%s): cannot tell whether it runs under a proxy: %v", proc.PID, proc.Exe, err)
	}
	if ok {
		return fmt.Errorf("pid %d (%s) runs under the proxy (pid %d); under the proxy only the proxy may take a credential", proc.PID, proc.Exe, k.pid)
	}
	if g.proxies.has(proxyKey{proc.PID, proc.StartTime}) {
		return nil
	}
	nnp, err := noNewPrivs(proc.PID)
	if err != nil {
		return fmt.Errorf("pid %d (%s): cannot tell whether it ran under a proxy: %v", proc.PID, proc.Exe, err)
	}
	if nnp {
		return fmt.Errorf("pid %d (%s) runs with no_new_privs, as everything started under llm-agent-client proxy does (its proxy may have exited or not registered with this guard yet); under the proxy only the proxy may take a credential", proc.PID, proc.Exe)
	}
	return nil
}

// registerProxy registers proc, whose connection passed the policy, as a
// proxy: it must be traced by nobody, run the guard's own executable (or,
// when its executable cannot be read, be not dumpable; see
// checkProxyProcess), and not run under another registered proxy. alive reports whether the connected
// process is still the one judged. It returns why not, or nil.
func (g *Guard) registerProxy(proc peercred.Process) error {
	note, err := checkProxyProcess(proc.PID, proc.StartTime)
	if err != nil {
		return fmt.Errorf("pid %d (%s) may not register as a proxy: %v", proc.PID, proc.Exe, err)
	}
	if k, ok, err := g.underProxy(proc); err != nil || ok {
		if err == nil {
			err = fmt.Errorf("it runs under the proxy (pid %d)", k.pid)
		}
		return fmt.Errorf("pid %d (%s) may not register as a proxy: %v", proc.PID, proc.Exe, err)
	}
	k := proxyKey{proc.PID, proc.StartTime}
	fd, err := peercred.PidfdOpen(proc.PID)
	if err != nil {
		return fmt.Errorf("pid %d (%s) may not register as a proxy: pidfd: %v", proc.PID, proc.Exe, err)
	}
	if _, st, err := parentOf(proc.PID); err != nil || st != proc.StartTime || !pidfdAlive(fd) {
		closeFD(fd)
		return fmt.Errorf("pid %d changed during the check", proc.PID)
	}
	g.proxies.mu.Lock()
	if g.proxies.set == nil {
		g.proxies.set = map[proxyKey]string{}
	}
	_, again := g.proxies.set[k]
	g.proxies.set[k] = proc.Exe
	g.proxies.mu.Unlock()
	if again {
		closeFD(fd)
		return nil
	}
	fmt.Fprintf(g.cfg.Log, "guard: pid %d (%s) registered as a proxy (%s): processes under it are refused\n", proc.PID, proc.Exe, note)
	go func() {
		defer closeFD(fd)
		if waitExit(fd, g.done) {
			fmt.Fprintf(g.cfg.Log, "guard: the proxy pid %d exited\n", proc.PID)
		}
		g.proxies.mu.Lock()
		delete(g.proxies.set, k)
		g.proxies.mu.Unlock()
	}()
	return nil
}

// answerProxy answers a proxy@llm-agent request itself (never relayed).
func (g *Guard) answerProxy(payload []byte, proc peercred.Process) []byte {
	if _, err := protocol.ParseProxyRequest(payload); err != nil {
		return protocol.MarshalFailure(protocol.CodeBadRequest, err.Error())
	}
	if err := g.registerProxy(proc); err != nil {
		g.refuse(err.Error())
		return protocol.MarshalFailure(protocol.CodeNotPermitted, protocol.GuardRefusalPrefix+oneLine(err.Error()))
	}
	return protocol.SuccessFrame()
}

package clientcmd

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// confineTool makes the proxy a child subreaper: whatever the tool starts
// and then orphans (a double fork, setsid, nohup) is reparented to the
// proxy rather than to init, so it stays under the proxy, where the guard
// refuses it. It starts a reaper for those orphans, which never waits for
// the tool itself (main, reaped by its exec.Cmd). The returned stop ends
// the tool's remaining descendants (SIGTERM, then SIGKILL after grace)
// once the tool has exited: out of the proxy's tree they would be the
// owner's processes again for the guard.
func confineTool() (start func(main int), stop func(grace time.Duration), err error) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, nil, err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGCHLD)
	mainc := make(chan int, 1)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		main := <-mainc
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			reapOrphans(main)
			select {
			case <-sigs:
			case <-t.C:
			case <-done:
				return
			}
		}
	}()
	start = func(main int) { mainc <- main }
	stop = func(grace time.Duration) {
		select {
		case mainc <- -1: // the tool never started
		default:
		}
		close(done)
		<-finished
		signal.Stop(sigs)
		killDescendants(grace)
	}
	return start, stop, nil
}

// reapOrphans reaps every exited child but main.
func reapOrphans(main int) {
	for _, pid := range children(os.Getpid()) {
		if pid == main {
			continue
		}
		var ws unix.WaitStatus
		unix.Wait4(pid, &ws, unix.WNOHANG, nil)
	}
}

// children lists the pids whose parent is ppid, from /proc.
func children(ppid int) []int {
	tree := parents()
	var out []int
	for pid, pp := range tree {
		if pp == ppid {
			out = append(out, pid)
		}
	}
	return out
}

// parents maps every pid in /proc to its parent's pid.
func parents() map[int]int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	m := make(map[int]int, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		end := strings.LastIndexByte(s, ')')
		if end < 0 {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) < 2 {
			continue
		}
		if pp, err := strconv.Atoi(f[1]); err == nil {
			m[pid] = pp
		}
	}
	return m
}

// descendants lists the pids below pid.
func descendants(pid int) []int {
	tree := parents()
	kids := map[int][]int{}
	for c, p := range tree {
		kids[p] = append(kids[p], c)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range kids[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// killDescendants signals every process left below the proxy with
// SIGTERM, reaps them, and after grace sends SIGKILL to what is left.
func killDescendants(grace time.Duration) {
	me := os.Getpid()
	deadline := time.Now().Add(grace)
	sig := unix.SIGTERM
	for i := 0; ; i++ {
		left := descendants(me)
		if len(left) == 0 {
			return
		}
		if i > 0 && time.Now().After(deadline) {
			sig = unix.SIGKILL
		}
		if i == 0 || sig == unix.SIGKILL {
			for _, pid := range left {
				unix.Kill(pid, sig)
			}
		}
		reapOrphans(0)
		if sig == unix.SIGKILL && i > 200 {
			return // stuck in the kernel (D state); nothing more to do
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startNoNewPrivs starts cmd with no_new_privs set: the kernel keeps the
// flag on the tool and everything it starts, also after the proxy is gone
// (a same-uid tool can kill its proxy, and its orphans leave the proxy's
// tree then), and the guard refuses every process that has it. It also
// keeps the tool from gaining privileges through setuid programs (sudo).
// The flag is set on one locked thread that forks the tool and then
// exits with its goroutine, so the proxy's other threads never carry it;
// not on the main thread, which the runtime keeps rather than ends.
func startNoNewPrivs(cmd *exec.Cmd) error {
	// A try that lands on the main thread keeps it (locked, blocked) until
	// we return, so that the runtime runs the next try on another thread.
	release := make(chan struct{})
	defer close(release)
	for try := 0; try < 10; try++ {
		errc := make(chan error, 1)
		go func() {
			runtime.LockOSThread()
			if unix.Gettid() == os.Getpid() {
				errc <- errMainThread
				<-release
				runtime.UnlockOSThread()
				return
			}
			// Never unlocked: the thread ends with this goroutine.
			if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
				errc <- fmt.Errorf("setting no_new_privs: %w", err)
				return
			}
			errc <- cmd.Start()
		}()
		if err := <-errc; err != errMainThread {
			return err
		}
	}
	return errors.New("setting no_new_privs: no thread but the main one to start the tool from")
}

var errMainThread = errors.New("on the main thread")

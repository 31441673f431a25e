package agent_test

import (
	"bytes"
	"fmt"
	"log"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sshagent "golang.org/x/crypto/ssh/agent"

	"github.com/llm-agent/llm-agent/agent"
	"github.com/llm-agent/llm-agent/internal/credcmd"
	"github.com/llm-agent/llm-agent/protocol"
)

// gate is a debug writer that holds the first write containing match
// until open is closed, so that a test can stop the agent between a run's
// store commit and the end of its flight.
type gate struct {
	match   []byte
	once    sync.Once
	entered chan struct{}
	open    chan struct{}
}

func newGate(match string) *gate {
	return &gate{match: []byte(match), entered: make(chan struct{}), open: make(chan struct{})}
}

func (g *gate) Write(p []byte) (int, error) {
	if bytes.Contains(p, g.match) {
		hold := false
		g.once.Do(func() { hold = true })
		if hold {
			close(g.entered)
			<-g.open
		}
	}
	return len(p), nil
}

// getResult is what a get in a goroutine answered.
type getResult struct {
	key string
	err error
}

// goGet gets provider on c in a goroutine.
func goGet(t testing.TB, c *protocol.Client, provider string) <-chan getResult {
	done := make(chan getResult, 1)
	go func() {
		k, err := getKey(t, c, provider)
		done <- getResult{k, err}
	}()
	return done
}

// TestAttackReAddAfterCommit: a get that arrives after the owner removed a
// command credential and added it again with another command must get the
// new command's value, never the old one, even while the old run's flight
// is still ending (its value committed, its callers not yet answered).
func TestAttackReAddAfterCommit(t *testing.T) {
	g := newGate("command anthropic: value read in")
	ta := startAgent(t, agent.Config{Debug: log.New(g, "", 0)})
	// Connections are opened first: the agent logs each accept to Debug.
	admin, first, second := ta.client(t), newClient(ta.useRaw(t)), newClient(ta.useRaw(t))
	old := newCmdDir(t, "sk-FAKE-old\n")
	mustAdd(t, admin, cmdCred("anthropic", old.printer(), 0))
	done1 := make(chan error, 1)
	go func() {
		_, err := getKey(t, first, "anthropic")
		done1 <- err
	}()
	select {
	case <-g.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the first run did not finish")
	}
	if err := admin.Remove("anthropic"); err != nil {
		t.Fatal(err)
	}
	fresh := newCmdDir(t, "sk-FAKE-new\n")
	mustAdd(t, admin, cmdCred("anthropic", fresh.printer(), 0))
	done2 := goGet(t, second, "anthropic")
	// Let the second get reach the old flight before it ends.
	time.Sleep(300 * time.Millisecond)
	close(g.open)
	// The first get came before the remove, but is answered after it.
	if err := <-done1; failureCode(err) != protocol.CodeNotFound {
		t.Errorf("first get: %v, want not found (removed while it waited)", err)
	}
	r := <-done2
	if r.err != nil || r.key != "sk-FAKE-new" {
		t.Fatalf("get after remove and re-add: %q, %v; want the new command's value", r.key, r.err)
	}
	if n := fresh.runs(t); n != 1 {
		t.Errorf("new command: %d runs, want 1", n)
	}
}

// TestAttackForwardedCannotAddCommand: no non-admin path (the use socket,
// a forwarded connection on the admin socket) can add a command
// credential, replace one by a credential with another command, or add a
// Keychain write-back target; nothing runs and the store is unchanged.
func TestAttackForwardedCannotAddCommand(t *testing.T) {
	ta := startAgent(t, agent.Config{})
	admin := ta.client(t)
	d := newCmdDir(t, "sk-FAKE-owner\n")
	mustAdd(t, admin, cmdCred("anthropic", d.printer(), 0))
	pwned := d.path("pwned")
	evil := cmdCred("anthropic", "touch '"+pwned+"'; echo sk-FAKE-evil", 0)
	evilNew := cmdCred("evil", "touch '"+pwned+"'; echo sk-FAKE-evil", 0)
	kc := &protocol.AddRequest{Credential: protocol.Credential{Provider: "anthropic", Kind: protocol.KindOAuth,
		Fields: []protocol.Field{{Name: protocol.FieldRefresh, Value: []byte("rt-FAKE")}, {Name: protocol.FieldAccess, Value: []byte("at-FAKE")}}},
		Constraints: protocol.Constraints{Keychain: &protocol.KeychainItem{Service: "Claude Code-credentials", Account: "victim"}}}
	for name, c := range map[string]*protocol.Client{
		"use socket":         newClient(ta.useRaw(t)),
		"forwarded on admin": ta.boundClient(t, newHostKey(t)),
		"two hops on admin":  ta.boundClient(t, newHostKey(t), newHostKey(t)),
		"use socket after a bind": func() *protocol.Client {
			c := ta.useRaw(t)
			bind(t, c, newHostKey(t).bindFrame(t, false))
			return newClient(c)
		}(),
	} {
		for what, r := range map[string]*protocol.AddRequest{"replace": evil, "new": evilNew, "keychain": kc} {
			if err := c.Add(r); failureCode(err) != protocol.CodeNotPermitted {
				t.Errorf("%s: add (%s): %v, want not permitted", name, what, err)
			}
		}
		if err := c.Remove("anthropic"); failureCode(err) != protocol.CodeNotPermitted {
			t.Errorf("%s: remove: %v", name, err)
		}
	}
	wantKey(t, admin, "anthropic", "sk-FAKE-owner")
	if _, err := os.Stat(pwned); err == nil {
		t.Fatal("a forwarded add made the laptop run its command")
	}
	if list, _ := admin.List(); len(list) != 1 || list[0].Command != d.printer() {
		t.Errorf("store changed: %+v", list)
	}
}

// TestAttackHostileCommands: commands that hang, flood, trickle, close
// stdout and live on, or leave their process group holding stdout or
// stderr, end within the timeout plus a small grace; meanwhile list,
// status, the SSH-key side and gets of other credentials answer at once;
// 50 failing runs leave no file descriptors or goroutines behind.
func TestAttackHostileCommands(t *testing.T) {
	const timeout = time.Second
	ta := startAgent(t, agent.Config{CommandTimeout: timeout})
	admin := ta.client(t)
	good := newCmdDir(t, "sk-FAKE-good\n")
	mustAdd(t, admin, cmdCred("good", good.printer(), 0))
	wantKey(t, admin, "good", "sk-FAKE-good")
	hostile := []struct{ name, cmd, why string }{
		{"never exits", "sleep 30", "did not finish within"},
		{"100 MB", "head -c 100000000 /dev/zero", "printed more than"},
		{"trickles forever", "while :; do printf x; sleep 0.05; done", "did not finish within"},
		{"closes stdout, runs on", "exec >&-; sleep 30", "did not finish within"},
		{"setsid child holds stdout", "setsid sleep 3 & echo sk-FAKE-x", "kept its output open"},
		{"double fork holds stderr", "( setsid sh -c 'sleep 3' >/dev/null & ); echo sk-FAKE-y; exit 3", "exited with status 3"},
		{"setsid child holds both, shell hangs", "setsid sleep 3 & sleep 30", "did not finish within"},
	}
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	// Clients first: their sockets are not the leak looked for.
	const runs = 50
	clients := make([]*protocol.Client, runs)
	for i := range clients {
		clients[i] = newClient(ta.useRaw(t))
	}
	for i := range runs {
		h := hostile[i%len(hostile)]
		mustAdd(t, admin, cmdCred(fmt.Sprintf("h%02d", i), h.cmd, 0))
	}
	keys := sshagent.NewClient(dialRaw(t, ta.sock))
	// Every connection served once (and the SSH agent client's reader
	// started) before the count.
	if _, err := keys.List(); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		if _, err := c.Status(); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	fds0, gs0 := fds(), runtime.NumGoroutine()
	var wg sync.WaitGroup
	var maxTook atomic.Int64
	// Two waves of 25: 50 shells forking at once on a small shared CI
	// machine measure its scheduler, not the agent.
	for i, c := range clients {
		if i == runs/2 {
			wg.Wait()
		}
		h := hostile[i%len(hostile)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			_, err := getKey(t, c, fmt.Sprintf("h%02d", i))
			took := time.Since(start)
			if cur := maxTook.Load(); int64(took) > cur {
				maxTook.CompareAndSwap(cur, int64(took))
			}
			if h.name == "setsid child holds stdout" && err == nil {
				return // killed before it left the group: a clean run
			}
			// Under load a slow fork can turn any of them into a timeout:
			// what counts is a bounded failure, not which one.
			if err == nil || failureCode(err) != protocol.CodeFailed {
				t.Errorf("%s: %v, want a failure (typically %q)", h.name, err, h.why)
			} else if !strings.Contains(err.Error(), h.why) {
				t.Logf("%s: %v (typically %q)", h.name, err, h.why)
			}
		}()
	}
	// While the second wave hangs: the rest of the agent answers.
	time.Sleep(200 * time.Millisecond)
	check := func(what string, f func() error) {
		start := time.Now()
		if err := f(); err != nil {
			t.Errorf("%s during the runs: %v", what, err)
		}
		took := time.Since(start)
		t.Logf("%s during the runs: %v", what, took)
		if took > time.Second {
			t.Errorf("%s during the runs took %v", what, took)
		}
	}
	check("list", func() error { _, err := admin.List(); return err })
	check("status", func() error { _, err := admin.Status(); return err })
	check("ssh-add -l", func() error { _, err := keys.List(); return err })
	check("get of another credential", func() error { _, err := getKey(t, admin, "good"); return err })
	wg.Wait()
	t.Logf("%d hostile runs, longest get %v (timeout %v)", runs, time.Duration(maxTook.Load()), timeout)
	if took := time.Duration(maxTook.Load()); took > timeout+1500*time.Millisecond {
		t.Errorf("a hostile run held its get for %v", took)
	}
	// The runs' own goroutines and pipes end with them.
	var fds1, gs1 int
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		runtime.GC()
		fds1, gs1 = fds(), runtime.NumGoroutine()
		if (fds1 <= fds0 && gs1 <= gs0) || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("fds %d -> %d, goroutines %d -> %d", fds0, fds1, gs0, gs1)
	if fds1 > fds0 || gs1 > gs0 {
		t.Errorf("after %d failing runs: fds %d -> %d, goroutines %d -> %d", runs, fds0, fds1, gs0, gs1)
	}
	for i := range runs {
		if e := listEntry(t, admin, fmt.Sprintf("h%02d", i)); (e.Attention == "") == !e.HasValue {
			t.Errorf("h%02d: list %+v", i, e)
		}
	}
}

// TestAttackLockDuringRun: a get whose command is still running when the
// owner locks the agent is refused as locked when the run ends, rather
// than answered after the lock; the value is kept for after the unlock.
func TestAttackLockDuringRun(t *testing.T) {
	ta := startAgent(t, agent.Config{})
	admin := ta.client(t)
	d := newCmdDir(t, "sk-FAKE-locked\n")
	mustAdd(t, admin, cmdCred("anthropic", d.counted(fmt.Sprintf("while [ ! -e '%s' ]; do sleep 0.02; done; cat '%s'", d.path("go"), d.path("value"))), 0))
	remote := newClient(ta.useRaw(t))
	done := goGet(t, remote, "anthropic")
	waitFor(t, "the run", func() bool { return d.runs(t) == 1 })
	if err := admin.Lock([]byte("pw")); err != nil {
		t.Fatal(err)
	}
	d.write(t, "go", "")
	if r := <-done; failureCode(r.err) != protocol.CodeLocked {
		t.Fatalf("get in flight across a lock: %q, %v; want code locked", r.key, r.err)
	}
	if !strings.Contains(ta.audit.String(), `"decision":"deny","reason":"agent is locked (while the get waited)"`) {
		t.Errorf("no audit record of the refusal:\n%s", ta.audit)
	}
	if err := admin.Unlock([]byte("pw")); err != nil {
		t.Fatal(err)
	}
	wantKey(t, admin, "anthropic", "sk-FAKE-locked")
	if n := d.runs(t); n != 1 {
		t.Errorf("%d runs, want 1 (the value was kept across the lock)", n)
	}
}

// TestAttackSecretOnStderr: a command that echoes its value on stderr's
// first line (set -x, a chatty wrapper) does not put it in the audit log
// or the debug output; what a failed run wrote on stderr never reaches
// the server's error text.
func TestAttackSecretOnStderr(t *testing.T) {
	var debug syncBuffer
	audit := &syncBuffer{}
	ta := startAgent(t, agent.Config{Debug: log.New(&debug, "", 0), Audit: agent.NewAuditLog(audit, &debug)})
	admin := ta.client(t)
	secret := fmt.Sprintf("sk-FAKE-stderr-%d", time.Now().UnixNano())
	d := newCmdDir(t, secret+"\n")
	for _, tt := range []struct{ provider, script string }{
		{"whole", "echo \"got $(cat '%[1]s')\" >&2; cat '%[1]s'"},
		{"cut", "printf '%%0190d%%s\\n' 0 \"$(cat '%[1]s')\" >&2; cat '%[1]s'"},
		{"escaped", "printf 'v=\\033[1m%%s\\n' \"$(cat '%[1]s')\" >&2; cat '%[1]s'"},
	} {
		mustAdd(t, admin, cmdCred(tt.provider, d.counted(fmt.Sprintf(tt.script, d.path("value"))), 0))
		wantKey(t, admin, tt.provider, secret)
	}
	// A failed run gave no value to compare with: its first stderr line is
	// kept for the owner (the audit log is 0600 on the laptop), and never
	// sent to the server.
	mustAdd(t, admin, cmdCred("failing", "echo failed-marker-$((40+2)) >&2; exit 1", 0))
	_, err := getKey(t, newClient(ta.useRaw(t)), "failing")
	if err == nil || strings.Contains(err.Error(), "marker") {
		t.Errorf("server's error for a failed run: %v", err)
	}
	if !strings.Contains(audit.String(), "stderr: failed-marker-42;") || strings.Count(audit.String(), credcmd.StderrWithheld) != 3 {
		t.Errorf("audit log:\n%s", audit)
	}
	for what, data := range map[string]string{"audit log": audit.String(), "debug output": debug.String()} {
		for _, part := range []string{secret, secret[:16]} {
			if strings.Contains(data, part) {
				t.Errorf("%s holds %q of the value", what, part)
			}
		}
	}
}

// TestAttackLifetimeTicking: with -t 1 on the real clock, 100 clients
// getting in a loop for 2.5 s while the reaper forgets the value each
// second always get a value, and the runs stay about one per lifetime.
func TestAttackLifetimeTicking(t *testing.T) {
	ta := startAgent(t, agent.Config{})
	d := newCmdDir(t, "sk-FAKE-tick\n")
	mustAdd(t, ta.client(t), cmdCred("anthropic", d.printer(), 1))
	clients := make([]*protocol.Client, 100)
	for i := range clients {
		clients[i] = newClient(ta.useRaw(t))
	}
	var gets, fails atomic.Int64
	stop := time.Now().Add(2500 * time.Millisecond)
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				gets.Add(1)
				if k, err := getKey(t, c, "anthropic"); err != nil || k != "sk-FAKE-tick" {
					if fails.Add(1) == 1 {
						t.Errorf("get: %q, %v", k, err)
					}
				}
			}
		}()
	}
	wg.Wait()
	runs := d.runs(t)
	t.Logf("%d gets, %d failed, %d runs in 2.5 s with -t 1", gets.Load(), fails.Load(), runs)
	if runs < 2 || runs > 5 {
		t.Errorf("%d runs in 2.5 s with a 1 s lifetime", runs)
	}
}

// TestAttackRemoveAllDuringRun: remove --all while a run is in flight
// answers the waiting gets "not found" and stores nothing.
func TestAttackRemoveAllDuringRun(t *testing.T) {
	ta := startAgent(t, agent.Config{})
	admin := ta.client(t)
	d := newCmdDir(t, "sk-FAKE-gone\n")
	mustAdd(t, admin, cmdCred("anthropic", d.counted(fmt.Sprintf("while [ ! -e '%s' ]; do sleep 0.02; done; cat '%s'", d.path("go"), d.path("value"))), 0))
	waiting := make([]<-chan getResult, 10)
	for i := range waiting {
		waiting[i] = goGet(t, newClient(ta.useRaw(t)), "anthropic")
	}
	waitFor(t, "the run", func() bool { return d.runs(t) == 1 })
	if n, err := admin.RemoveAll(); err != nil || n != 1 {
		t.Fatalf("remove-all: %d, %v", n, err)
	}
	d.write(t, "go", "")
	for _, w := range waiting {
		if r := <-w; failureCode(r.err) != protocol.CodeNotFound {
			t.Errorf("get across remove-all: %q, %v", r.key, r.err)
		}
	}
	if list, err := admin.List(); err != nil || len(list) != 0 {
		t.Errorf("list after remove-all: %+v, %v", list, err)
	}
}

// TestAttackCloseDuringHostileRuns: closing the agent while 20 hostile
// runs are in flight (setsid holders, ignored SIGTERM, never-ending
// output) returns promptly and ends every waiting get with a failure.
func TestAttackCloseDuringHostileRuns(t *testing.T) {
	ta := startAgent(t, agent.Config{CommandTimeout: 20 * time.Second})
	admin := ta.client(t)
	cmds := []string{
		"trap '' TERM; sleep 30",
		"setsid sleep 3 & sleep 30",
		"yes sk-FAKE | head -c 60000; sleep 30",
		"exec >&-; trap '' TERM; sleep 30",
	}
	const n = 20
	waiting := make([]<-chan getResult, n)
	for i := range n {
		p := fmt.Sprintf("c%02d", i)
		mustAdd(t, admin, cmdCred(p, cmds[i%len(cmds)], 0))
		waiting[i] = goGet(t, newClient(ta.useRaw(t)), p)
	}
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	ta.Close()
	took := time.Since(start)
	for i, w := range waiting {
		select {
		case r := <-w:
			if r.err == nil {
				t.Errorf("c%02d: a get across Close succeeded", i)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("c%02d: get still waiting 5 s after Close", i)
		}
	}
	t.Logf("Close with %d runs in flight took %v", n, took)
	if took > 3*time.Second {
		t.Errorf("Close took %v", took)
	}
}

// TestAttackKeychainItemNames: the agent itself (not only the client)
// refuses a Keychain write-back target whose service or account could
// break security -i's tokenizer, or that is too long.
func TestAttackKeychainItemNames(t *testing.T) {
	ta := startAgent(t, agent.Config{})
	admin := ta.client(t)
	for _, item := range []protocol.KeychainItem{
		{Service: `Claude Code-credentials" -w "x`, Account: "alice"},
		{Service: "Claude Code-credentials", Account: `alice\`},
		{Service: "Claude Code-credentials", Account: "alice\ndelete-generic-password -s x"},
		{Service: "Claude Code-credentials", Account: "alice'"},
		{Service: "Claude Code-credentials", Account: "ålice"},
		{Service: strings.Repeat("s", protocol.MaxKeychainText+1), Account: "alice"},
		{Service: "", Account: "alice"},
	} {
		r := &protocol.AddRequest{Credential: protocol.Credential{Provider: "anthropic", Kind: protocol.KindOAuth,
			Fields: []protocol.Field{{Name: protocol.FieldRefresh, Value: []byte("rt-FAKE")}, {Name: protocol.FieldAccess, Value: []byte("at-FAKE")}}},
			Constraints: protocol.Constraints{Keychain: &item}}
		err := admin.Add(r)
		quoteOK := item.Account == "alice'" // single quotes are plain text to security -i
		if quoteOK != (err == nil) {
			t.Errorf("add with Keychain item %q/%q: %v", item.Service, item.Account, err)
		}
		admin.Remove("anthropic")
	}
}

// TestAttackGetFloodDuringRun: while a command hangs, a flood of gets of
// its credential on the use socket, beyond the connection limit, neither
// runs it again nor locks the owner out of list and status.
func TestAttackGetFloodDuringRun(t *testing.T) {
	const limit = 16
	ta := startAgent(t, agent.Config{MaxConns: limit, CommandTimeout: 2 * time.Second})
	admin := ta.client(t)
	d := newCmdDir(t, "")
	mustAdd(t, admin, cmdCred("anthropic", d.counted("sleep 30"), 0))
	const flood = 100
	waiting := make([]<-chan getResult, 0, flood)
	for range flood {
		c, err := net.DialTimeout("unix", ta.use, 2*time.Second)
		if err != nil {
			t.Logf("dial %d: %v", len(waiting), err)
			break
		}
		t.Cleanup(func() { c.Close() })
		waiting = append(waiting, goGet(t, newClient(c), "anthropic"))
	}
	waitFor(t, "the run", func() bool { return d.runs(t) == 1 })
	start := time.Now()
	fresh := ta.client(t)
	if _, err := fresh.List(); err != nil {
		t.Errorf("the owner's list during the flood: %v", err)
	}
	// (An idle connection of the owner's may be the one evicted for the
	// flood: a new one is what a client opens.)
	if _, err := ta.client(t).Status(); err != nil {
		t.Errorf("the owner's status during the flood: %v", err)
	}
	t.Logf("owner's list and status with %d gets waiting (limit %d): %v", len(waiting), limit, time.Since(start))
	failed := 0
	for _, w := range waiting {
		if r := <-w; r.err != nil {
			failed++
		}
	}
	if failed != len(waiting) || d.runs(t) != 1 {
		t.Errorf("%d of %d gets failed, %d runs; want all, 1", failed, len(waiting), d.runs(t))
	}
}

// TestAttackRemoveDuringConfirm: a get of a -c credential whose confirm
// prompt is answered yes after the owner removed (or replaced) the
// credential is refused: nothing the owner removed leaves the agent.
func TestAttackRemoveDuringConfirm(t *testing.T) {
	dir := t.TempDir()
	askpass := dir + "/askpass"
	// Says yes once the file "go" exists.
	script := fmt.Sprintf("#!/bin/sh\ntouch '%[1]s/asked'; while [ ! -e '%[1]s/go' ]; do sleep 0.02; done; exit 0\n", dir)
	if err := os.WriteFile(askpass, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, readd := range []bool{false, true} {
		t.Run(fmt.Sprintf("re-add %v", readd), func(t *testing.T) {
			os.Remove(dir + "/go")
			os.Remove(dir + "/asked")
			ta := startAgent(t, agent.Config{Askpass: askpass})
			admin := ta.client(t)
			r := apiCred("anthropic", "sk-FAKE-removed")
			r.Confirm = true
			mustAdd(t, admin, r)
			done := goGet(t, newClient(ta.useRaw(t)), "anthropic")
			waitFor(t, "the prompt", func() bool { _, err := os.Stat(dir + "/asked"); return err == nil })
			if err := admin.Remove("anthropic"); err != nil {
				t.Fatal(err)
			}
			if readd {
				mustAdd(t, admin, apiCred("anthropic", "sk-FAKE-other"))
			}
			os.WriteFile(dir+"/go", nil, 0o600)
			if res := <-done; res.key == "sk-FAKE-removed" || failureCode(res.err) != protocol.CodeNotFound {
				t.Errorf("get confirmed after the remove: %q, %v", res.key, res.err)
			}
			if !strings.Contains(ta.audit.String(), "was removed or replaced while the get waited") {
				t.Errorf("no audit record of the refusal")
			}
		})
	}
}

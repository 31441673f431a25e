package e2e

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/internal/sshtest"
	"github.com/llm-agent/llm-agent/protocol"
)

// memlockUser makes the unprivileged user the agent runs as, with a
// directory of its own for the agent's socket (not under t.TempDir, whose
// parents are root's 0700 directories). The directory's cleanup runs
// before the user's removal and after the agent, whose cleanup StartAgent
// registers later still, has stopped.
func memlockUser(t testing.TB) (*sshtest.User, string) {
	t.Helper()
	u := sshtest.NewUser(t, "llmml")
	return u, publicDir(t, u)
}

// memlockProcField returns a "Name:" line's value from /proc/PID/status.
func memlockProcField(pid int, name string) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// memlockAlive reports whether pid is running (not gone, not a zombie).
func memlockAlive(pid int) bool {
	st := memlockProcField(pid, "State")
	return st != "" && !strings.HasPrefix(st, "Z") && !strings.HasPrefix(st, "X")
}

// memlockOneLine checks a client failure: exit 1, one line on stderr with
// the command's prefix.
func memlockOneLine(t testing.TB, what string, r Result, cmd string) string {
	t.Helper()
	msg := strings.TrimSuffix(r.Stderr, "\n")
	if r.Code != 1 {
		t.Errorf("%s: exit code %d, want 1 (stderr %q)", what, r.Code, msg)
	}
	if msg == "" || strings.Contains(msg, "\n") {
		t.Errorf("%s: want one line on stderr, got %q", what, msg)
	}
	if !strings.HasPrefix(msg, "llm-agent-client: "+cmd+": ") {
		t.Errorf("%s: stderr %q lacks the prefix %q", what, msg, "llm-agent-client: "+cmd+": ")
	}
	return msg
}

// digitsOut replaces digits by '#', so that messages that differ only in
// their numbers count as one.
func digitsOut(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return '#'
		}
		return r
	}, s)
}

// secretField names the field that get hands out for a kind.
func secretField(kind string) string {
	if kind == protocol.KindOAuth {
		return protocol.FieldAccess
	}
	return protocol.FieldKey
}

// TestMemlockLowLimit runs the agent as an ordinary user under
// "ulimit -l 64": small credentials work, one too large for the locked
// memory is refused with a clear error, and concurrent gets either succeed
// or fail cleanly, with the daemon serving throughout.
func TestMemlockLowLimit(t *testing.T) {
	u, dir := memlockUser(t)
	a := StartAgent(t, AgentOptions{Dir: dir, Cred: u.Cred(), Rlimits: "-l 64", Audit: true})
	env := a.Env()
	client := func(stdin string, args ...string) Result {
		t.Helper()
		r, _, _, err := tryRunAs(u.Cred(), env, stdin, 30*time.Second, bins.Client, args...)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	// The agent must really run as the user, under the low limit.
	if uids := strings.Fields(memlockProcField(a.PID, "Uid")); len(uids) == 0 || uids[0] != strconv.Itoa(u.UID) {
		t.Fatalf("agent runs as uid %v, want %d", uids, u.UID)
	}
	lim, _ := os.ReadFile(fmt.Sprintf("/proc/%d/limits", a.PID))
	for _, l := range strings.Split(string(lim), "\n") {
		if strings.HasPrefix(l, "Max locked memory") {
			t.Logf("agent pid %d, user %s: %s", a.PID, u.Name, strings.Join(strings.Fields(l), " "))
			if f := strings.Fields(l); len(f) < 5 || f[3] != "65536" {
				t.Fatalf("agent's RLIMIT_MEMLOCK is not 64 KiB: %q", l)
			}
		}
	}

	// A few small credentials fit.
	small := map[string]string{
		"small-a": "sk-small-a-" + randHex(t, 16),
		"small-b": "sk-small-b-" + randHex(t, 16),
	}
	for _, p := range []string{"small-a", "small-b"} {
		if r := client(small[p], "add", p); r.Code != 0 {
			t.Fatalf("add %s under ulimit -l 64: code %d, stderr %q", p, r.Code, r.Stderr)
		}
	}
	access := "at-small-c-" + randHex(t, 16)
	small["small-c"] = access
	oauth := fmt.Sprintf(`{"type":"oauth","refresh":"rt-small-c-%s","access":%q,"expires":%d}`,
		randHex(t, 16), access, time.Now().Add(time.Hour).UnixMilli())
	if r := client(oauth, "add", "--json", "small-c"); r.Code != 0 {
		t.Fatalf("add --json small-c under ulimit -l 64: code %d, stderr %q", r.Code, r.Stderr)
	}

	// A 20 KiB one fits too, but a get of it needs most of the 52 KiB
	// left (the open secret and the reply buffer): concurrent gets of it
	// must queue or fail cleanly.
	small["medium"] = "sk-medium-" + randHex(t, 10*1024-5)
	if r := client(small["medium"], "add", "medium"); r.Code != 0 {
		t.Fatalf("add of a %d byte secret under ulimit -l 64: code %d, stderr %q", len(small["medium"]), r.Code, r.Stderr)
	}

	// A ~60 KiB secret cannot be opened within 64 KiB of locked memory
	// (memguard's own key takes some): refused, clearly, with exit 1.
	big := "sk-big-" + randHex(t, 30*1024-4) // 61439 bytes, under MaxValueLen
	start := time.Now()
	r := client(big, "add", "big")
	t.Logf("add of a %d byte secret: exit %d after %v", len(big), r.Code, time.Since(start).Round(time.Millisecond))
	if strings.Contains(r.Stderr+r.Stdout, big[7:40]) {
		t.Fatalf("the refused secret is echoed by the client")
	}
	msg := memlockOneLine(t, "add of a 60 KiB secret", r, "add")
	t.Logf("refusal: %s", msg)
	if !strings.Contains(msg, "locked memory") || !strings.Contains(msg, "ulimit -l") {
		t.Errorf("the refusal %q does not mention locked memory and ulimit -l", msg)
	}

	// The daemon keeps serving: the list holds the small ones only, and
	// they still come back right.
	checkServing := func(when string) {
		t.Helper()
		if !memlockAlive(a.PID) {
			b, _ := os.ReadFile(a.Stderr)
			t.Fatalf("%s: the agent (pid %d) is gone; stderr:\n%s", when, a.PID, b)
		}
		r := client("", "list")
		if r.Code != 0 {
			t.Fatalf("%s: list: code %d, stderr %q", when, r.Code, r.Stderr)
		}
		for p := range small {
			if !strings.Contains(r.Stdout, p) {
				t.Errorf("%s: list lacks %s", when, p)
			}
		}
		if strings.Contains(r.Stdout, "big") {
			t.Errorf("%s: list shows the refused credential", when)
		}
		for p, want := range small {
			r := client("", "get", p)
			if r.Code != 0 || r.Stdout != want {
				t.Errorf("%s: get %s: code %d, right value %v, stderr %q", when, p, r.Code, r.Stdout == want, r.Stderr)
			}
		}
	}
	checkServing("after the refused add")

	// 50 concurrent gets under the low limit: each succeeds or fails with a
	// clear one-line error, none hangs (30 s each), the daemon survives.
	const n = 50
	type outcome struct {
		provider string
		res      Result
		took     time.Duration
		err      error
	}
	outs := make([]outcome, n)
	providers := []string{"small-a", "small-b", "small-c", "medium"}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := providers[i%len(providers)]
			r, _, took, err := tryRunAs(u.Cred(), env, "", 30*time.Second, bins.Client, "get", p)
			outs[i] = outcome{p, r, took, err}
		}()
	}
	wg.Wait()
	var ok, failed int
	var maxTook, sum time.Duration
	msgs := map[string]int{}
	perProvider := map[string][2]int{} // successes, failures
	for i, o := range outs {
		sum += o.took
		maxTook = max(maxTook, o.took)
		switch {
		case o.err != nil:
			t.Errorf("get #%d (%s): %v", i, o.provider, o.err)
		case o.res.Code == 0:
			if o.res.Stdout != small[o.provider] {
				t.Errorf("get #%d (%s): exit 0 with the wrong value", i, o.provider)
			}
			ok++
			c := perProvider[o.provider]
			c[0]++
			perProvider[o.provider] = c
		default:
			failed++
			c := perProvider[o.provider]
			c[1]++
			perProvider[o.provider] = c
			m := memlockOneLine(t, fmt.Sprintf("get #%d (%s)", i, o.provider), o.res, "get")
			msgs[digitsOut(m)]++
			if !strings.Contains(m, "locked memory") {
				t.Errorf("get #%d (%s): failure %q does not say it is about locked memory", i, o.provider, m)
			}
		}
	}
	t.Logf("%d concurrent gets under ulimit -l 64: %d succeeded, %d failed; mean %v, max %v",
		n, ok, failed, (sum / n).Round(time.Millisecond), maxTook.Round(time.Millisecond))
	for _, p := range providers {
		t.Logf("  %s (%d byte secret): %d ok, %d failed", p, len(small[p]), perProvider[p][0], perProvider[p][1])
	}
	keys := make([]string, 0, len(msgs))
	for k := range msgs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("  %d× %s", msgs[k], k)
	}
	checkServing("after 50 concurrent gets")

	// The processes above start a few ms apart, so few requests overlap.
	// Second wave: 50 connections opened first, then 50 gets released at
	// once (from the test process; the agent admits root as a peer).
	conns := make([]*protocol.Client, n)
	for i := range conns {
		c, err := protocol.Dial(a.Sock)
		if err != nil {
			t.Fatalf("dial #%d: %v", i, err)
		}
		c.Timeout = 30 * time.Second
		defer c.Close()
		conns[i] = c
	}
	type waveOut struct {
		provider string
		took     time.Duration
		err      error
		right    bool
	}
	wave := make([]waveOut, n)
	gate := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := providers[i%len(providers)]
			<-gate
			start := time.Now()
			cred, err := conns[i].Get(p, nil)
			wave[i] = waveOut{provider: p, took: time.Since(start), err: err}
			if err == nil {
				wave[i].right = string(cred.Value(secretField(cred.Kind))) == small[p]
				cred.Wipe()
			}
		}()
	}
	close(gate)
	wg.Wait()
	ok, failed, maxTook, sum = 0, 0, 0, 0
	msgs = map[string]int{}
	perProvider = map[string][2]int{}
	for i, o := range wave {
		sum += o.took
		maxTook = max(maxTook, o.took)
		c := perProvider[o.provider]
		var f *protocol.Failure
		switch {
		case o.err == nil:
			ok++
			c[0]++
			if !o.right {
				t.Errorf("wave get #%d (%s): wrong value", i, o.provider)
			}
		case errors.As(o.err, &f):
			failed++
			c[1]++
			msgs[fmt.Sprintf("code %d: %s", f.Code, digitsOut(f.Message))]++
			if f.Code != protocol.CodeResource || !strings.Contains(f.Message, "locked memory") {
				t.Errorf("wave get #%d (%s): failure code %d %q, want a locked-memory failure (code %d)", i, o.provider, f.Code, f.Message, protocol.CodeResource)
			}
		default:
			t.Errorf("wave get #%d (%s): %v (the connection broke or hung)", i, o.provider, o.err)
		}
		perProvider[o.provider] = c
	}
	t.Logf("%d simultaneous gets on open connections: %d succeeded, %d failed; mean %v, max %v",
		n, ok, failed, (sum / n).Round(time.Millisecond), maxTook.Round(time.Millisecond))
	for _, p := range providers {
		t.Logf("  %s: %d ok, %d failed", p, perProvider[p][0], perProvider[p][1])
	}
	for k, v := range msgs {
		t.Logf("  %d× %s", v, k)
	}
	checkServing("after 50 simultaneous gets")
	if b, _ := os.ReadFile(a.Stderr); strings.Contains(string(b), "panic") {
		t.Errorf("agent stderr holds a panic:\n%s", b)
	}
}

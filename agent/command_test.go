package agent_test

import (
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/agent"
	"github.com/llm-agent/llm-agent/internal/proctest"
	"github.com/llm-agent/llm-agent/memsafe"
	"github.com/llm-agent/llm-agent/protocol"
)

// cmdDir is a directory for one test's command: the value it prints
// (file "value"), a line per run ("runs"), and switches.
type cmdDir string

func newCmdDir(t *testing.T, value string) cmdDir {
	t.Helper()
	d := cmdDir(t.TempDir())
	d.write(t, "value", value)
	return d
}

func (d cmdDir) path(name string) string { return filepath.Join(string(d), name) }

func (d cmdDir) write(t testing.TB, name, data string) {
	t.Helper()
	if err := os.WriteFile(d.path(name), []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// runs is how many times the command ran.
func (d cmdDir) runs(t testing.TB) int {
	t.Helper()
	b, err := os.ReadFile(d.path("runs"))
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// counted is a command that counts its run, then does script.
func (d cmdDir) counted(script string) string {
	return fmt.Sprintf("echo run >>'%s'; %s", d.path("runs"), script)
}

// printer prints the value file.
func (d cmdDir) printer() string { return d.counted(fmt.Sprintf("cat '%s'", d.path("value"))) }

func cmdCred(provider, command string, lifetime uint32) *protocol.AddRequest {
	return &protocol.AddRequest{Credential: protocol.Credential{Provider: provider, Kind: protocol.KindAPI},
		Constraints: protocol.Constraints{Command: command, Lifetime: lifetime}}
}

// getKey gets provider and returns its key, or get's failure.
func getKey(t testing.TB, c *protocol.Client, provider string) (string, error) {
	t.Helper()
	cr, err := c.Get(provider, nil)
	if err != nil {
		return "", err
	}
	defer cr.Wipe()
	return string(cr.Value(protocol.FieldKey)), nil
}

func wantKey(t testing.TB, c *protocol.Client, provider, want string) {
	t.Helper()
	got, err := getKey(t, c, provider)
	if err != nil || got != want {
		t.Fatalf("get %s: %q, %v; want %q", provider, got, err, want)
	}
}

// TestCommandOutput: the value is the first line of plain output, or a
// member of JSON output; a wellknown credential gets its token so.
func TestCommandOutput(t *testing.T) {
	ta := startAgent(t, agent.Config{})
	c := ta.client(t)
	for i, tt := range []struct{ name, out, want string }{
		{"plain", "sk-ant-FAKE-plain\n", "sk-ant-FAKE-plain"},
		{"no line end", "sk-FAKE-bare", "sk-FAKE-bare"},
		{"crlf", "sk-FAKE-crlf\r\n", "sk-FAKE-crlf"},
		{"pass metadata", "hunter2-FAKE\nlogin: alice\nurl: https://example.com\n", "hunter2-FAKE"},
		{"json key", `{"key":"sk-FAKE-json"}`, "sk-FAKE-json"},
		{"json token escaped", "\n {\"token\":\"ya29.FAKE\\u002d\\\"q\\\"\",\"expires_at\":null}\n", `ya29.FAKE-"q"`},
		{"json apiKey", `{"apiKey":"sk-FAKE-apikey","other":[1,{"x":true}]}`, "sk-FAKE-apikey"},
		{"json access_token", `{"access_token":"at-FAKE","token_type":"Bearer"}`, "at-FAKE"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := newCmdDir(t, tt.out)
			provider := fmt.Sprintf("p%d", i)
			mustAdd(t, c, cmdCred(provider, d.printer(), 0))
			wantKey(t, c, provider, tt.want)
			wantKey(t, c, provider, tt.want)
			if n := d.runs(t); n != 1 {
				t.Errorf("%d runs, want 1 (no -t: the value is kept)", n)
			}
		})
	}
	t.Run("wellknown", func(t *testing.T) {
		d := newCmdDir(t, "wk-FAKE-token\n")
		mustAdd(t, c, &protocol.AddRequest{
			Credential: protocol.Credential{Provider: "wk", Kind: protocol.KindWellKnown,
				Fields: []protocol.Field{{Name: protocol.FieldKey, Value: []byte("EXAMPLE_TOKEN")}}},
			Constraints: protocol.Constraints{Command: d.printer()}})
		cr, err := c.Get("wk", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer cr.Wipe()
		if string(cr.Value(protocol.FieldKey)) != "EXAMPLE_TOKEN" || string(cr.Value(protocol.FieldToken)) != "wk-FAKE-token" {
			t.Errorf("got key %q token %q", cr.Value(protocol.FieldKey), cr.Value(protocol.FieldToken))
		}
	})
}

// TestCommandSingleFlight: 100 concurrent gets run the command once, and
// after the value's lifetime 100 more run it once more.
func TestCommandSingleFlight(t *testing.T) {
	clock := newClock()
	ta := startAgent(t, agent.Config{Now: clock.Now})
	d := newCmdDir(t, "sk-FAKE-first\n")
	// The sleep keeps the run open while the gets pile up.
	mustAdd(t, ta.client(t), cmdCred("anthropic", d.counted("sleep 0.3; cat '"+d.path("value")+"'"), 60))
	clients := make([]*protocol.Client, 100)
	for i := range clients {
		clients[i] = newClient(ta.useRaw(t))
	}
	burst := func(want string) {
		var wg sync.WaitGroup
		errs := make(chan error, len(clients))
		for _, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := getKey(t, c, "anthropic")
				if err == nil && got != want {
					err = fmt.Errorf("got %q", got)
				}
				if err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("get: %v (want %q)", err, want)
		}
	}
	burst("sk-FAKE-first")
	if n := d.runs(t); n != 1 {
		t.Fatalf("100 concurrent gets: %d runs, want 1", n)
	}
	d.write(t, "value", "sk-FAKE-second\n")
	clock.Advance(61 * time.Second)
	burst("sk-FAKE-second")
	if n := d.runs(t); n != 2 {
		t.Fatalf("100 concurrent gets after the lifetime: %d runs in all, want 2", n)
	}
}

// TestCommandLifetime: -t forgets the value, not the credential; the next
// get runs the command again and gets its new output.
func TestCommandLifetime(t *testing.T) {
	clock := newClock()
	ta := startAgent(t, agent.Config{Now: clock.Now, DefaultLifetime: time.Hour})
	c := ta.client(t)
	d := newCmdDir(t, "sk-FAKE-v1\n")
	mustAdd(t, c, cmdCred("anthropic", d.printer(), 60))
	e := listEntry(t, c, "anthropic")
	if e.Command != d.printer() || e.HasValue || e.ValueExpires != 0 || e.Attention != "" || e.Expires != 0 {
		t.Errorf("before the first get: %+v", e)
	}
	wantKey(t, c, "anthropic", "sk-FAKE-v1")
	e = listEntry(t, c, "anthropic")
	if !e.HasValue || e.ValueExpires != clock.Now().Add(60*time.Second).Unix() || e.Expires != 0 {
		t.Errorf("after the first get: %+v", e)
	}
	d.write(t, "value", "sk-FAKE-v2\n")
	clock.Advance(59 * time.Second)
	wantKey(t, c, "anthropic", "sk-FAKE-v1")
	clock.Advance(2 * time.Second)
	// Listed, with no value (whether or not the reaper has been by).
	e = listEntry(t, c, "anthropic")
	if e.HasValue || e.ValueExpires != 0 || e.Expires != 0 {
		t.Errorf("past the value's lifetime: %+v", e)
	}
	waitFor(t, "the reaper's forget", func() bool { return strings.Contains(ta.audit.String(), `"op":"forget","provider":"anthropic"`) })
	if n := d.runs(t); n != 1 {
		t.Errorf("%d runs before the next get, want 1", n)
	}
	wantKey(t, c, "anthropic", "sk-FAKE-v2")
	if n := d.runs(t); n != 2 {
		t.Errorf("%d runs, want 2", n)
	}
	// The agent's default -t is the value's lifetime too.
	mustAdd(t, c, cmdCred("openai", d.printer(), 0))
	wantKey(t, c, "openai", "sk-FAKE-v2")
	if e := listEntry(t, c, "openai"); e.ValueExpires != clock.Now().Add(time.Hour).Unix() || e.Expires != 0 {
		t.Errorf("default lifetime: %+v", e)
	}
}

// waitFor polls ok for up to 5 s.
func waitFor(t testing.TB, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !ok(); {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 5 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCommandExpiry: an expiry the command prints, less the 30 s margin,
// ends the value's life when it comes before -t's end.
func TestCommandExpiry(t *testing.T) {
	clock := newClock()
	ta := startAgent(t, agent.Config{Now: clock.Now})
	c := ta.client(t)
	for _, tt := range []struct {
		name   string
		expiry func(at time.Time) string // at: two minutes from now
		life   uint32
		keep   time.Duration
	}{
		{"rfc3339", func(at time.Time) string { return strconv.Quote(at.UTC().Format(time.RFC3339)) }, 3600, 90 * time.Second},
		{"milliseconds", func(at time.Time) string { return strconv.FormatInt(at.UnixMilli(), 10) }, 0, 90 * time.Second},
		{"seconds, later than -t", func(at time.Time) string { return strconv.FormatInt(at.Add(time.Hour).Unix(), 10) }, 60, 60 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := newCmdDir(t, `{"key":"sk-FAKE-exp","expiresAt":`+tt.expiry(clock.Now().Add(2*time.Minute))+`}`)
			mustAdd(t, c, cmdCred("anthropic", d.printer(), tt.life))
			wantKey(t, c, "anthropic", "sk-FAKE-exp")
			if e := listEntry(t, c, "anthropic"); e.ValueExpires != clock.Now().Add(tt.keep).Unix() {
				t.Errorf("value forgotten at %d, want now + %v", e.ValueExpires, tt.keep)
			}
			clock.Advance(tt.keep - time.Second)
			wantKey(t, c, "anthropic", "sk-FAKE-exp")
			if n := d.runs(t); n != 1 {
				t.Errorf("%d runs before the expiry, want 1", n)
			}
			clock.Advance(time.Second)
			d.write(t, "value", `{"token":"sk-FAKE-exp2"}`)
			wantKey(t, c, "anthropic", "sk-FAKE-exp2")
			if n := d.runs(t); n != 2 {
				t.Errorf("%d runs after the expiry, want 2", n)
			}
			clock.Advance(time.Hour)
		})
	}
	t.Run("within the margin", func(t *testing.T) {
		d := newCmdDir(t, fmt.Sprintf(`{"key":"sk-FAKE-late","expires_at":%d}`, clock.Now().Add(20*time.Second).Unix()))
		mustAdd(t, c, cmdCred("late", d.printer(), 0))
		_, err := getKey(t, c, "late")
		if want := `the "late" credential needs attention on the laptop: its command printed an expiry that has passed or is less than 30s away (see the laptop's audit log)`; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("get: %v; want %q", err, want)
		}
	})
}

// TestCommandFailures: a run that gives no value marks the credential;
// list shows why, get explains it, gets within the retry time fail at once
// without a run, and the next good run clears the mark.
func TestCommandFailures(t *testing.T) {
	clock := newClock()
	ta := startAgent(t, agent.Config{Now: clock.Now, CommandTimeout: 500 * time.Millisecond})
	c := ta.client(t)
	const stderrLog = "(its stderr is in the laptop's audit log)"
	for _, tt := range []struct {
		name, bad, why, where string
	}{
		{"exit 1", "echo x-$((40+2))-leak; echo 'op: not signed in' >&2; exit 1", "exited with status 1", stderrLog},
		{"hang", "sleep 30 & echo $! >'PIDFILE'; wait", "did not finish within 500ms", "(see the laptop's audit log)"},
		{"empty", "true", "printed nothing", "(see the laptop's audit log)"},
		{"too big", "head -c 70000 /dev/zero | tr '\\0' x", "printed more than 65536 bytes", "(see the laptop's audit log)"},
		{"bad json", `printf '{"key":"x-%s-leak' $((40+2))`, "printed JSON that does not parse (at byte 7: unterminated string)", "(see the laptop's audit log)"},
		{"json without a value", `printf '{"SecretAccessKey":"x-%s-leak"}' $((40+2))`,
			`printed JSON without a value: no "key", "token", "apiKey", "access_token", "accessToken" or "value" member`, "(see the laptop's audit log)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := newCmdDir(t, "")
			bad := strings.ReplaceAll(tt.bad, "PIDFILE", d.path("pid"))
			// Output is made at run time: the command line (in the add's
			// audit event) does not hold it.
			cmd := d.counted(fmt.Sprintf("if [ -e '%s' ]; then echo good-$((40+2))-leak; else %s; fi", d.path("good"), bad))
			mustAdd(t, c, cmdCred("anthropic", cmd, 0))
			want := `the "anthropic" credential needs attention on the laptop: its command ` + tt.why + " " + tt.where
			start := time.Now()
			_, err := getKey(t, c, "anthropic")
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("the failing get took %v", took)
			}
			if err == nil || err.Error() != want || failureCode(err) != protocol.CodeFailed {
				t.Fatalf("get: %v (code %d)\nwant: %s (code 1)", err, failureCode(err), want)
			}
			if e := listEntry(t, c, "anthropic"); e.Attention != "the command "+tt.why || e.HasValue {
				t.Errorf("list: %+v", e)
			}
			if tt.name == "hang" {
				pid := readPid(t, d.path("pid"))
				if !proctest.Gone(pid, 5*time.Second) {
					t.Error("the command's sleep outlived the run")
				}
			}
			// Within the retry time: the same answer at once, no run.
			d.write(t, "good", "")
			clock.Advance(4 * time.Second)
			if _, err := getKey(t, c, "anthropic"); err == nil || err.Error() != want {
				t.Errorf("get within the retry time: %v", err)
			}
			if n := d.runs(t); n != 1 {
				t.Errorf("%d runs within the retry time, want 1", n)
			}
			clock.Advance(2 * time.Second)
			wantKey(t, c, "anthropic", "good-42-leak")
			if e := listEntry(t, c, "anthropic"); e.Attention != "" || !e.HasValue {
				t.Errorf("list after a good run: %+v", e)
			}
			if n := d.runs(t); n != 2 {
				t.Errorf("%d runs, want 2", n)
			}
		})
	}
	audit := ta.audit.String()
	for _, want := range []string{
		`"op":"command","provider":"anthropic","decision":"error","reason":"the command exited with status 1 after `,
		`; stderr: op: not signed in; the credential needs attention, no new run for 5s"`,
		`"op":"command","provider":"anthropic","decision":"allow","reason":"value read in `,
	} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit log: no %s", want)
		}
	}
	if strings.Contains(audit, "42-leak") {
		t.Errorf("audit log: output of the command found:\n%s", audit)
	}
}

// TestCommandLockedMemory: output that cannot be read into locked memory
// is a run that gives no value, said as such.
func TestCommandLockedMemory(t *testing.T) {
	ta := startAgent(t, agent.Config{Budget: memsafe.NewBudget(0)})
	c := ta.client(t)
	mustAdd(t, c, cmdCred("anthropic", "echo sk-FAKE-nomem", 0))
	_, err := getKey(t, c, "anthropic")
	if err == nil || !strings.Contains(err.Error(), "its command ran, but its output could not be kept: out of locked memory") {
		t.Errorf("get: %v", err)
	}
	if e := listEntry(t, c, "anthropic"); !strings.HasPrefix(e.Attention, "the command ran, but its output could not be kept: ") {
		t.Errorf("list: %+v", e)
	}
}

func readPid(t testing.TB, file string) int {
	t.Helper()
	var pid int
	waitFor(t, "the command's pid file", func() bool {
		b, _ := os.ReadFile(file)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return pid > 0
	})
	return pid
}

// TestCommandReplacedDuringRun: a run whose credential is removed, or
// added again, meanwhile is discarded; the get answers for what is there
// now.
func TestCommandReplacedDuringRun(t *testing.T) {
	for _, readd := range []bool{false, true} {
		t.Run(fmt.Sprintf("re-add %v", readd), func(t *testing.T) {
			ta := startAgent(t, agent.Config{})
			c := ta.client(t)
			d := newCmdDir(t, "sk-FAKE-stale\n")
			// The run waits for the file "go".
			mustAdd(t, c, cmdCred("anthropic", d.counted(fmt.Sprintf("while [ ! -e '%s' ]; do sleep 0.02; done; cat '%s'", d.path("go"), d.path("value"))), 0))
			type result struct {
				key string
				err error
			}
			done := make(chan result, 1)
			go func() {
				k, err := getKey(t, ta.client(t), "anthropic")
				done <- result{k, err}
			}()
			waitFor(t, "the run", func() bool { return d.runs(t) == 1 })
			if readd {
				d2 := newCmdDir(t, "sk-FAKE-new\n")
				mustAdd(t, c, cmdCred("anthropic", d2.printer(), 0))
			} else if err := c.Remove("anthropic"); err != nil {
				t.Fatal(err)
			}
			d.write(t, "go", "")
			r := <-done
			switch {
			case readd && (r.err != nil || r.key != "sk-FAKE-new"):
				t.Errorf("get: %q, %v; want the new credential's value", r.key, r.err)
			case !readd && failureCode(r.err) != protocol.CodeNotFound:
				t.Errorf("get: %q, %v; want code 2", r.key, r.err)
			}
			waitFor(t, "the discarded run in the audit log", func() bool {
				return strings.Contains(ta.audit.String(), "and discarded: the credential was removed or added again meanwhile")
			})
			if readd {
				wantKey(t, c, "anthropic", "sk-FAKE-new")
			}
		})
	}
}

// TestCommandSecretsStayOut: the value is never in the audit log or the
// debug output, nor in the agent's or a later run's environment and
// arguments; the first line of stderr is in the audit log.
func TestCommandSecretsStayOut(t *testing.T) {
	var debug syncBuffer
	audit := &syncBuffer{}
	clock := newClock()
	ta := startAgent(t, agent.Config{Now: clock.Now, Debug: log.New(&debug, "", 0), Audit: agent.NewAuditLog(audit, &debug)})
	c := ta.client(t)
	secret := fmt.Sprintf("sk-FAKE-stayout-%d", time.Now().UnixNano())
	d := newCmdDir(t, secret+"\n")
	seen := d.path("seen")
	// Each run records what it was given, then prints the value file.
	mustAdd(t, c, cmdCred("anthropic", d.counted(fmt.Sprintf(
		"{ env; tr '\\0' ' ' </proc/$$/cmdline; tr '\\0' ' ' </proc/$PPID/cmdline; } >>'%s'; echo 'warning: cache is stale' >&2; cat '%s'",
		seen, d.path("value"))), 10))
	wantKey(t, c, "anthropic", secret)
	d.write(t, "value", "sk-FAKE-later\n")
	clock.Advance(11 * time.Second)
	wantKey(t, c, "anthropic", "sk-FAKE-later")
	for what, data := range map[string]string{"audit log": audit.String(), "debug output": debug.String(), "the runs' environment and arguments": readFile(t, seen)} {
		if strings.Contains(data, secret) {
			t.Errorf("%s holds the value", what)
		}
	}
	for _, f := range []string{"/proc/self/environ", "/proc/self/cmdline"} {
		if strings.Contains(readFile(t, f), secret) {
			t.Errorf("%s holds the value", f)
		}
	}
	if !strings.Contains(audit.String(), "; stderr: warning: cache is stale") || !strings.Contains(debug.String(), "command anthropic: value read in ") {
		t.Errorf("audit log or debug output without the run:\n%s\n%s", audit, debug.String())
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCommandClose: closing the agent kills a run in flight, its process
// group included, and the get waiting for it ends.
func TestCommandClose(t *testing.T) {
	ta := startAgent(t, agent.Config{})
	d := newCmdDir(t, "")
	mustAdd(t, ta.client(t), cmdCred("anthropic", d.counted(fmt.Sprintf("sleep 30 & echo $! >'%s'; wait", d.path("pid"))), 0))
	done := make(chan error, 1)
	c := ta.client(t)
	go func() {
		_, err := getKey(t, c, "anthropic")
		done <- err
	}()
	pid := readPid(t, d.path("pid"))
	start := time.Now()
	ta.Close()
	if err := <-done; err == nil {
		t.Error("get succeeded")
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Close took %v", took)
	}
	if !proctest.Gone(pid, 5*time.Second) {
		t.Error("the command's sleep outlived the agent")
	}
}

// BenchmarkCommandGet: a get served from the value held, and a get that
// runs the command first (the clock is moved past the value's lifetime
// before each).
func BenchmarkCommandGet(b *testing.B) {
	clock := newClock()
	ta := startAgent(b, agent.Config{Now: clock.Now})
	c := ta.client(b)
	mustAdd(b, c, cmdCred("anthropic", "echo sk-FAKE-bench", 60))
	b.Run("from memory", func(b *testing.B) {
		wantKey(b, c, "anthropic", "sk-FAKE-bench")
		for b.Loop() {
			if _, err := getKey(b, c, "anthropic"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("runs the command", func(b *testing.B) {
		for b.Loop() {
			clock.Advance(61 * time.Second)
			if _, err := getKey(b, c, "anthropic"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestCommandClients: only a peer running one of Config.CommandClients
// (here the test binary, or /bin/true, which no peer runs) may add a
// credential from a command; anything else on the admin socket (a relay
// of it, say) is refused with code 5 and an audit record, and the command
// never runs. Other adds from that peer are unaffected.
func TestCommandClients(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		clients []string
		allowed bool
	}{
		{"the client itself", []string{self}, true},
		{"another program", []string{"/bin/true"}, false},
		{"none", []string{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ta := startAgent(t, agent.Config{CommandClients: tc.clients})
			c := ta.client(t)
			d := newCmdDir(t, "sk-FAKE-cmdclient")
			err := c.Add(cmdCred("anthropic", d.printer(), 0))
			if tc.allowed {
				if err != nil {
					t.Fatalf("add: %v", err)
				}
				wantKey(t, c, "anthropic", "sk-FAKE-cmdclient")
				return
			}
			var f *protocol.Failure
			if !errors.As(err, &f) || f.Code != protocol.CodeNotPermitted || !strings.Contains(f.Message, "only by llm-agent-client on the laptop") {
				t.Fatalf("add from a program not in CommandClients: %v", err)
			}
			if _, err := getKey(t, c, "anthropic"); err == nil {
				t.Error("the refused credential is there")
			}
			if n := d.runs(t); n != 0 {
				t.Errorf("the command ran %d times", n)
			}
			if !strings.Contains(ta.audit.String(), `"op":"add","provider":"anthropic","decision":"deny"`) {
				t.Errorf("no audit record of the refusal: %s", ta.audit.String())
			}
			if err := c.Add(&protocol.AddRequest{Credential: protocol.Credential{Provider: "openai", Kind: protocol.KindAPI,
				Fields: []protocol.Field{{Name: protocol.FieldKey, Value: []byte("sk-FAKE")}}}}); err != nil {
				t.Errorf("a plain add from the same peer: %v", err)
			}
		})
	}
}

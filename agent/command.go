package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/llm-agent/llm-agent/internal/credcmd"
	"github.com/llm-agent/llm-agent/memsafe"
	"github.com/llm-agent/llm-agent/protocol"
)

// A credential added with a command (llm-agent-client add --from-command,
// the constraint command@llm-agent) gets its secret from that command,
// run on the laptop by the agent (package credcmd), when a get needs it:
// at the first get, and again at the first get after the value's lifetime
// (its -t, or an expiry the command printed, whichever is sooner) is over.
// Concurrent gets share one run. The value is sealed into a copy of the
// credential that replaces it in the store, unless the credential was
// removed or added again meanwhile. The credential itself never expires by
// -t; its value is forgotten (the reaper, "forget" in the audit log).
//
// A run that gives no value marks the credential as needing attention,
// with a one-line reason that list shows and get explains; for
// CommandRetry after it, gets fail at once with that reason, and then the
// next get runs the command again. A run that gives a value clears it.

// commands runs the commands of one agent's credentials.
type commands struct {
	a       *Agent
	runner  *credcmd.Runner
	retry   time.Duration
	margin  time.Duration // a printed expiry is moved this much earlier
	flights *flights

	// ctx ends at Close, which kills the runs in flight.
	ctx     context.Context
	cancel  context.CancelFunc
	mu      sync.Mutex
	closed  bool
	running sync.WaitGroup
}

func newCommands(a *Agent) *commands {
	cfg := a.cfg
	c := &commands{a: a, retry: cfg.CommandRetry, margin: cfg.RefreshMargin, flights: newFlights(a),
		runner: &credcmd.Runner{Budget: cfg.Budget, Limit: protocol.MaxValueLen, Timeout: cfg.CommandTimeout}}
	if c.retry <= 0 {
		c.retry = 5 * time.Second
	}
	if c.margin <= 0 {
		c.margin = 30 * time.Second
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// holdsValue reports whether c holds a value its command printed, still
// within its lifetime.
func (c *credential) holdsValue(now time.Time) bool {
	return c.has(protocol.CommandField(c.kind)) && (c.valueExpires.IsZero() || now.Before(c.valueExpires))
}

// needsAttention reports whether the last run of c's command gave no
// value less than the retry time ago.
func (c *credential) needsAttention(now time.Time) bool {
	return c.attention != "" && now.Before(c.retryAt)
}

// attentionError is get's answer for a credential whose command gave no
// value.
func attentionError(c *credential) error {
	where := "see the laptop's audit log"
	if c.stderrLogged {
		where = "its stderr is in the laptop's audit log"
	}
	why := c.attention
	if f, ok := strings.CutPrefix(why, "the command "); ok {
		why = "its command " + f
	}
	return fmt.Errorf("the %q credential needs attention on the laptop: %s (%s)", c.provider, why, where)
}

// withoutValue returns a copy of c without the value its command printed.
func (c *credential) withoutValue() *credential {
	nc := *c
	nc.fields, nc.size, nc.valueExpires = nil, 0, time.Time{}
	field := protocol.CommandField(c.kind)
	for _, f := range c.fields {
		if f.name == field {
			continue
		}
		nc.fields = append(nc.fields, f)
		nc.size += len(f.name) + len(f.plain)
	}
	return &nc
}

// withValue returns a copy of c holding sec, its command's value, until
// until (zero: until removed), and no attention mark.
func (c *credential) withValue(sec *memsafe.Secret, until time.Time) *credential {
	nc := c.withoutValue()
	field := protocol.CommandField(c.kind)
	nc.fields = append(nc.fields, storedField{name: field, secret: sec})
	nc.size += len(field) + sec.Len()
	nc.valueExpires, nc.attention, nc.stderrLogged, nc.retryAt = until, "", false, time.Time{}
	return nc
}

// withAttention returns a copy of c without a value, marked with why.
func (c *credential) withAttention(why string, stderrLogged bool, retryAt time.Time) *credential {
	nc := c.withoutValue()
	nc.attention, nc.stderrLogged, nc.retryAt = why, stderrLogged, retryAt
	return nc
}

// commit replaces the provider's credential by nc, a copy of old that a
// run made, if the credential still comes from the add that made old (the
// reaper may have replaced old by a copy without its value meanwhile).
func (s *store) commit(old, nc *credential) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.creds[old.provider]
	if cur == nil || cur.gen != old.gen {
		return false
	}
	s.bytes += nc.size - cur.size
	s.creds[old.provider] = nc
	return true
}

// check is what get tests before the confirm prompt: a credential whose
// command failed a moment ago fails at once (code 1).
func (cs *commands) check(cr *credential) error {
	if cr.needsAttention(cs.a.cfg.Now()) {
		return attentionError(cr)
	}
	return nil
}

// fresh returns the credential to hand out for cr: cr while it holds a
// value within its lifetime, else the one holding the value of a run
// (waiting for the run in flight, or starting one).
func (cs *commands) fresh(cr *credential) (*credential, error) {
	return cs.flights.do(cr, cs.settle, cs.run)
}

func (cs *commands) settle(cr *credential, now time.Time) (bool, *credential, error) {
	switch {
	case cr.holdsValue(now):
		return true, cr, nil
	case cr.needsAttention(now):
		return true, nil, attentionError(cr)
	}
	return false, nil, nil
}

// begin counts a run in, unless the agent is closing.
func (cs *commands) begin() bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closed {
		return false
	}
	cs.running.Add(1)
	return true
}

// stop kills the runs in flight and waits (a little) for them to end.
func (cs *commands) stop() {
	cs.mu.Lock()
	cs.closed = true
	cs.mu.Unlock()
	cs.cancel()
	done := make(chan struct{})
	go func() { cs.running.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
}

// forgot audits the reaper's forgetting of provider's value.
func (cs *commands) forgot(provider string) {
	cs.a.cfg.Audit.Log(Event{Op: "forget", Provider: provider, Decision: "allow",
		Reason: "the value the command printed is past its lifetime; the next get runs the command again"})
}

// run runs old's command, stores the outcome and returns the credential
// holding the value, or get's error.
func (cs *commands) run(old *credential) (*credential, error) {
	a := cs.a
	if !cs.begin() {
		return nil, errors.New("the agent is shutting down")
	}
	defer cs.running.Done()
	if old.has(protocol.CommandField(old.kind)) {
		// Past its lifetime, not yet forgotten by the reaper.
		cs.forgot(old.provider)
	}
	var (
		nc   *credential
		kept string
	)
	rep, err := cs.runner.Run(cs.ctx, old.cons.Command, func(value []byte, expires time.Time) error {
		until, why, err := cs.keepUntil(old, a.cfg.Now(), expires)
		if err != nil {
			return err
		}
		sec, err := a.cfg.Budget.Seal(value)
		if err != nil {
			return err
		}
		nc, kept = old.withValue(sec, until), why
		return nil
	})
	took := rep.Took.Round(time.Millisecond)
	stderr := ""
	if rep.Stderr != "" {
		stderr = "; stderr: " + rep.Stderr
	}
	log := func(decision, reason string) {
		a.cfg.Audit.Log(Event{Op: "command", Provider: old.provider, Decision: decision, Reason: reason})
		a.cfg.Debug.Printf("command %s: %s", old.provider, reason)
	}
	if err != nil {
		var f *credcmd.Failure
		why := err.Error()
		if !errors.As(err, &f) {
			why = "the command ran, but its output could not be kept: " + err.Error()
		}
		marked := old.withAttention(why, rep.Stderr != "", a.cfg.Now().Add(cs.retry))
		if !a.store.commit(old, marked) {
			log("error", fmt.Sprintf("%s after %s%s; the credential was removed or added again meanwhile", why, took, stderr))
			return nil, errSuperseded
		}
		log("error", fmt.Sprintf("%s after %s%s; the credential needs attention, no new run for %s", why, took, stderr, cs.retry))
		return nil, attentionError(marked)
	}
	if !a.store.commit(old, nc) {
		log("error", fmt.Sprintf("value read in %s%s, and discarded: the credential was removed or added again meanwhile", took, stderr))
		return nil, errSuperseded
	}
	log("allow", fmt.Sprintf("value read in %s, %s%s", took, kept, stderr))
	return nc, nil
}

// keepUntil returns when a value old's command printed at now, with the
// expiry it printed (zero: none), is forgotten (zero: never), and says
// why for the audit log. An expiry within the margin is a Failure.
func (cs *commands) keepUntil(old *credential, now, expires time.Time) (time.Time, string, error) {
	var until time.Time
	why := "kept until the credential is removed"
	if old.valueLife > 0 {
		until = now.Add(old.valueLife)
		why = "kept for " + old.valueLife.String()
	}
	if expires.IsZero() {
		return until, why, nil
	}
	early := expires.Add(-cs.margin)
	if !early.After(now) {
		return time.Time{}, "", &credcmd.Failure{Why: fmt.Sprintf("printed an expiry that has passed or is less than %s away", cs.margin)}
	}
	if until.IsZero() || early.Before(until) {
		until = early
		why = fmt.Sprintf("kept until %s (the expiry it printed, less %s)", early.UTC().Format(time.RFC3339), cs.margin)
	}
	return until, why, nil
}

package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/llm-agent/llm-agent/internal/relay"
	"github.com/llm-agent/llm-agent/memsafe"
	"github.com/llm-agent/llm-agent/protocol"
)

// Why relayed requests in flight end early.
var (
	errRelayLocked  = errors.New("the owner locked the agent")
	errRelayRemoved = errors.New("the owner removed the credential")
	errRelayExpired = errors.New("the credential's lifetime is over")
)

// errRelayEnded ends a connection's frame loop once relay@llm-agent has
// turned it into a stream and the stream has ended.
var errRelayEnded = errors.New("relay stream ended")

// relayStream answers relay@llm-agent: the connection becomes the HTTP/2
// stream of package relay, served until it ends or the agent closes.
// Each request on it goes through permit, as a get does, on this
// connection's rights and verified hops.
func (c *conn) relayStream(payload []byte) error {
	req, err := protocol.ParseRelayRequest(payload)
	if err != nil {
		return c.fail(protocol.CodeBadRequest, err.Error())
	}
	if err := c.send(protocol.SuccessFrame()); err != nil {
		return err
	}
	// The stream keeps its own time: idle for minutes between requests,
	// its keep-alive pings end it when the link dies.
	c.nc.SetDeadline(time.Time{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-c.a.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	c.a.cfg.Debug.Printf("pid %d: relay stream opened", c.peer.PID)
	c.a.relay.ServeConn(ctx, c.nc, &relayPolicy{c: c, who: req.Requester})
	return errRelayEnded
}

// relayPolicy is package relay's view of one relay connection.
type relayPolicy struct {
	c   *conn
	who *protocol.Requester
}

func (p *relayPolicy) Authorize(ctx context.Context, stop context.CancelCauseFunc, provider string, use func(*protocol.Credential) error) *relay.Refusal {
	a := p.c.a
	// Registered before the checks, so that a lock or a remove that comes
	// while they wait (a prompt, a refresh) ends the request too.
	a.relays.add(ctx, provider, stop)
	// A spent budget is said before permit, which may ask the owner: a
	// confirm prompt for a request that then gets a 429 asks for nothing.
	if cur := a.store.lookup(provider, a.cfg.Now()); cur != nil && p.c.visible(cur) {
		if no := p.spent(cur); no != nil {
			return no
		}
	}
	cr, code, reason := p.c.permit(provider, p.who, true)
	if cr == nil {
		status := http.StatusForbidden
		switch code {
		case protocol.CodeLocked:
			status, reason = http.StatusServiceUnavailable, "the agent is locked; its owner can unlock it with llm-agent-client unlock"
		case protocol.CodeResource, protocol.CodeUnreachable:
			status = http.StatusServiceUnavailable
		}
		return &relay.Refusal{Status: status, Message: "llm-agent: the agent refused: " + reason}
	}
	if no := p.spent(cr); no != nil {
		return no // spent while permit waited
	}
	if ctx.Err() != nil {
		return &relay.Refusal{Status: 499, Message: "the server side went away"}
	}
	var useErr error
	err := a.store.reveal(cr, func(plain *protocol.Credential, _ []byte) error {
		useErr = use(plain)
		return useErr
	})
	switch {
	case useErr != nil:
		return &relay.Refusal{Status: http.StatusForbidden, Message: "llm-agent relay: " + useErr.Error()}
	case errors.Is(err, memsafe.ErrLockedMemory):
		return &relay.Refusal{Status: http.StatusServiceUnavailable, Message: "llm-agent: " + err.Error()}
	case err != nil:
		return &relay.Refusal{Status: http.StatusServiceUnavailable, Message: "llm-agent: " + err.Error()}
	}
	return nil
}

// Idle lets the agent close the connection, as it closes an idle agent
// connection, while no request is open on it: at the connection limit,
// the longest idle goes first.
func (p *relayPolicy) Idle(idle bool) {
	p.c.busy.Store(!idle)
	if idle {
		p.c.a.touch(p.c)
	}
}

// spent refuses a request for cr when its daily budget is used up.
func (p *relayPolicy) spent(cr *credential) *relay.Refusal {
	a := p.c.a
	n := cr.cons.TokensPerDay
	if n == 0 {
		return nil
	}
	used := a.tokens.today(cr.provider, a.cfg.Now())
	if used < n {
		return nil
	}
	return &relay.Refusal{Status: http.StatusTooManyRequests, Message: fmt.Sprintf(
		"llm-agent: the daily token budget of the %q credential is spent: %d of %d tokens used today (set on the laptop with add --max-tokens-per-day; it renews at midnight, laptop time)",
		cr.provider, used, n)}
}

// Done counts the tokens and writes the request's audit record.
func (p *relayPolicy) Done(r relay.Record) {
	a := p.c.a
	var estimated uint64
	switch {
	case r.Usage.Known:
		a.tokens.add(r.Provider, a.cfg.Now(), r.Usage.Input+r.Usage.Output)
	case r.Refused == "" && (r.Status < 400 || r.Status == relay.StatusGone) && r.Sent+r.Received > 0:
		// The answer reported no usage (a stream asked without it, say,
		// or one the server side broke off or cancelled before the
		// provider answered, which may have had the whole request): the
		// server side must not get past a budget that way, so count a
		// bytes-based estimate, about four bytes a token.
		estimated = uint64(r.Sent+r.Received+3) / 4
		a.tokens.add(r.Provider, a.cfg.Now(), estimated)
	}
	decision, reason := "allow", ""
	switch {
	case r.Refused != "":
		decision, reason = "deny", r.Refused
	case r.Err != "":
		decision, reason = "error", r.Err
	}
	e := p.c.event("relay", r.Provider, decision, reason)
	e.Remote = p.who
	e.Relay = &RelayInfo{Model: r.Usage.Model, Status: r.Status, DurationMS: r.Duration.Milliseconds(),
		InputTokens: r.Usage.Input, OutputTokens: r.Usage.Output, UsageKnown: r.Usage.Known,
		EstimatedTokens: estimated, Method: r.Method, Path: r.Path}
	p.c.audit(e)
}

// RelayInfo is the relayed request of an audit record: never a prompt,
// an answer or a secret.
type RelayInfo struct {
	Model        string `json:"model,omitempty"`
	Status       int    `json:"status"`
	DurationMS   int64  `json:"duration_ms"`
	InputTokens  uint64 `json:"input_tokens"`
	OutputTokens uint64 `json:"output_tokens"`
	// UsageKnown: the provider's answer reported the usage; when it did
	// not, EstimatedTokens is what the budget counted instead (the body
	// bytes both ways over four).
	UsageKnown      bool   `json:"usage_known"`
	EstimatedTokens uint64 `json:"estimated_tokens,omitempty"`
	Method          string `json:"method,omitempty"`
	Path            string `json:"path,omitempty"`
}

// tokenUse counts the tokens of relayed requests per provider over the
// current day of the laptop's clock, for the daily budgets and list.
type tokenUse struct {
	mu   sync.Mutex
	day  string
	used map[string]uint64
}

func dayOf(t time.Time) string { return t.Local().Format("2006-01-02") }

func (t *tokenUse) add(provider string, now time.Time, n uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if d := dayOf(now); d != t.day || t.used == nil {
		t.day, t.used = d, map[string]uint64{}
	}
	t.used[provider] += n
}

func (t *tokenUse) today(provider string, now time.Time) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if dayOf(now) != t.day {
		return 0
	}
	return t.used[provider]
}

// relayRequests are the relayed requests in flight, by provider, so that
// taking a credential away ends its requests at once: a lock ends them
// all, a remove or an expiry those of its provider.
type relayRequests struct {
	mu sync.Mutex
	m  map[string]map[*relayRequest]struct{}
}

type relayRequest struct{ stop context.CancelCauseFunc }

// add registers a request until its ctx ends.
func (r *relayRequests) add(ctx context.Context, provider string, stop context.CancelCauseFunc) {
	q := &relayRequest{stop: stop}
	r.mu.Lock()
	if r.m == nil {
		r.m = map[string]map[*relayRequest]struct{}{}
	}
	if r.m[provider] == nil {
		r.m[provider] = map[*relayRequest]struct{}{}
	}
	r.m[provider][q] = struct{}{}
	r.mu.Unlock()
	context.AfterFunc(ctx, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.m[provider], q)
		if len(r.m[provider]) == 0 {
			delete(r.m, provider)
		}
	})
}

// cancel ends the requests of provider ("" for all) with cause.
func (r *relayRequests) cancel(provider string, cause error) int {
	r.mu.Lock()
	var stops []context.CancelCauseFunc
	for p, qs := range r.m {
		if provider == "" || p == provider {
			for q := range qs {
				stops = append(stops, q.stop)
			}
		}
	}
	r.mu.Unlock()
	for _, stop := range stops {
		stop(cause)
	}
	return len(stops)
}

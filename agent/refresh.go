package agent

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/llm-agent/llm-agent/internal/authfile"
	"github.com/llm-agent/llm-agent/internal/keychain"
	"github.com/llm-agent/llm-agent/internal/oauth"
	"github.com/llm-agent/llm-agent/internal/providers"
	"github.com/llm-agent/llm-agent/memsafe"
	"github.com/llm-agent/llm-agent/protocol"
)

// OAuth credentials of the providers in oauth's table are refreshed here,
// on the laptop: get hands out access tokens only, and the refresh token
// never leaves the agent.
//
// A get of such a credential whose access token is missing, of unknown
// expiry or expiring within the margin refreshes first. Concurrent gets
// of one provider share one refresh in flight. The new access token
// (and a rotated refresh token) are sealed into a new credential that
// replaces the old one in the store, unless the credential was removed or
// replaced meanwhile. When the provider refuses the refresh token, the
// credential is marked as needing a new login. When the endpoint cannot
// be reached, gets are served the old access token while it is valid,
// without trying again for RefreshRetry.

// errNoAccess: an oauth credential without an access token, of a provider
// the agent cannot refresh.
var errNoAccess = errors.New("holds no access token")

// errSuperseded: the credential was replaced while it was being refreshed;
// look it up again.
var errSuperseded = errors.New("credential replaced during refresh")

// refresher runs the refreshes of one agent.
type refresher struct {
	a       *Agent
	client  *oauth.Refresher
	margin  time.Duration
	timeout time.Duration
	retry   time.Duration
	flights *flights

	mu sync.Mutex
	// failed holds, by provider, the credential whose last refresh failed
	// for a network error or the like; until its retryAt, gets hand out
	// its access token while it is valid, without trying again.
	failed map[string]failedRefresh
}

type failedRefresh struct {
	cred    *credential
	retryAt time.Time
}

func newRefresher(a *Agent) *refresher {
	cfg := a.cfg
	r := &refresher{a: a, margin: cfg.RefreshMargin, timeout: cfg.RefreshTimeout, retry: cfg.RefreshRetry,
		flights: newFlights(a), failed: make(map[string]failedRefresh)}
	if r.margin <= 0 {
		r.margin = 30 * time.Second
	}
	if r.timeout <= 0 {
		r.timeout = oauth.DefaultTimeout
	}
	if r.retry <= 0 {
		r.retry = 5 * time.Second
	}
	r.client = &oauth.Refresher{Endpoints: cfg.OAuthEndpoints, Client: oauth.NewClient(), Timeout: r.timeout, Now: cfg.Now}
	return r
}

// accessExpiry returns when cr's access token expires; zero when unknown.
func accessExpiry(cr *credential) time.Time {
	ms, err := strconv.ParseInt(cr.plain(protocol.FieldExpires), 10, 64)
	if err != nil || ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// valid reports whether cr holds an access token known to be unexpired.
func valid(cr *credential, now time.Time) bool {
	exp := accessExpiry(cr)
	return cr.has(protocol.FieldAccess) && !exp.IsZero() && now.Before(exp)
}

// due reports whether cr's access token must be refreshed before use.
func (r *refresher) due(cr *credential, now time.Time) bool {
	exp := accessExpiry(cr)
	return !cr.has(protocol.FieldAccess) || exp.IsZero() || !now.Add(r.margin).Before(exp)
}

// oauthProvider returns the table's row for provider when llm-agent
// refreshes its tokens.
func oauthProvider(provider string) (providers.Provider, bool) {
	p, ok := providers.Lookup(provider)
	return p, ok && p.OAuth != nil
}

// loginMessage is get's one-line answer for a credential that needs a
// new login: who, and what to run on the laptop.
func loginMessage(cr *credential) string {
	how := "log in again"
	if p, ok := oauthProvider(cr.provider); ok {
		how = "run " + p.OAuth.Login
	}
	again := "llm-agent-client import FILE"
	if wb := cr.cons.WriteBack; wb != nil {
		again = "llm-agent-client import --write-back " + wb.Path
	} else if cr.cons.Keychain != nil {
		again = "llm-agent-client import --keychain --write-back"
	}
	return fmt.Sprintf("the %s credential needs a new login: %s on the laptop, then %s", cr.provider, how, again)
}

// check is what get tests before the confirm prompt: a credential that
// needs a new login, or that has no access token and cannot be refreshed,
// fails at once (code 1).
func (r *refresher) check(cr *credential) error {
	if cr.needsLogin {
		return errors.New(loginMessage(cr))
	}
	if _, ok := oauthProvider(cr.provider); !ok && !cr.has(protocol.FieldAccess) {
		return fmt.Errorf("the %q credential %v, and llm-agent cannot refresh %s tokens", cr.provider, errNoAccess, cr.provider)
	}
	return nil
}

// fresh returns the credential to hand out for cr: cr itself while its
// access token is good for longer than the margin, else the refreshed one
// (waiting for the refresh in flight, or starting it), or cr when the
// refresh failed for a reason other than the login and cr's access token
// is still valid. Credentials of providers the agent cannot refresh are
// handed out as they are.
func (r *refresher) fresh(cr *credential) (*credential, error) {
	p, ok := oauthProvider(cr.provider)
	if !ok {
		return cr, r.check(cr)
	}
	return r.flights.do(cr, r.settle, func(old *credential) (*credential, error) { return r.run(old, p) })
}

// settle answers a get of cr without a refresh when its access token is
// good, or the last refresh failed a moment ago and it is still valid.
func (r *refresher) settle(cr *credential, now time.Time) (bool, *credential, error) {
	if cr.needsLogin {
		return true, nil, errors.New(loginMessage(cr))
	}
	if !r.due(cr, now) {
		return true, cr, nil
	}
	r.mu.Lock()
	f := r.failed[cr.provider]
	r.mu.Unlock()
	if f.cred == cr && now.Before(f.retryAt) && valid(cr, now) {
		return true, cr, nil
	}
	return false, nil, nil
}

// run refreshes old and remembers a failure.
func (r *refresher) run(old *credential, p providers.Provider) (*credential, error) {
	cred, failed, err := r.refresh(old, p)
	r.mu.Lock()
	delete(r.failed, old.provider)
	if failed {
		r.failed[old.provider] = failedRefresh{cred: old, retryAt: r.a.cfg.Now().Add(r.retry)}
	}
	r.mu.Unlock()
	return cred, err
}

// refresh runs one refresh of old. failed reports a failure after which
// old's still valid access token is served (cred is then old).
func (r *refresher) refresh(old *credential, p providers.Provider) (cred *credential, failed bool, err error) {
	a := r.a
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	go func() {
		select {
		case <-a.done: // the agent is closing
			cancel()
		case <-ctx.Done():
		}
	}()
	refreshSecret := old.secret(protocol.FieldRefresh)
	start := time.Now()
	tok, err := r.client.Refresh(ctx, oauth.Request{
		Provider:      p,
		EnterpriseURL: old.plain(protocol.FieldEnterpriseURL),
		// The refresh token is open only while a request is built and sent.
		Refresh: func(fn func([]byte) error) error { return a.cfg.Budget.Open(refreshSecret, fn) },
	})
	took := time.Since(start).Round(time.Millisecond)
	var login *oauth.LoginError
	switch {
	case errors.As(err, &login):
		marked := *old
		marked.needsLogin = true
		if !a.store.swap(old, &marked) {
			return nil, false, errSuperseded
		}
		a.cfg.Audit.Log(Event{Op: "refresh", Provider: old.provider, Decision: "error",
			Reason: fmt.Sprintf("%s: %s; the credential needs a new login", login.Reason, took)})
		return nil, false, errors.New(loginMessage(&marked))
	case err != nil:
		now := a.cfg.Now()
		if valid(old, now) {
			a.cfg.Audit.Log(Event{Op: "refresh", Provider: old.provider, Decision: "error",
				Reason: fmt.Sprintf("%v; serving the last access token until it expires at %s", err, accessExpiry(old).UTC().Format(time.RFC3339))})
			return old, true, nil
		}
		a.cfg.Audit.Log(Event{Op: "refresh", Provider: old.provider, Decision: "error", Reason: err.Error()})
		return nil, false, fmt.Errorf("could not refresh the %s access token: %v", old.provider, err)
	}
	rotated := tok.Refresh != nil
	nc, err := r.replace(old, tok)
	if err != nil {
		a.cfg.Audit.Log(Event{Op: "refresh", Provider: old.provider, Decision: "error", Reason: "storing the new tokens: " + err.Error()})
		if valid(old, a.cfg.Now()) {
			return old, true, nil
		}
		return nil, false, fmt.Errorf("could not store the refreshed %s access token: %v", old.provider, err)
	}
	if !a.store.swap(old, nc) {
		// Removed or replaced by an add meanwhile: the add wins.
		return nil, false, errSuperseded
	}
	reason := fmt.Sprintf("new access token, expires %s; %d request(s) in %s", nc.plain(protocol.FieldExpires), tok.Attempts, took)
	if rotated {
		reason += "; refresh token rotated"
	}
	a.cfg.Audit.Log(Event{Op: "refresh", Provider: old.provider, Decision: "allow", Reason: reason})
	a.cfg.Debug.Printf("refresh %s: %s", old.provider, reason)
	if rotated && (old.cons.WriteBack != nil || old.cons.Keychain != nil) {
		r.writeBack(old, nc)
	}
	return nc, false, nil
}

// replace returns a copy of old holding tok's access token, expiry and,
// if rotated, refresh token, each new secret sealed in its own enclave.
// tok is wiped.
func (r *refresher) replace(old *credential, tok *oauth.Token) (*credential, error) {
	defer tok.Wipe()
	nc := &credential{provider: old.provider, kind: old.kind, added: old.added, expires: old.expires, cons: old.cons}
	expires := strconv.FormatInt(tok.Expires.UnixMilli(), 10)
	seal := func(name string, v []byte) (storedField, error) {
		sec, err := r.a.cfg.Budget.Seal(v)
		if err != nil {
			return storedField{}, fmt.Errorf("sealing %s: %w", name, err)
		}
		return storedField{name: name, secret: sec}, nil
	}
	var haveAccess, haveExpires bool
	for _, f := range old.fields {
		switch {
		case f.name == protocol.FieldAccess:
			nf, err := seal(f.name, tok.Access)
			if err != nil {
				return nil, err
			}
			f, haveAccess = nf, true
		case f.name == protocol.FieldExpires:
			f, haveExpires = storedField{name: f.name, plain: expires}, true
		case f.name == protocol.FieldRefresh && tok.Refresh != nil:
			nf, err := seal(f.name, tok.Refresh)
			if err != nil {
				return nil, err
			}
			f = nf
		}
		nc.fields = append(nc.fields, f)
	}
	if !haveAccess {
		nf, err := seal(protocol.FieldAccess, tok.Access)
		if err != nil {
			return nil, err
		}
		nc.fields = append(nc.fields, nf)
	}
	if !haveExpires {
		nc.fields = append(nc.fields, storedField{name: protocol.FieldExpires, plain: expires})
	}
	for _, f := range nc.fields {
		nc.size += len(f.name) + len(f.plain)
		if f.secret != nil {
			nc.size += f.secret.Len()
		}
	}
	return nc, nil
}

// writeBack writes nc's tokens to the file or the macOS Keychain item old
// was imported from, if that entry still holds old's refresh token. A
// Keychain write runs the security tool (keychain.WriteBack: no token in
// any argv) and is bounded by keychain.DefaultTimeout.
func (r *refresher) writeBack(old, nc *credential) {
	a := r.a
	wb, kc := old.cons.WriteBack, old.cons.Keychain
	where := ""
	if kc != nil {
		where = fmt.Sprintf("the macOS Keychain item %q (account %q)", kc.Service, kc.Account)
	} else {
		where = wb.Path
	}
	secrets := []*memsafe.Secret{old.secret(protocol.FieldRefresh), nc.secret(protocol.FieldRefresh), nc.secret(protocol.FieldAccess)}
	res, err := a.cfg.Budget.Reserve(secrets, 0)
	if err == nil {
		defer res.Release()
		err = res.Open(secrets[0], func(prev []byte) error {
			return res.Open(secrets[1], func(refresh []byte) error {
				return res.Open(secrets[2], func(access []byte) error {
					u := authfile.Update{Access: access, Refresh: refresh, Expires: accessExpiry(nc).UnixMilli(),
						Previous: prev, Now: time.Now()}
					if kc != nil {
						return r.keychainWriteBack(*kc, u)
					}
					return authfile.WriteBack(wb.Path, authfile.Format(wb.Format), old.provider, u)
				})
			})
		})
	}
	if err != nil {
		a.cfg.Audit.Log(Event{Op: "write-back", Provider: old.provider, Decision: "error", Reason: err.Error()})
		a.cfg.Debug.Printf("write-back %s: %v", old.provider, err)
		return
	}
	a.cfg.Audit.Log(Event{Op: "write-back", Provider: old.provider, Decision: "allow", Reason: "rotated tokens written to " + where})
}

// keychainWriteBack writes u to a Keychain item, giving up when the agent
// closes or after keychain.DefaultTimeout.
func (r *refresher) keychainWriteBack(item protocol.KeychainItem, u authfile.Update) error {
	ctx, cancel := context.WithTimeout(context.Background(), keychain.DefaultTimeout)
	defer cancel()
	go func() {
		select {
		case <-r.a.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return keychain.WriteBack(ctx, item, u)
}

// failure maps an error of check or fresh to get's failure code.
func failure(provider string, err error) (uint32, string) {
	switch {
	case errors.Is(err, errNotFound):
		return protocol.CodeNotFound, fmt.Sprintf("no credential for %q", provider)
	case errors.Is(err, memsafe.ErrLockedMemory):
		return protocol.CodeResource, err.Error()
	}
	return protocol.CodeFailed, err.Error()
}

// secret returns the sealed value of field name, or nil.
func (c *credential) secret(name string) *memsafe.Secret {
	for _, f := range c.fields {
		if f.name == name {
			return f.secret
		}
	}
	return nil
}

// swap replaces old by nc if old is still the provider's credential.
func (s *store) swap(old, nc *credential) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.creds[old.provider] != old {
		return false
	}
	s.bytes += nc.size - old.size
	s.creds[old.provider] = nc
	return true
}

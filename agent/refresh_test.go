package agent_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/agent"
	"github.com/llm-agent/llm-agent/internal/authfile"
	"github.com/llm-agent/llm-agent/protocol"
)

// tokenServer is a fake OAuth token endpoint on 127.0.0.1 speaking
// openai's refresh grant (a form). It counts requests, remembers the
// refresh tokens it was sent, and answers as mode says.
type tokenServer struct {
	*httptest.Server
	mu        sync.Mutex
	mode      string        // "ok", "invalid_grant", "503", "hang"
	delay     time.Duration // before answering
	expiresIn int           // seconds; default 3600
	rotate    bool          // answer with a new refresh token
	got       []string      // refresh tokens received, in order
}

func newTokenServer(t testing.TB) *tokenServer {
	t.Helper()
	ts := &tokenServer{mode: "ok", expiresIn: 3600}
	ts.Server = httptest.NewServer(http.HandlerFunc(ts.serve))
	t.Cleanup(ts.Close)
	return ts
}

func (ts *tokenServer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	q, _ := url.ParseQuery(string(body))
	ts.mu.Lock()
	ts.got = append(ts.got, q.Get("refresh_token"))
	n := len(ts.got)
	mode, delay, expiresIn, rotate := ts.mode, ts.delay, ts.expiresIn, ts.rotate
	ts.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	switch mode {
	case "hang":
		<-r.Context().Done()
		return
	case "503":
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	case "invalid_grant":
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"invalid_grant","error_description":"refresh token revoked"}`)
		return
	}
	answer := map[string]any{"access_token": accessN(n), "expires_in": expiresIn, "id_token": "x.y.z"}
	if rotate {
		answer["refresh_token"] = refreshN(n)
	}
	json.NewEncoder(w).Encode(answer)
}

func (ts *tokenServer) set(f func(ts *tokenServer)) {
	ts.mu.Lock()
	f(ts)
	ts.mu.Unlock()
}

func (ts *tokenServer) count() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return len(ts.got)
}

func (ts *tokenServer) received() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]string(nil), ts.got...)
}

// accessN and refreshN are the tokens of the n-th answer.
func accessN(n int) string  { return fmt.Sprintf("MARKER-NEW-ACCESS-%d-91d3", n) }
func refreshN(n int) string { return fmt.Sprintf("MARKER-NEW-REFRESH-%d-3c0f", n) }

// refreshAgent starts an agent that refreshes openai tokens at ts.
func refreshAgent(t *testing.T, ts *tokenServer, cfg agent.Config) *testAgent {
	t.Helper()
	cfg.OAuthEndpoints = map[string]string{"openai": ts.URL + "/oauth/token"}
	if cfg.RefreshTimeout == 0 {
		cfg.RefreshTimeout = 3 * time.Second
	}
	return startAgent(t, cfg)
}

// openaiCred is an openai OAuth credential whose access token expires at
// exp (none when exp is zero).
func openaiCred(exp time.Time) *protocol.AddRequest {
	fields := []protocol.Field{{Name: "refresh", Value: []byte(mRefresh)}}
	if !exp.IsZero() {
		fields = append(fields, protocol.Field{Name: "access", Value: []byte(mAccess)},
			protocol.Field{Name: "expires", Value: []byte(strconv.FormatInt(exp.UnixMilli(), 10))})
	}
	fields = append(fields, protocol.Field{Name: "accountId", Value: []byte("acct-1")})
	return &protocol.AddRequest{Credential: protocol.Credential{Provider: "openai", Kind: protocol.KindOAuth, Fields: fields}}
}

// getAccess gets openai and returns its access token and expires field.
func getAccess(t testing.TB, c *protocol.Client) (string, string, error) {
	t.Helper()
	cr, err := c.Get("openai", nil)
	if err != nil {
		return "", "", err
	}
	defer cr.Wipe()
	if cr.Value("refresh") != nil {
		t.Errorf("get handed out a refresh field")
	}
	return string(cr.Value("access")), string(cr.Value("expires")), nil
}

func listEntry(t testing.TB, c *protocol.Client, provider string) protocol.Entry {
	t.Helper()
	list, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range list {
		if e.Provider == provider {
			return e
		}
	}
	t.Fatalf("list has no %s", provider)
	return protocol.Entry{}
}

// noRefreshIn fails when s holds a refresh token: the one added or one
// the fake endpoint issued.
func noRefreshIn(t testing.TB, what, s string) {
	t.Helper()
	if strings.Contains(s, mRefresh) || strings.Contains(s, "MARKER-NEW-REFRESH") {
		t.Errorf("%s: a refresh token marker was found", what)
	}
}

// TestRefreshMissingAccess: a credential with only a refresh token is
// refreshed by the first get, and only by the first.
func TestRefreshMissingAccess(t *testing.T) {
	ts := newTokenServer(t)
	clock := newClock()
	ta := refreshAgent(t, ts, agent.Config{Now: clock.Now})
	c := ta.client(t)
	mustAdd(t, c, openaiCred(time.Time{}))
	access, expires, err := getAccess(t, c)
	if err != nil {
		t.Fatal(err)
	}
	if access != accessN(1) {
		t.Errorf("get did not hand out the refreshed access token")
	}
	if want := strconv.FormatInt(clock.Now().Add(time.Hour).UnixMilli(), 10); expires != want {
		t.Errorf("expires = %s, want %s (now + expires_in)", expires, want)
	}
	if got := ts.received(); len(got) != 1 || got[0] != mRefresh {
		t.Errorf("endpoint got %d requests; the added refresh token sent: %v", len(got), len(got) > 0 && got[0] == mRefresh)
	}
	for range 3 {
		if a, _, err := getAccess(t, c); err != nil || a != accessN(1) {
			t.Fatalf("later get: %v", err)
		}
	}
	if ts.count() != 1 {
		t.Errorf("%d refreshes for gets of a fresh token; want 1", ts.count())
	}
	e := listEntry(t, c, "openai")
	if !e.HasRefresh || e.NeedsLogin || e.AccessExpires != clock.Now().Add(time.Hour).UnixMilli() {
		t.Errorf("list entry %+v", e)
	}
	audit := ta.audit.String()
	if !strings.Contains(audit, `"op":"refresh","provider":"openai","decision":"allow"`) {
		t.Errorf("no refresh event in the audit log:\n%s", audit)
	}
	noRefreshIn(t, "audit log", audit)
	if strings.Contains(audit, accessN(1)) {
		t.Errorf("audit log: access token marker found")
	}
}

// TestRefreshWithinMargin: a valid token is handed out as it is until it
// comes within the margin of its expiry; then the get refreshes first.
func TestRefreshWithinMargin(t *testing.T) {
	ts := newTokenServer(t)
	clock := newClock()
	ta := refreshAgent(t, ts, agent.Config{Now: clock.Now, RefreshMargin: 30 * time.Second})
	c := ta.client(t)
	mustAdd(t, c, openaiCred(clock.Now().Add(time.Hour)))
	if a, _, err := getAccess(t, c); err != nil || a != mAccess || ts.count() != 0 {
		t.Fatalf("get of a token good for an hour: err %v, the imported token: %v, %d refreshes", err, a == mAccess, ts.count())
	}
	clock.Advance(time.Hour - 31*time.Second)
	if a, _, err := getAccess(t, c); err != nil || a != mAccess || ts.count() != 0 {
		t.Fatalf("get 31 s before expiry: err %v, the imported token: %v, %d refreshes", err, a == mAccess, ts.count())
	}
	clock.Advance(2 * time.Second)
	if a, _, err := getAccess(t, c); err != nil || a != accessN(1) || ts.count() != 1 {
		t.Fatalf("get 29 s before expiry: err %v, refreshed token: %v, %d refreshes", err, a == accessN(1), ts.count())
	}
}

// TestRefreshRotation: a rotated refresh token replaces the old one: the
// next refresh sends it. Neither ever reaches a get reply.
func TestRefreshRotation(t *testing.T) {
	ts := newTokenServer(t)
	ts.rotate = true
	clock := newClock()
	ta := refreshAgent(t, ts, agent.Config{Now: clock.Now})
	conn := ta.raw(t)
	if reply := exchange(t, conn, openaiCred(clock.Now()).Marshal()); reply[0] != protocol.MsgSuccess {
		t.Fatalf("add: %v", protocol.ParseFailure(reply[1:]))
	}
	for i := 1; i <= 3; i++ {
		reply := exchange(t, conn, (&protocol.GetRequest{Provider: "openai"}).Marshal())
		if reply[0] != protocol.MsgSuccess {
			t.Fatalf("get %d: %v", i, protocol.ParseFailure(reply[1:]))
		}
		noRefreshIn(t, fmt.Sprintf("get reply %d", i), string(reply))
		if !bytes.Contains(reply, []byte(accessN(i))) {
			t.Errorf("get %d: not the access token of refresh %d", i, i)
		}
		clock.Advance(2 * time.Hour) // expire it
	}
	got := ts.received()
	want := []string{mRefresh, refreshN(1), refreshN(2)}
	if len(got) != 3 {
		t.Fatalf("%d refreshes, want 3", len(got))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("refresh %d did not send the refresh token of the previous answer", i+1)
		}
	}
	noRefreshIn(t, "audit log", ta.audit.String())
}

// TestRefreshSingleFlight: 100 gets at the moment of expiry, each on its
// own connection, share one refresh.
func TestRefreshSingleFlight(t *testing.T) {
	ts := newTokenServer(t)
	ts.delay = 300 * time.Millisecond // keep the refresh in flight while all gets arrive
	clock := newClock()
	ta := refreshAgent(t, ts, agent.Config{Now: clock.Now})
	mustAdd(t, ta.client(t), openaiCred(clock.Now().Add(time.Minute)))
	clients := make([]*protocol.Client, 100)
	for i := range clients {
		clients[i] = ta.client(t)
	}
	clock.Advance(time.Minute) // expired now
	var wg sync.WaitGroup
	results := make([]string, len(clients))
	errs := make([]error, len(clients))
	start := time.Now()
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], _, errs[i] = getAccess(t, c)
		}()
	}
	wg.Wait()
	t.Logf("100 concurrent gets at expiry: %d refresh(es), all answered in %v", ts.count(), time.Since(start).Round(time.Millisecond))
	for i := range results {
		if errs[i] != nil || results[i] != accessN(1) {
			t.Fatalf("get %d: %v (refreshed token: %v)", i, errs[i], results[i] == accessN(1))
		}
	}
	if ts.count() != 1 {
		t.Errorf("%d refreshes; want exactly 1", ts.count())
	}
}

// TestRefreshOutage: while the endpoint fails, gets are served the last
// access token as long as it is valid, without waiting on a new attempt
// each time; once it has expired they fail.
func TestRefreshOutage(t *testing.T) {
	ts := newTokenServer(t)
	ts.mode = "503"
	clock := newClock()
	ta := refreshAgent(t, ts, agent.Config{Now: clock.Now, RefreshTimeout: 500 * time.Millisecond, RefreshRetry: time.Minute})
	c := ta.client(t)
	mustAdd(t, c, openaiCred(clock.Now().Add(20*time.Second))) // within the margin
	start := time.Now()
	a, _, err := getAccess(t, c)
	first := time.Since(start)
	if err != nil || a != mAccess {
		t.Fatalf("get during an outage: %v (last good token: %v)", err, a == mAccess)
	}
	attempts := ts.count()
	start = time.Now()
	for range 5 {
		if a, _, err := getAccess(t, c); err != nil || a != mAccess {
			t.Fatalf("later get during the outage: %v", err)
		}
	}
	t.Logf("outage: first get took %v (%d requests with backoff), 5 more took %v", first.Round(time.Millisecond), attempts, time.Since(start).Round(time.Millisecond))
	if attempts < 2 {
		t.Errorf("%d requests; a 503 is retried", attempts)
	}
	if ts.count() != attempts {
		t.Errorf("gets within RefreshRetry tried again: %d requests after %d", ts.count(), attempts)
	}
	audit := ta.audit.String()
	if !strings.Contains(audit, "serving the last access token") || !strings.Contains(audit, "HTTP 503") {
		t.Errorf("audit log does not say what happened:\n%s", audit)
	}
	// Expired: nothing valid to serve.
	clock.Advance(21 * time.Second)
	_, _, err = getAccess(t, c)
	if failureCode(err) != protocol.CodeFailed || !strings.Contains(err.Error(), "could not refresh the openai access token") {
		t.Errorf("get of an expired token during an outage: %v", err)
	}
	// The endpoint is back.
	ts.set(func(ts *tokenServer) { ts.mode = "ok" })
	if a, _, err := getAccess(t, c); err != nil || a == mAccess {
		t.Errorf("get after the outage: %v", err)
	}
}

// TestRefreshTimeout: a hanging endpoint costs a get the refresh timeout,
// not the client's.
func TestRefreshTimeout(t *testing.T) {
	ts := newTokenServer(t)
	ts.mode = "hang"
	ta := refreshAgent(t, ts, agent.Config{RefreshTimeout: 300 * time.Millisecond})
	c := ta.client(t)
	mustAdd(t, c, openaiCred(time.Time{}))
	start := time.Now()
	_, _, err := getAccess(t, c)
	took := time.Since(start)
	t.Logf("get with a hanging endpoint failed after %v: %v", took.Round(time.Millisecond), err)
	if failureCode(err) != protocol.CodeFailed {
		t.Errorf("err = %v, want code %d", err, protocol.CodeFailed)
	}
	if took > 5*time.Second {
		t.Errorf("took %v with a refresh timeout of 300 ms", took)
	}
}

// TestRefreshInvalidGrant: a refused refresh token marks the credential:
// get says who must log in again and how, list shows it, and no further
// request is made until it is imported again.
func TestRefreshInvalidGrant(t *testing.T) {
	ts := newTokenServer(t)
	ts.mode = "invalid_grant"
	ta := refreshAgent(t, ts, agent.Config{})
	c := ta.client(t)
	mustAdd(t, c, openaiCred(time.Time{}))
	for i := range 2 {
		_, _, err := getAccess(t, c)
		if failureCode(err) != protocol.CodeFailed {
			t.Fatalf("get %d: %v, want code %d", i, err, protocol.CodeFailed)
		}
		msg := err.Error()
		for _, want := range []string{"openai", "needs a new login", "codex login", "on the laptop", "llm-agent-client import"} {
			if !strings.Contains(msg, want) {
				t.Errorf("message %q does not say %q", msg, want)
			}
		}
		if strings.Contains(msg, "\n") {
			t.Errorf("message of several lines: %q", msg)
		}
	}
	if ts.count() != 1 {
		t.Errorf("%d requests; a refused token must not be tried again", ts.count())
	}
	if e := listEntry(t, c, "openai"); !e.NeedsLogin || !e.HasRefresh {
		t.Errorf("list entry %+v: want NeedsLogin", e)
	}
	if audit := ta.audit.String(); !strings.Contains(audit, "invalid_grant") || !strings.Contains(audit, "needs a new login") {
		t.Errorf("audit log does not record the refusal:\n%s", audit)
	}
	// A new import replaces the marked credential.
	ts.set(func(ts *tokenServer) { ts.mode = "ok" })
	mustAdd(t, c, openaiCred(time.Time{}))
	if e := listEntry(t, c, "openai"); e.NeedsLogin {
		t.Errorf("a re-added credential still needs a login")
	}
	if _, _, err := getAccess(t, c); err != nil {
		t.Errorf("get after a new import: %v", err)
	}
}

// TestRefreshRacesRemove: a credential removed or re-added while its
// refresh is in flight stays removed or re-added.
func TestRefreshRacesRemove(t *testing.T) {
	ts := newTokenServer(t)
	ts.delay = 300 * time.Millisecond
	ta := refreshAgent(t, ts, agent.Config{})
	c := ta.client(t)
	mustAdd(t, c, openaiCred(time.Time{}))
	done := make(chan error, 1)
	go func() {
		_, _, err := getAccess(t, ta.client(t))
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if err := c.Remove("openai"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; failureCode(err) != protocol.CodeNotFound {
		t.Errorf("get whose credential was removed during the refresh: %v", err)
	}
	if _, err := c.List(); err != nil {
		t.Fatal(err)
	}
	if list, _ := c.List(); len(list) != 0 {
		t.Errorf("the refresh brought a removed credential back: %v", providers(list))
	}

	mustAdd(t, c, openaiCred(time.Time{}))
	go func() {
		_, _, err := getAccess(t, ta.client(t))
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	mustAdd(t, c, openaiCred(time.Now().Add(time.Hour))) // a new login
	<-done
	if a, _, err := getAccess(t, c); err != nil || a != mAccess {
		t.Errorf("the refresh overwrote a credential added meanwhile: %v", err)
	}
}

// TestRefreshWriteBack: with the write-back constraint, a rotated refresh
// token lands in the file the credential came from; a file whose entry
// changed meanwhile (a new login) is left alone.
func TestRefreshWriteBack(t *testing.T) {
	ts := newTokenServer(t)
	ts.rotate = true
	clock := newClock()
	ta := refreshAgent(t, ts, agent.Config{Now: clock.Now})
	dir := t.TempDir()
	path := filepath.Join(dir, "auth.json")
	file := fmt.Sprintf("{\n  \"openai\": {\n    \"type\": \"oauth\",\n    \"refresh\": %q,\n    \"access\": %q,\n    \"expires\": 1\n  },\n  \"openrouter\": {\"type\": \"api\", \"key\": \"sk-or-FAKE\"}\n}\n", mRefresh, mAccess)
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	c := ta.client(t)
	req := openaiCred(clock.Now())
	req.WriteBack = &protocol.WriteBack{Path: path, Format: "opencode"}
	mustAdd(t, c, req)
	if _, _, err := getAccess(t, c); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	_, entries, err := authfile.Parse(path, data)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Provider == "openai" && (string(e.Fields["refresh"]) != refreshN(1) || string(e.Fields["access"]) != accessN(1)) {
			t.Errorf("the rotated tokens are not in the file")
		}
		if e.Provider == "openrouter" && string(e.Fields["key"]) != "sk-or-FAKE" {
			t.Errorf("another entry changed")
		}
	}
	if !strings.Contains(ta.audit.String(), `"op":"write-back","provider":"openai","decision":"allow"`) {
		t.Errorf("no write-back event:\n%s", ta.audit.String())
	}
	// A new login on the laptop rewrote the entry: not ours to touch.
	other := strings.Replace(string(data), refreshN(1), "REFRESH-OF-A-NEW-LOGIN", 1)
	if err := os.WriteFile(path, []byte(other), 0o600); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Hour)
	if _, _, err := getAccess(t, c); err != nil {
		t.Fatal(err)
	}
	if now, _ := os.ReadFile(path); string(now) != other {
		t.Errorf("the write-back overwrote an entry that changed since the import")
	}
	if !strings.Contains(ta.audit.String(), "changed since it was imported") {
		t.Errorf("the skipped write-back is not in the audit log")
	}
	noRefreshIn(t, "audit log", ta.audit.String())
}

// TestWriteBackConstraint: the constraint is checked when added and is
// not for forwarded connections, which cannot add at all.
func TestWriteBackConstraint(t *testing.T) {
	ta := startAgent(t, agent.Config{})
	c := ta.client(t)
	for _, tc := range []struct {
		name string
		req  *protocol.AddRequest
	}{
		{"api key", func() *protocol.AddRequest {
			r := apiCred("anthropic", mKey)
			r.WriteBack = &protocol.WriteBack{Path: "/tmp/auth.json", Format: "opencode"}
			return r
		}()},
		{"relative path", func() *protocol.AddRequest {
			r := openaiCred(time.Time{})
			r.WriteBack = &protocol.WriteBack{Path: "auth.json", Format: "opencode"}
			return r
		}()},
		{"unknown format", func() *protocol.AddRequest {
			r := openaiCred(time.Time{})
			r.WriteBack = &protocol.WriteBack{Path: "/tmp/auth.json", Format: "yaml"}
			return r
		}()},
		{"claude file for openai", func() *protocol.AddRequest {
			r := openaiCred(time.Time{})
			r.WriteBack = &protocol.WriteBack{Path: "/tmp/.credentials.json", Format: "claude"}
			return r
		}()},
	} {
		if err := c.Add(tc.req); failureCode(err) != protocol.CodeBadRequest {
			t.Errorf("%s: %v, want code %d", tc.name, err, protocol.CodeBadRequest)
		}
	}
	fwd := ta.boundClient(t, newHostKey(t))
	req := openaiCred(time.Time{})
	req.WriteBack = &protocol.WriteBack{Path: "/tmp/auth.json", Format: "opencode"}
	if err := fwd.Add(req); failureCode(err) != protocol.CodeNotPermitted {
		t.Errorf("add with write-back on a forwarded connection: %v", err)
	}
}

// TestUnknownOAuthProvider: credentials of providers the agent cannot
// refresh are handed out as they are, expired or not.
func TestUnknownOAuthProvider(t *testing.T) {
	ta := startAgent(t, agent.Config{})
	c := ta.client(t)
	req := openaiCred(time.Unix(1, 0))
	req.Provider = "example-oauth"
	mustAdd(t, c, req)
	cr, err := c.Get("example-oauth", nil)
	if err != nil || string(cr.Value("access")) != mAccess {
		t.Fatalf("get: %v", err)
	}
}

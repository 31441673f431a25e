package oauth_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/internal/oauth"
	"github.com/llm-agent/llm-agent/internal/providers"
)

// Marker tokens: fake, distinctive, never printed.
const (
	mRefresh    = "MARKER-OAUTH-REFRESH-71c2e0"
	mRefreshNew = "MARKER-OAUTH-REFRESH-NEW-5d09aa"
	mAccess     = "MARKER-OAUTH-ACCESS-3be81f"
)

// opener hands out a refresh token as the agent's enclaves do, and counts
// how often it was opened.
type opener struct {
	mu    sync.Mutex
	token string
	opens int
}

func (o *opener) open(fn func([]byte) error) error {
	o.mu.Lock()
	o.opens++
	o.mu.Unlock()
	b := []byte(o.token)
	defer clear(b)
	return fn(b)
}

// seen is one request the fake endpoint got.
type seen struct {
	method, contentType string
	header              http.Header
	body                string
}

// endpoint is a fake token endpoint answering with the handler's status
// and body, recording every request.
type endpoint struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []seen
	answer func(n int) (int, string) // n counts requests from 1
}

func newEndpoint(t *testing.T, answer func(n int) (int, string)) *endpoint {
	t.Helper()
	e := &endpoint{answer: answer}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		e.mu.Lock()
		e.reqs = append(e.reqs, seen{r.Method, r.Header.Get("Content-Type"), r.Header.Clone(), string(b)})
		n := len(e.reqs)
		e.mu.Unlock()
		status, body := e.answer(n)
		if status == 0 { // hang until the client gives up
			<-r.Context().Done()
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(e.Close)
	return e
}

func (e *endpoint) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.reqs)
}

func (e *endpoint) last() seen {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.reqs[len(e.reqs)-1]
}

func provider(t *testing.T, name string) providers.Provider {
	t.Helper()
	p, ok := providers.Lookup(name)
	if !ok || p.OAuth == nil {
		t.Fatalf("no provider %q in the table", name)
	}
	return p
}

func refresher(e *endpoint, name string) *oauth.Refresher {
	return &oauth.Refresher{Endpoints: map[string]string{name: e.URL + "/token"}, Timeout: 3 * time.Second, Backoff: 20 * time.Millisecond}
}

// noToken fails when an error message holds a marker token.
func noToken(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, m := range []string{mRefresh, mRefreshNew, mAccess} {
		if strings.Contains(err.Error(), m) {
			t.Errorf("error message holds a token marker: found")
		}
	}
}

// TestRequestShapes checks each provider's request against what its real
// endpoint wants, and reads each one's answer shape.
func TestRequestShapes(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		provider string
		answer   string
		check    func(t *testing.T, s seen)
		rotated  bool
		expires  time.Time
	}{
		{
			provider: "openai",
			answer:   `{"id_token":"x.y.z","access_token":"` + mAccess + `","refresh_token":"` + mRefreshNew + `","expires_in":3600}`,
			check: func(t *testing.T, s seen) {
				if s.method != "POST" || s.contentType != "application/x-www-form-urlencoded" {
					t.Errorf("method %s content type %q", s.method, s.contentType)
				}
				q, err := url.ParseQuery(s.body)
				if err != nil {
					t.Fatal(err)
				}
				if q.Get("grant_type") != "refresh_token" || q.Get("refresh_token") != mRefresh ||
					q.Get("client_id") != "app_EMoamEEZ73f0CkXaXp7hrann" || q.Get("scope") != "openid profile email" || len(q) != 4 {
					t.Errorf("form fields: grant_type %q, client_id %q, scope %q, refresh token sent: %v, %d fields",
						q.Get("grant_type"), q.Get("client_id"), q.Get("scope"), q.Get("refresh_token") == mRefresh, len(q))
				}
			},
			rotated: true,
			expires: now.Add(time.Hour),
		},
		{
			provider: "anthropic",
			answer:   `{"token_type":"Bearer","access_token":"` + mAccess + `","refresh_token":"` + mRefreshNew + `","expires_in":28800,"scope":"user:inference"}`,
			check: func(t *testing.T, s seen) {
				if s.method != "POST" || s.contentType != "application/json" {
					t.Errorf("method %s content type %q", s.method, s.contentType)
				}
				var m map[string]string
				if err := json.Unmarshal([]byte(s.body), &m); err != nil {
					t.Fatalf("body is not a JSON object of strings: %v", err)
				}
				if m["grant_type"] != "refresh_token" || m["refresh_token"] != mRefresh || m["client_id"] != "9d1c250a-e61b-44d9-88ed-5944d1962f5e" || len(m) != 3 {
					t.Errorf("JSON fields: grant_type %q, client_id %q, refresh token sent: %v, %d fields",
						m["grant_type"], m["client_id"], m["refresh_token"] == mRefresh, len(m))
				}
			},
			rotated: true,
			expires: now.Add(8 * time.Hour),
		},
		{
			provider: "github-copilot",
			answer:   `{"token":"` + mAccess + `","expires_at":1800001500,"refresh_in":1500,"endpoints":{"api":"https://api.githubcopilot.com"}}`,
			check: func(t *testing.T, s seen) {
				if s.method != "GET" || s.body != "" {
					t.Errorf("method %s, body of %d bytes; want a GET without body", s.method, len(s.body))
				}
				if s.header.Get("Authorization") != "Bearer "+mRefresh {
					t.Errorf("the GitHub token is not the bearer")
				}
				if s.header.Get("Editor-Version") == "" || s.header.Get("Copilot-Integration-Id") != "vscode-chat" {
					t.Errorf("Copilot client headers missing: %v", s.header)
				}
			},
			expires: time.Unix(1800001500, 0),
		},
	} {
		t.Run(tc.provider, func(t *testing.T) {
			e := newEndpoint(t, func(int) (int, string) { return 200, tc.answer })
			r := refresher(e, tc.provider)
			r.Now = func() time.Time { return now }
			o := &opener{token: mRefresh}
			tok, err := r.Refresh(context.Background(), oauth.Request{Provider: provider(t, tc.provider), Refresh: o.open})
			if err != nil {
				t.Fatal(err)
			}
			defer tok.Wipe()
			tc.check(t, e.last())
			if e.last().header.Get("Accept") != "application/json" {
				t.Errorf("Accept: %q", e.last().header.Get("Accept"))
			}
			if string(tok.Access) != mAccess {
				t.Errorf("access token not read from the answer")
			}
			if got := tok.Refresh != nil; got != tc.rotated {
				t.Errorf("rotated refresh token returned: %v, want %v", got, tc.rotated)
			}
			if tc.rotated && string(tok.Refresh) != mRefreshNew {
				t.Errorf("rotated refresh token differs from the answer's")
			}
			if !tok.Expires.Equal(tc.expires) {
				t.Errorf("expires %v, want %v", tok.Expires, tc.expires)
			}
			if tok.Attempts != 1 || o.opens != 1 {
				t.Errorf("attempts %d, refresh token opened %d times; want 1, 1", tok.Attempts, o.opens)
			}
		})
	}
}

// TestExpiryFallbacks: without expires_in the expiry comes from the access
// token as a JWT, else from the provider's lifetime.
func TestExpiryFallbacks(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	p := provider(t, "openai")
	// header {"alg":"none"}, payload {"exp":1800007200}
	jwt := "eyJhbGciOiJub25lIn0.eyJleHAiOjE4MDAwMDcyMDB9.sig"
	for _, tc := range []struct {
		name, answer string
		want         time.Time
	}{
		{"jwt", `{"access_token":"` + jwt + `"}`, time.Unix(1800007200, 0)},
		{"lifetime", `{"access_token":"opaque"}`, now.Add(p.OAuth.Lifetime)},
		{"null expires_in", `{"access_token":"opaque","expires_in":null}`, now.Add(p.OAuth.Lifetime)},
		{"fractional", `{"access_token":"opaque","expires_in":1.5}`, now.Add(1500 * time.Millisecond)},
	} {
		tok, err := oauth.ParseToken(p, []byte(tc.answer), now)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !tok.Expires.Equal(tc.want) {
			t.Errorf("%s: expires %v, want %v", tc.name, tok.Expires, tc.want)
		}
	}
}

// TestNotRotated: an answer repeating the refresh token, or without one,
// is not a rotation.
func TestNotRotated(t *testing.T) {
	for _, answer := range []string{
		`{"access_token":"a","refresh_token":"` + mRefresh + `","expires_in":60}`,
		`{"access_token":"a","expires_in":60}`,
		`{"access_token":"a","refresh_token":null,"expires_in":60}`,
	} {
		e := newEndpoint(t, func(int) (int, string) { return 200, answer })
		tok, err := refresher(e, "anthropic").Refresh(context.Background(), oauth.Request{Provider: provider(t, "anthropic"), Refresh: (&opener{token: mRefresh}).open})
		if err != nil {
			t.Fatal(err)
		}
		if tok.Refresh != nil {
			t.Errorf("answer %d bytes long: reported as rotated", len(answer))
		}
	}
}

// TestLoginErrors: invalid_grant, 400 and 401 mean a new login; other
// 4xx answers are final too but not a login matter. Neither is retried.
func TestLoginErrors(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		login  bool
		reason string
	}{
		{400, `{"error":"invalid_grant","error_description":"refresh token ` + mRefresh + ` is revoked"}`, true, "invalid_grant"},
		{401, `{"message":"Bad credentials"}`, true, "HTTP 401"},
		{400, `not json`, true, "HTTP 400"},
		{403, `{"error":"invalid_grant"}`, true, "invalid_grant"},
		{403, `{"error":"access_denied"}`, false, "access_denied"},
		{404, ``, false, ""},
		{400, `{"error":"` + mRefresh + ` bad"}`, true, "HTTP 400"}, // an odd code is not echoed
	} {
		e := newEndpoint(t, func(int) (int, string) { return tc.status, tc.body })
		_, err := refresher(e, "openai").Refresh(context.Background(), oauth.Request{Provider: provider(t, "openai"), Refresh: (&opener{token: mRefresh}).open})
		noToken(t, err)
		var le *oauth.LoginError
		var se *oauth.StatusError
		switch {
		case tc.login && !errors.As(err, &le):
			t.Errorf("HTTP %d: %v; want a LoginError", tc.status, err)
		case tc.login && le.Reason != tc.reason:
			t.Errorf("HTTP %d: reason %q, want %q", tc.status, le.Reason, tc.reason)
		case !tc.login && (!errors.As(err, &se) || se.Status != tc.status || se.Reason != tc.reason):
			t.Errorf("HTTP %d: %v; want a StatusError with reason %q", tc.status, err, tc.reason)
		}
		if e.count() != 1 {
			t.Errorf("HTTP %d: %d requests; a 4xx must not be retried", tc.status, e.count())
		}
	}
}

// TestBadAnswers: a 200 without a usable access token is final, and says
// so without quoting the answer.
func TestBadAnswers(t *testing.T) {
	for _, body := range []string{
		`not json ` + mAccess,
		`{"refresh_token":"` + mRefreshNew + `"}`,
		`{"access_token":""}`,
		`{"access_token":"has space ` + mAccess + `"}`,
		`{"access_token":"` + mAccess + "\\r\\nX-Injected: 1" + `"}`,
		`{"access_token":42}`,
		`{"access_token":"a","refresh_token":7}`,
		`{"access_token":"a","expires_in":-5}`,
		`{"access_token":"a","expires_in":"soon"}`,
		`{"access_token":"a","access_token":"b"}`,
		`["` + mAccess + `"]`,
	} {
		e := newEndpoint(t, func(int) (int, string) { return 200, body })
		_, err := refresher(e, "openai").Refresh(context.Background(), oauth.Request{Provider: provider(t, "openai"), Refresh: (&opener{token: mRefresh}).open})
		var se *oauth.StatusError
		if !errors.As(err, &se) {
			t.Errorf("answer of %d bytes: %v; want a StatusError", len(body), err)
		}
		noToken(t, err)
		if e.count() != 1 {
			t.Errorf("answer of %d bytes: %d requests, want 1", len(body), e.count())
		}
	}
	// Too long.
	e := newEndpoint(t, func(int) (int, string) {
		return 200, `{"access_token":"a","pad":"` + strings.Repeat("x", oauth.MaxResponse) + `"}`
	})
	if _, err := refresher(e, "openai").Refresh(context.Background(), oauth.Request{Provider: provider(t, "openai"), Refresh: (&opener{token: mRefresh}).open}); err == nil {
		t.Errorf("an answer over %d bytes was accepted", oauth.MaxResponse)
	}
	if e.count() != 1 {
		t.Errorf("an over-long answer was retried: %d requests", e.count())
	}
}

// TestRetries: 5xx, 429 and network errors are retried with backoff
// within the timeout.
func TestRetries(t *testing.T) {
	t.Run("5xx then success", func(t *testing.T) {
		e := newEndpoint(t, func(n int) (int, string) {
			if n < 3 {
				return []int{503, 429}[n-1], `{"error":"temporarily_unavailable"}`
			}
			return 200, `{"access_token":"` + mAccess + `","expires_in":60}`
		})
		o := &opener{token: mRefresh}
		tok, err := refresher(e, "openai").Refresh(context.Background(), oauth.Request{Provider: provider(t, "openai"), Refresh: o.open})
		if err != nil {
			t.Fatal(err)
		}
		if tok.Attempts != 3 || e.count() != 3 {
			t.Errorf("attempts %d, requests %d; want 3", tok.Attempts, e.count())
		}
		if o.opens != 3 {
			t.Errorf("refresh token opened %d times; want once per request", o.opens)
		}
	})
	t.Run("5xx until the timeout", func(t *testing.T) {
		var mu sync.Mutex
		var at []time.Time
		e := newEndpoint(t, func(int) (int, string) {
			mu.Lock()
			at = append(at, time.Now())
			mu.Unlock()
			return 502, ""
		})
		r := refresher(e, "openai")
		r.Timeout, r.Backoff = time.Second, 100*time.Millisecond
		start := time.Now()
		_, err := r.Refresh(context.Background(), oauth.Request{Provider: provider(t, "openai"), Refresh: (&opener{token: mRefresh}).open})
		took := time.Since(start)
		if err == nil || !strings.Contains(err.Error(), "HTTP 502") {
			t.Fatalf("err = %v", err)
		}
		// Waits of 100, 200, 400 ms fit in 1 s; the next (800 ms) does not.
		var gaps []string
		for i := 1; i < len(at); i++ {
			gaps = append(gaps, at[i].Sub(at[i-1]).Round(time.Millisecond).String())
		}
		t.Logf("%d requests in %v, gaps %v: %v", e.count(), took.Round(time.Millisecond), gaps, err)
		if n := e.count(); n < 2 || n > 4 {
			t.Errorf("%d requests; want 2 to 4 with a doubling backoff from 100 ms in 1 s", n)
		}
		if took > 3*time.Second {
			t.Errorf("gave up after %v; the timeout is 1 s", took)
		}
	})
	t.Run("network error", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close() // nothing listens: connection refused
		r := &oauth.Refresher{Endpoints: map[string]string{"openai": "http://" + addr + "/token"}, Timeout: 500 * time.Millisecond, Backoff: 50 * time.Millisecond}
		o := &opener{token: mRefresh}
		_, err = r.Refresh(context.Background(), oauth.Request{Provider: provider(t, "openai"), Refresh: o.open})
		if err == nil || !strings.Contains(err.Error(), "attempts") {
			t.Fatalf("err = %v", err)
		}
		noToken(t, err)
		t.Logf("refused connections: %d attempts: %v", o.opens, err)
		if o.opens < 2 {
			t.Errorf("%d attempts; network errors must be retried", o.opens)
		}
	})
}

// TestTimeout: an endpoint that never answers costs at most the timeout.
func TestTimeout(t *testing.T) {
	e := newEndpoint(t, func(int) (int, string) { return 0, "" })
	r := refresher(e, "anthropic")
	r.Timeout = 300 * time.Millisecond
	start := time.Now()
	_, err := r.Refresh(context.Background(), oauth.Request{Provider: provider(t, "anthropic"), Refresh: (&opener{token: mRefresh}).open})
	took := time.Since(start)
	t.Logf("hanging endpoint: gave up after %v: %v", took.Round(time.Millisecond), err)
	if err == nil {
		t.Fatal("no error from a hanging endpoint")
	}
	if took > 2*time.Second {
		t.Errorf("took %v with a 300 ms timeout", took)
	}
	// The caller's context cuts it shorter still.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	r.Timeout = 10 * time.Second
	start = time.Now()
	if _, err := r.Refresh(ctx, oauth.Request{Provider: provider(t, "anthropic"), Refresh: (&opener{token: mRefresh}).open}); err == nil {
		t.Fatal("no error when the context ends")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %v with a 50 ms context", took)
	}
}

// TestNoRedirects: a redirect is an answer, not a place to send the
// refresh token to.
func TestNoRedirects(t *testing.T) {
	other := newEndpoint(t, func(int) (int, string) { return 200, `{"access_token":"a"}` })
	e := newEndpoint(t, func(int) (int, string) { return 200, "" })
	e.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/token", http.StatusTemporaryRedirect)
	})
	_, err := refresher(e, "openai").Refresh(context.Background(), oauth.Request{Provider: provider(t, "openai"), Refresh: (&opener{token: mRefresh}).open})
	var se *oauth.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusTemporaryRedirect {
		t.Errorf("err = %v; want a StatusError for the 307", err)
	}
	if other.count() != 0 {
		t.Errorf("the redirect was followed: the other server got %d requests", other.count())
	}
}

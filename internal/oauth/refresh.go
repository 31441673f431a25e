package oauth

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/llm-agent/llm-agent/internal/providers"
)

// Defaults of a Refresher.
const (
	DefaultTimeout = 15 * time.Second       // one refresh, retries included
	DefaultBackoff = 200 * time.Millisecond // before the first retry; doubles
	maxBackoff     = 2 * time.Second
	// MaxResponse caps a token endpoint's answer; real ones are a few KiB.
	MaxResponse = 64 << 10
	// MaxToken caps one token, as the agent caps one field value.
	MaxToken = 64 << 10
)

// Opener passes the refresh token to fn and wipes it (or closes its
// enclave) when fn returns. fn must not keep the slice.
type Opener func(fn func(refresh []byte) error) error

// Request is one refresh to run.
type Request struct {
	Provider      providers.Provider // a row with OAuth
	EnterpriseURL string             // github-copilot: the credential's enterpriseUrl
	Refresh       Opener
}

// Token is the answer of a successful refresh. Its slices are the
// caller's to wipe (Wipe).
type Token struct {
	Access []byte
	// Refresh is a new refresh token when the provider rotated it; nil
	// when it kept the old one.
	Refresh []byte
	// Expires is when Access expires: from the answer, else from Access
	// as a JWT, else the provider's Lifetime from now.
	Expires  time.Time
	Attempts int // requests made
}

// Wipe zeroes the tokens.
func (t *Token) Wipe() {
	clear(t.Access)
	clear(t.Refresh)
}

// LoginError means the provider refused the refresh token (invalid_grant,
// or an answer of 400 or 401): it was revoked, expired or used up, and
// only a new login on the laptop helps.
type LoginError struct {
	Provider string
	Reason   string // "invalid_grant", "HTTP 401", ...; never a token
}

func (e *LoginError) Error() string {
	return fmt.Sprintf("the %s token endpoint refused the refresh token (%s)", e.Provider, e.Reason)
}

// StatusError is an answer that retrying will not change (another 4xx, or
// a 2xx without a usable access token).
type StatusError struct {
	Provider string
	Status   int
	Reason   string
}

func (e *StatusError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("the %s token endpoint answered %s", e.Provider, e.Reason)
	}
	if e.Reason == "" {
		return fmt.Sprintf("the %s token endpoint answered HTTP %d", e.Provider, e.Status)
	}
	return fmt.Sprintf("the %s token endpoint answered HTTP %d (%s)", e.Provider, e.Status, e.Reason)
}

// Refresher runs refreshes. The zero value works with the defaults.
type Refresher struct {
	// Endpoints overrides token endpoints by provider name.
	Endpoints map[string]string
	// Client makes the requests; nil means NewClient().
	Client  *http.Client
	Timeout time.Duration // default DefaultTimeout
	Backoff time.Duration // default DefaultBackoff
	// Now is the clock for expiries; nil means time.Now.
	Now func() time.Time
}

// NewClient returns the HTTP client a Refresher uses by default: HTTPS
// proxies from the environment, no redirects (a redirect must not carry a
// refresh token elsewhere), no kept-alive connections (their buffers
// would hold request bytes longer), and HTTP/1.1 only.
func NewClient() *http.Client {
	tr := &http.Transport{
		Proxy:                  http.ProxyFromEnvironment,
		DisableKeepAlives:      true,
		TLSHandshakeTimeout:    10 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		TLSNextProto:           map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// Refresh asks the provider's token endpoint for a new access token,
// retrying network errors, 408, 429 and 5xx answers with backoff until
// the Timeout (or ctx) ends. It fails at once with a *LoginError when the
// provider refuses the refresh token, and with a *StatusError on other
// answers that retrying will not change. Errors never hold a token.
func (r *Refresher) Refresh(ctx context.Context, req Request) (*Token, error) {
	p := req.Provider
	if p.OAuth == nil {
		return nil, fmt.Errorf("llm-agent does not refresh %s tokens", p.Name)
	}
	endpoint, err := p.OAuth.Endpoint(r.Endpoints[p.Name], req.EnterpriseURL)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.Name, err)
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := r.Client
	if client == nil {
		client = NewClient()
	}
	delay := r.Backoff
	if delay <= 0 {
		delay = DefaultBackoff
	}
	var last error
	for attempt := 1; ; attempt++ {
		var tok *Token
		var retryAfter time.Duration
		err := req.Refresh(func(refresh []byte) error {
			var err error
			tok, retryAfter, err = r.once(ctx, client, p, endpoint, refresh)
			return err
		})
		if err == nil {
			tok.Attempts = attempt
			return tok, nil
		}
		var te *transientError
		if !errors.As(err, &te) {
			return nil, err
		}
		last = te.err
		wait := max(delay, retryAfter)
		delay = min(2*delay, maxBackoff)
		if dl, ok := ctx.Deadline(); ctx.Err() != nil || (ok && time.Until(dl) < wait) {
			return nil, fmt.Errorf("no good answer from the %s token endpoint after %d attempts in %v: %w", p.Name, attempt, timeout, last)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no good answer from the %s token endpoint after %d attempts in %v: %w", p.Name, attempt, timeout, last)
		case <-time.After(wait):
		}
	}
}

// transientError is a failure worth retrying.
type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// once makes one request with refresh, which it does not keep.
func (r *Refresher) once(ctx context.Context, client *http.Client, p providers.Provider, endpoint string, refresh []byte) (*Token, time.Duration, error) {
	var hreq *http.Request
	var body []byte
	var err error
	if p.OAuth.Grant == providers.GrantCopilot {
		hreq, err = http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
		if err == nil {
			// net/http takes headers as strings: this copy of the GitHub
			// token cannot be wiped (see the package documentation).
			hreq.Header.Set("Authorization", "Bearer "+string(refresh))
		}
	} else {
		body = requestBody(p, refresh)
		defer clear(body)
		hreq, err = http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
		if err == nil {
			hreq.GetBody = nil // never re-sent: no redirects, no retries by net/http
			if p.OAuth.Grant == providers.GrantJSON {
				hreq.Header.Set("Content-Type", "application/json")
			} else {
				hreq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
		}
	}
	if err != nil {
		return nil, 0, fmt.Errorf("%s: bad token endpoint: %v", p.Name, err)
	}
	hreq.Header.Set("Accept", "application/json")
	hreq.Header.Set("User-Agent", "llm-agent")
	for _, h := range p.OAuth.TokenHeaders {
		hreq.Header.Set(h.Name, h.Value)
	}
	resp, err := client.Do(hreq)
	if err != nil {
		return nil, 0, &transientError{err}
	}
	data, rerr := readCapped(resp.Body, MaxResponse)
	resp.Body.Close()
	defer clear(data)
	status := resp.StatusCode
	switch {
	case status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500:
		return nil, retryAfter(resp), &transientError{fmt.Errorf("HTTP %d", status)}
	case errors.Is(rerr, errTooLong):
		return nil, 0, &StatusError{Provider: p.Name, Status: status, Reason: rerr.Error()}
	case rerr != nil && status >= 200 && status < 300:
		return nil, 0, &transientError{rerr}
	case status == http.StatusBadRequest || status == http.StatusUnauthorized:
		reason := errorCode(data)
		if reason == "" {
			reason = "HTTP " + strconv.Itoa(status)
		}
		return nil, 0, &LoginError{Provider: p.Name, Reason: reason}
	case status < 200 || status >= 300:
		code := errorCode(data)
		if code == "invalid_grant" {
			return nil, 0, &LoginError{Provider: p.Name, Reason: code}
		}
		return nil, 0, &StatusError{Provider: p.Name, Status: status, Reason: code}
	}
	tok, err := parseToken(p, data, r.now())
	if err != nil {
		return nil, 0, err
	}
	if tok.Refresh != nil && bytes.Equal(tok.Refresh, refresh) {
		clear(tok.Refresh)
		tok.Refresh = nil // not rotated
	}
	return tok, 0, nil
}

func (r *Refresher) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// retryAfter reads a Retry-After header given in seconds (at most a
// minute; the overall timeout cuts it shorter anyway).
func retryAfter(resp *http.Response) time.Duration {
	n, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(min(n, 60)) * time.Second
}

var errTooLong = fmt.Errorf("an answer longer than %d bytes", MaxResponse)

// readCapped reads at most max bytes of r into a buffer it owns, wiping
// every buffer it outgrows.
func readCapped(r io.Reader, max int) ([]byte, error) {
	buf := make([]byte, 0, 4096)
	for {
		if len(buf) == cap(buf) {
			if len(buf) > max {
				clear(buf)
				return nil, errTooLong
			}
			nb := make([]byte, len(buf), min(2*cap(buf), max+1))
			copy(nb, buf)
			clear(buf)
			buf = nb
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			if len(buf) > max {
				clear(buf)
				return nil, errTooLong
			}
			return buf, nil
		}
		if err != nil {
			clear(buf)
			return nil, fmt.Errorf("reading the answer: %v", err)
		}
	}
}

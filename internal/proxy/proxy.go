package proxy

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/llm-agent/llm-agent/internal/providers"
	"github.com/llm-agent/llm-agent/protocol"
)

// Config configures a Proxy.
type Config struct {
	// Socket is the agent's socket. The proxy asks it once per request,
	// over connections it keeps open between requests (pool.go).
	Socket string
	// Dial, when set, replaces the dial of Socket (a Follower's Dial:
	// the owner's agent wherever it is now); its errors should say what
	// was found, in one line.
	Dial func(ctx context.Context) (net.Conn, error)
	// Upstreams overrides providers' base URLs by name (--upstream). A
	// name without a row in the table gets an OpenAI-compatible route.
	Upstreams map[string]string
	// Timeout bounds one exchange with the agent, dial included; zero
	// means protocol.DefaultTimeout, which leaves the owner time to
	// answer a confirm prompt.
	Timeout time.Duration
	// Requester says who asks, as reported to the agent; nil reports
	// nothing.
	Requester func() *protocol.Requester
	// Transport sends the upstream requests; nil means one that never
	// changes the compression the tool asked for.
	Transport http.RoundTripper
	// Peer, when set, judges the process behind each TCP connection the
	// proxy accepts (once per connection, before its first request is
	// served); an error refuses every request on it with a 403 and is
	// logged. NewPeerCheck's Check is the one llm-agent-client uses.
	Peer func(local, remote net.Addr) error
	// Refused gets one line per refused connection, naming the process
	// and why, whether or not Log is set. Nil means Log.
	Refused *log.Logger
	// Log gets one line per request (provider, method, path, status,
	// time) and each failure; never a credential, a key or a query
	// string. Nil is quiet.
	Log *log.Logger
	// Relay sends every request through the agent (relay@llm-agent): the
	// laptop adds the credential and calls the provider, whose base URL
	// only the laptop chooses; Upstreams must be empty.
	Relay bool
	// MaxIdle bounds the agent connections kept open between requests;
	// zero means 64, negative keeps none (a fresh connection per
	// request). IdleTime is how long one is kept unused; zero means 5
	// minutes.
	MaxIdle  int
	IdleTime time.Duration
}

// Proxy is the auth-injecting reverse proxy. It is an http.Handler.
type Proxy struct {
	cfg    Config
	dummy  []byte
	routes providers.Routes
	rp     *httputil.ReverseProxy
	srv    *http.Server
	link   linkState
	pool   *agentPool
	// relay mode (relay.go)
	relay   *httputil.ReverseProxy
	relayTr *http.Transport

	noGuard sync.Once // RegisterWithGuard says "no guard" once
}

// New makes a proxy with a fresh random dummy key.
func New(cfg Config) (*Proxy, error) {
	if cfg.Socket == "" {
		return nil, errors.New("no agent socket")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = protocol.DefaultTimeout
	}
	if cfg.Transport == nil {
		cfg.Transport = NewTransport()
	}
	if cfg.MaxIdle == 0 {
		cfg.MaxIdle = defaultMaxIdle
	}
	if cfg.IdleTime <= 0 {
		cfg.IdleTime = defaultIdleTime
	}
	if cfg.Relay && len(cfg.Upstreams) > 0 {
		return nil, errors.New("--upstream does not go with --relay: the laptop chooses where relayed requests go (llm-agent --relay-upstream)")
	}
	routes, err := providers.NewRoutes(cfg.Upstreams, "--upstream")
	if err != nil {
		return nil, err
	}
	p := &Proxy{cfg: cfg, routes: routes}
	p.link.closed = make(chan struct{})
	p.pool = newPool(p.dial, cfg.Timeout, cfg.MaxIdle, cfg.IdleTime)
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	// "sk-" because some tools check that an API key looks like one.
	p.dummy = []byte("sk-llm-agent-proxy-" + base64.RawURLEncoding.EncodeToString(key))
	p.rp = &httputil.ReverseProxy{
		Rewrite:   p.rewrite,
		Transport: cfg.Transport,
		// Flush after every read: server-sent events and any other
		// streamed answer reach the tool as the upstream sends them.
		FlushInterval: -1,
		ErrorHandler:  p.upstreamError,
		ErrorLog:      log.New(io.Discard, "", 0),
	}
	if cfg.Relay {
		p.relay = p.newRelay()
	}
	p.srv = peerServer(p)
	return p, nil
}

// NewTransport is the default upstream transport: HTTP/2 where the
// upstream offers it, the environment's HTTPS_PROXY, and no compression of
// its own (the tool's Accept-Encoding and the upstream's Content-Encoding
// pass through untouched).
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        100,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		DisableCompression:  true,
	}
}

// CheckUpstream accepts an upstream base URL: https, or plain http to a
// loopback address only (a credential must not cross a network in clear).
func CheckUpstream(raw string) error { return providers.CheckUpstream(raw) }

// DummyKey is the key tools must present; it opens only this proxy.
func (p *Proxy) DummyKey() string { return string(p.dummy) }

// Routes lists the providers the proxy serves, sorted.
func (p *Proxy) Routes() []string {
	var names []string
	for n := range p.routes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Serve answers on l until Close.
func (p *Proxy) Serve(l net.Listener) error { return serveUntilClosed(p.srv, l) }

// Close stops serving: open requests get at most grace to finish. The
// agent connections it holds are closed.
func (p *Proxy) Close(grace time.Duration) {
	p.link.mu.Lock()
	select {
	case <-p.link.closed:
	default:
		close(p.link.closed)
	}
	p.link.mu.Unlock()
	p.pool.close() // and what requests give back later
	shutdown(p.srv, grace)
	if p.relayTr != nil {
		p.relayTr.CloseIdleConnections()
	}
}

// serveUntilClosed serves on l; a Close or Shutdown is not an error.
func serveUntilClosed(srv *http.Server, l net.Listener) error {
	err := srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// shutdown gives srv's open requests at most grace, then closes it.
func shutdown(srv *http.Server, grace time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if srv.Shutdown(ctx) != nil {
		srv.Close()
	}
}

// authorized reports whether h carries the dummy key, in whichever header
// the tool's SDK puts a key. Every comparison takes the same time.
func (p *Proxy) authorized(h http.Header) bool {
	ok := 0
	for _, name := range providers.CredentialHeaders {
		for _, v := range h.Values(name) {
			if name == "Authorization" || name == "Proxy-Authorization" {
				if len(v) < 7 || !strings.EqualFold(v[:7], "bearer ") {
					continue
				}
				v = strings.TrimSpace(v[7:])
			}
			ok |= subtle.ConstantTimeCompare([]byte(v), p.dummy)
		}
	}
	return ok == 1
}

type ctxKey struct{}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	name, rest := providers.SplitRoute(r.URL)
	rt := p.routes[name]
	lw := &logWriter{ResponseWriter: w}
	if p.cfg.Log != nil {
		w = lw
		defer func() {
			p.cfg.Log.Printf("%s %s %s: %d (%v)", name, r.Method, logPath(rest), lw.status(), time.Since(start).Round(time.Millisecond))
		}()
	}
	if err := p.checkPeer(r.Context()); err != nil {
		shape := providers.OpenAIErrors
		if rt != nil {
			shape = rt.Prov.Errors
		}
		providers.WriteError(w, shape, http.StatusForbidden, "llm-agent proxy: refused: this process is not one of the proxy owner's (see the proxy's log)")
		return
	}
	if rt == nil && p.relay != nil {
		// The laptop may have routes this side does not know of
		// (llm-agent --relay-upstream NAME=URL): let it answer.
		rt = &providers.Route{Prov: providers.Provider{Name: name, Errors: providers.OpenAIErrors}}
	}
	if rt == nil {
		providers.WriteError(w, providers.OpenAIErrors, http.StatusNotFound, fmt.Sprintf("llm-agent proxy: no route for %q; the routes are /%s/", name, strings.Join(p.Routes(), "/, /")))
		return
	}
	if !p.authorized(r.Header) {
		providers.WriteError(w, rt.Prov.Errors, http.StatusUnauthorized, "llm-agent proxy: this request does not carry the proxy's key; give the tool the key that llm-agent-client proxy set, not a real one")
		return
	}
	if p.link.down.Load() {
		// The laptop stopped answering: say so at once (failfast.go).
		msg := p.failFastText()
		if p.cfg.Log != nil {
			p.cfg.Log.Printf("%s: %s", name, msg)
		}
		providers.WriteError(w, rt.Prov.Errors, http.StatusServiceUnavailable, msg)
		return
	}
	if p.relay != nil {
		p.relay.ServeHTTP(w, r)
		return
	}
	cred, err := p.fetch(r.Context(), name)
	if err != nil {
		if r.Context().Err() != nil {
			return // the tool went away
		}
		if errors.Is(err, errTimeout) {
			p.linkSilent()
		}
		status, msg := classify(err, p.cfg.Socket, p.cfg.Timeout)
		if p.cfg.Log != nil {
			p.cfg.Log.Printf("%s: %s", name, msg)
		}
		providers.WriteError(w, rt.Prov.Errors, status, msg)
		return
	}
	inj, err := rt.Plan(cred, rest, r.URL.RawQuery)
	cred.Wipe()
	if err != nil {
		providers.WriteError(w, rt.Prov.Errors, http.StatusForbidden, "llm-agent proxy: "+err.Error())
		return
	}
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, inj)))
}

type peerKey struct{}

// peerVerdict is the peer check of one connection, made once.
type peerVerdict struct {
	conn net.Conn
	once sync.Once
	err  error
}

// peerServer is the HTTP server of the proxy and of the front: each
// connection gets a peerVerdict, for connVerdict.
func peerServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, peerKey{}, &peerVerdict{conn: c})
		},
	}
}

// connVerdict judges the connection of a request (ctx) with check on its
// first request, calling refused once if check refuses; the verdict holds
// for the connection's life (keep-alive requests reuse it). A request
// served outside peerServer is refused: fail closed.
func connVerdict(ctx context.Context, check func(net.Conn) error, refused func(error)) error {
	v, _ := ctx.Value(peerKey{}).(*peerVerdict)
	if v == nil {
		return errors.New("no connection to check")
	}
	v.once.Do(func() {
		if v.err = check(v.conn); v.err != nil {
			refused(v.err)
		}
	})
	return v.err
}

// checkPeer judges the process behind the request's connection.
func (p *Proxy) checkPeer(ctx context.Context) error {
	if p.cfg.Peer == nil {
		return nil
	}
	check := func(c net.Conn) error { return p.cfg.Peer(c.LocalAddr(), c.RemoteAddr()) }
	return connVerdict(ctx, check, func(err error) {
		if l := p.refusedLog(); l != nil {
			l.Printf("refused: %s", oneLine(err.Error()))
		}
	})
}

func (p *Proxy) refusedLog() *log.Logger {
	if p.cfg.Refused != nil {
		return p.cfg.Refused
	}
	return p.cfg.Log
}

// logPath shortens a path for the log.
func logPath(rest string) string {
	if len(rest) > 80 {
		return rest[:80] + "..."
	}
	return rest
}

// fetch asks the agent for provider's credential, within the timeout, on
// a held connection or a fresh one, and gives up when the tool hangs up. A
// held connection that fails before any byte of the get was written is
// dropped and the get goes once more, on a fresh connection; once a byte
// went, the failure is the request's (the agent may have seen the get,
// and may have asked the owner).
func (p *Proxy) fetch(ctx context.Context, provider string) (*protocol.Credential, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	var who *protocol.Requester
	if p.cfg.Requester != nil {
		who = p.cfg.Requester()
	}
	conn, reused, err := p.pool.take(ctx) // a dial refuses a socket another user serves
	for {
		if err != nil {
			if ctx.Err() == context.DeadlineExceeded || errors.Is(err, errTimeout) {
				return nil, errTimeout
			}
			return nil, &unreachableError{err}
		}
		var cred *protocol.Credential
		var sent bool
		cred, sent, err = p.getOn(ctx, conn, provider, who)
		if err != nil && reused && !sent && ctx.Err() == nil {
			conn, err = p.pool.dialNew(ctx)
			reused = false
			continue
		}
		if err != nil && (ctx.Err() == context.DeadlineExceeded || errors.Is(err, os.ErrDeadlineExceeded)) {
			return nil, errTimeout
		}
		if err == nil {
			p.linkAnswered()
		}
		return cred, err
	}
}

// getOn sends one get on conn and gives conn back to the pool if it is
// still in step, else closes it; sent says whether any byte of the get
// was written.
func (p *Proxy) getOn(ctx context.Context, conn *agentConn, provider string, who *protocol.Requester) (*protocol.Credential, bool, error) {
	sc := &sentConn{Conn: conn.Conn}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	c := protocol.NewClient(sc)
	c.Timeout = p.cfg.Timeout
	cred, err := c.Get(provider, who)
	if stop() && inStep(err) {
		p.pool.put(conn)
	} else {
		conn.Close()
	}
	return cred, sc.sent, err
}

type unreachableError struct{ err error }

func (e *unreachableError) Error() string { return e.err.Error() }
func (e *unreachableError) Unwrap() error { return e.err }

var errTimeout = errors.New("timeout")

// classify turns an agent error into a status and a one-line message that
// names no secret.
func classify(err error, socket string, timeout time.Duration) (int, string) {
	var ue *unreachableError
	var f *protocol.Failure
	var te *protocol.TransportError
	var fe *FollowError
	switch {
	case errors.As(err, &fe):
		return http.StatusServiceUnavailable, "llm-agent: the owner is not connected: " + oneLine(fe.Error())
	case errors.As(err, &ue):
		return http.StatusServiceUnavailable, fmt.Sprintf("llm-agent: the owner is not connected: cannot reach the agent at %s: %s", socket, protocol.DialReason(ue.err))
	case errors.Is(err, errTimeout), errors.Is(err, os.ErrDeadlineExceeded):
		return http.StatusServiceUnavailable, fmt.Sprintf("llm-agent: the owner is not connected: the laptop did not answer within %v; failing fast until it answers", timeout)
	case errors.As(err, &f) && f.Code == protocol.CodeUnreachable:
		return http.StatusServiceUnavailable, "llm-agent: the owner is not connected: " + oneLine(f.Message)
	case errors.As(err, &f) && f.Code == protocol.CodeLocked:
		return http.StatusServiceUnavailable, "llm-agent: the agent is locked; its owner can unlock it with llm-agent-client unlock"
	case errors.As(err, &f):
		return http.StatusForbidden, "llm-agent: the agent refused: " + oneLine(f.Message)
	case errors.As(err, &te):
		return http.StatusServiceUnavailable, "llm-agent: the owner is not connected: the agent hung up (" + oneLine(te.Error()) + ")"
	}
	return http.StatusServiceUnavailable, "llm-agent: the owner is not connected: " + oneLine(err.Error())
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// rewrite builds the upstream request: the route's URL, the tool's headers
// less every key, plus the credential.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	inj := pr.In.Context().Value(ctxKey{}).(*providers.Injection)
	pr.Out.URL = inj.Target
	pr.Out.Host = ""
	inj.Apply(pr.Out.Header)
}

func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return
	}
	name, _ := providers.SplitRoute(r.URL)
	shape := providers.OpenAIErrors
	if rt := p.routes[name]; rt != nil {
		shape = rt.Prov.Errors
	}
	msg := "llm-agent proxy: the upstream did not answer: " + oneLine(err.Error())
	if p.cfg.Log != nil {
		p.cfg.Log.Printf("%s: %s", name, msg)
	}
	providers.WriteError(w, shape, http.StatusBadGateway, msg)
}

// logWriter records the status for the log; Unwrap keeps Flush and Hijack
// reachable through http.ResponseController.
type logWriter struct {
	http.ResponseWriter
	code int
}

func (l *logWriter) WriteHeader(code int) {
	if l.code == 0 {
		l.code = code
	}
	l.ResponseWriter.WriteHeader(code)
}

func (l *logWriter) Write(b []byte) (int, error) {
	if l.code == 0 {
		l.code = http.StatusOK
	}
	return l.ResponseWriter.Write(b)
}

func (l *logWriter) Flush() { http.NewResponseController(l.ResponseWriter).Flush() }

func (l *logWriter) Unwrap() http.ResponseWriter { return l.ResponseWriter }

func (l *logWriter) status() int {
	if l.code == 0 {
		return http.StatusOK
	}
	return l.code
}

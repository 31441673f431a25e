package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/llm-agent/llm-agent/internal/providers"
	"github.com/llm-agent/llm-agent/internal/usage"
	"github.com/llm-agent/llm-agent/protocol"
)

// Limits bound what one relayed request and all of them together may
// take of the laptop. Zero fields take the defaults.
type Limits struct {
	// MaxBody is the largest request body, in bytes (32 MiB: the
	// providers' own limits are of that order).
	MaxBody int64
	// MaxHeaders is the most request header fields (100), MaxHeaderBytes
	// their total size (64 KiB).
	MaxHeaders, MaxHeaderBytes int
	// MaxStreams is how many requests one connection may have open (100);
	// MaxInFlight how many the agent relays at once over all (256);
	// MaxOpen how many it holds open at once over all, refusals it is
	// writing included (1024): past it a request is reset unanswered, so
	// that refusals a server side never reads (a zero window), 100 on
	// each of any number of connections, cannot grow the laptop's memory
	// without bound.
	MaxStreams, MaxInFlight, MaxOpen int
	// MaxDuration bounds one request from its arrival to the end of its
	// answer (30 minutes: a long agentic turn streams for minutes), a
	// server side that stops reading it included.
	MaxDuration time.Duration
	// Handshake bounds the wait for the HTTP/2 preface once the
	// connection is upgraded (10 s); Idle how long it may stay open with
	// no request (10 minutes, the agent's idle time-out between frames).
	Handshake, Idle time.Duration
	// Stall ends a connection whose server side has read nothing of
	// what the laptop has to send for this long (45 s, the keep-alive
	// pings' own bound, which a side that keeps writing would defeat).
	Stall time.Duration
}

// refusalWrite bounds the writing of the agent's own refusals, a few
// hundred bytes, to a server side that does not read them.
const refusalWrite = 10 * time.Second

// MaxHeaderBytes is the default bound on a request's header fields, which
// the server side's proxy holds its requests to before sending them: a
// single field past it makes the agent's HTTP/2 end the whole connection
// (an HPACK string too long), and every request on it.
const MaxHeaderBytes = 64 << 10

func (l *Limits) defaults() {
	if l.MaxBody <= 0 {
		l.MaxBody = 32 << 20
	}
	if l.MaxHeaders <= 0 {
		l.MaxHeaders = 100
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = MaxHeaderBytes
	}
	if l.MaxStreams <= 0 {
		l.MaxStreams = 100
	}
	if l.MaxInFlight <= 0 {
		l.MaxInFlight = 256
	}
	if l.MaxOpen <= 0 {
		l.MaxOpen = 1024
	}
	if l.MaxDuration <= 0 {
		l.MaxDuration = 30 * time.Minute
	}
	if l.Handshake <= 0 {
		l.Handshake = 10 * time.Second
	}
	if l.Idle <= 0 {
		l.Idle = 10 * time.Minute
	}
	if l.Stall <= 0 {
		l.Stall = 45 * time.Second
	}
}

// Refusal is why a request is not relayed: the status the tool gets (in
// the provider's error shape) and a one-line message.
type Refusal struct {
	Status  int
	Message string
}

func (r *Refusal) Error() string { return r.Message }

// Policy is the agent's side of one relay connection.
type Policy interface {
	// Authorize decides whether the connection may use provider's
	// credential now, as for a get, and if so passes the plaintext
	// credential to use, which must not keep it: it is wiped when use
	// returns. An error from use refuses the request (403). stop ends the
	// request with a cause, whenever the agent takes the credential away
	// (a lock, a remove) while the request runs; it may be called after
	// Done too.
	Authorize(ctx context.Context, stop context.CancelCauseFunc, provider string, use func(*protocol.Credential) error) *Refusal
	// Done is told of every request that reached a route, relayed or
	// refused, once its answer has ended.
	Done(Record)
	// Idle is told when the connection has no request open (true), as
	// when it is new, and when one opens (false): an idle connection
	// may be closed to make room for others.
	Idle(bool)
}

// Record is one relayed request, for the audit log and the budget.
type Record struct {
	Provider string
	Method   string
	Path     string // below the route, without the query
	Status   int
	Duration time.Duration
	Usage    Usage
	// The body bytes that went up and came back, for an estimate where
	// the provider reported no usage.
	Sent, Received int64
	// Refused is set when the relay answered itself (Status says how);
	// Err when the provider could not be reached or the answer broke off.
	Refused string
	Err     string
}

// Usage is the token usage a provider reported in one answer.
type Usage = usage.Usage

// Meter is fed an answer's body, decompressed, as it streams by; it
// never fails and holds a bounded amount.
type Meter interface {
	io.Writer
	Usage() Usage
}

// Server relays requests on upgraded connections. Its fields are fixed
// once ServeConn is first called.
type Server struct {
	Routes    providers.Routes
	Transport http.RoundTripper // nil: NewTransport
	Limits    Limits
	// Meter reads the usage the provider reports from each answer's
	// body; nil means package usage's Meter.
	Meter func(contentType string) Meter

	once     sync.Once
	inFlight chan struct{}
	open     chan struct{}
}

func (s *Server) init() {
	s.once.Do(func() {
		s.Limits.defaults()
		if s.Transport == nil {
			s.Transport = NewTransport()
		}
		s.inFlight = make(chan struct{}, s.Limits.MaxInFlight)
		s.open = make(chan struct{}, s.Limits.MaxOpen)
		if s.Meter == nil {
			s.Meter = func(ct string) Meter { return usage.NewMeter(ct) }
		}
	})
}

// NewTransport is the upstream transport of the laptop: HTTP/2 where the
// provider offers it, the laptop's HTTPS_PROXY, and compression undone
// here, so that the relay can read the usage the provider reports.
// Redirects are never followed (a Transport does not).
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          128,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// ServeConn serves the HTTP/2 stream on c, which relay@llm-agent has just
// upgraded, until c ends or ctx is done; then every request still open on
// it is cancelled, and its upstream call with it.
func (s *Server) ServeConn(ctx context.Context, c net.Conn, p Policy) error {
	s.init()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ended := make(chan struct{})
	var endOnce sync.Once
	protos := new(http.Protocols)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler:        &handler{s: s, p: p},
		Protocols:      protos,
		MaxHeaderBytes: s.Limits.MaxHeaderBytes,
		// The wait for the preface: a server side that sends nothing
		// after the upgrade must not hold the connection for ever.
		ReadHeaderTimeout: s.Limits.Handshake,
		IdleTimeout:       s.Limits.Idle,
		// Per stream, from its arrival: an answer the server side does
		// not read (a zero window) must not hold its place, and the
		// call, past MaxDuration; a little more, for the handler's own
		// answer when the provider's did not come in time.
		WriteTimeout: s.Limits.MaxDuration + min(refusalWrite, s.Limits.MaxDuration),
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: s.Limits.MaxStreams,
			// A dead link ends the connection, and with it every request.
			SendPingTimeout: 30 * time.Second,
			PingTimeout:     15 * time.Second,
			// So does a server side that stops reading the connection.
			WriteByteTimeout: s.Limits.Stall,
		},
		ErrorLog:    log.New(io.Discard, "", 0),
		BaseContext: func(net.Listener) context.Context { return ctx },
		ConnState: func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateClosed, http.StateHijacked:
				endOnce.Do(func() { close(ended) })
			case http.StateNew, http.StateIdle:
				p.Idle(true)
			case http.StateActive:
				p.Idle(false)
			}
		},
	}
	go srv.Serve(&oneConn{c: c, done: ended})
	select {
	case <-ended:
	case <-ctx.Done():
	}
	srv.Close()
	c.Close()
	return nil
}

// oneConn is a listener that yields one connection, then blocks until it
// has ended.
type oneConn struct {
	mu   sync.Mutex
	c    net.Conn
	done chan struct{}
}

func (l *oneConn) Accept() (net.Conn, error) {
	l.mu.Lock()
	c := l.c
	l.c = nil
	l.mu.Unlock()
	if c != nil {
		return c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConn) Close() error   { return nil }
func (l *oneConn) Addr() net.Addr { return relayAddr{} }

type relayAddr struct{}

func (relayAddr) Network() string { return "relay" }
func (relayAddr) String() string  { return "relay@llm-agent" }

type handler struct {
	s *Server
	p Policy
}

// dropHeaders are dropped from what the server side sends: its own
// bookkeeping, and Accept-Encoding, so that the laptop's transport
// negotiates compression itself and reads the answer plain.
var dropHeaders = []string{"Accept-Encoding", "Cookie", "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip"}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	select {
	case h.s.open <- struct{}{}:
		defer func() { <-h.s.open }()
	default:
		// Reset, not answered: an answer could wait on a server side
		// that does not read it, which is how the requests got here.
		panic(http.ErrAbortHandler)
	}
	start := time.Now()
	lim := &h.s.Limits
	name, rest := providers.SplitRoute(r.URL)
	rt := h.s.Routes[name]
	if rt == nil {
		writeRefusal(w, providers.OpenAIErrors, http.StatusNotFound,
			fmt.Sprintf("llm-agent relay: no route for %q; the laptop's routes are /%s/", cut(name), strings.Join(h.s.Routes.Names(), "/, /")))
		return
	}
	rec := Record{Provider: name, Method: r.Method, Path: cut(strings.SplitN(rest, "?", 2)[0])}
	refuse := func(status int, msg string) {
		rec.Status, rec.Refused, rec.Duration = status, msg, time.Since(start)
		writeRefusal(w, rt.Prov.Errors, status, msg)
		h.p.Done(rec)
	}
	switch {
	case len(r.Header) > lim.MaxHeaders:
		refuse(http.StatusRequestHeaderFieldsTooLarge, fmt.Sprintf("llm-agent relay: %d header fields; the laptop relays at most %d", len(r.Header), lim.MaxHeaders))
		return
	case r.ContentLength > lim.MaxBody:
		refuse(http.StatusRequestEntityTooLarge, fmt.Sprintf("llm-agent relay: a body of %d bytes; the laptop relays at most %d", r.ContentLength, lim.MaxBody))
		return
	}
	select {
	case h.s.inFlight <- struct{}{}:
		defer func() { <-h.s.inFlight }()
	default:
		refuse(http.StatusServiceUnavailable, fmt.Sprintf("llm-agent relay: the laptop is relaying %d requests already, its limit; try again", lim.MaxInFlight))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), lim.MaxDuration)
	defer cancel()
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	var inj *providers.Injection
	no := h.p.Authorize(ctx, stop, name, func(cred *protocol.Credential) error {
		var err error
		inj, err = rt.Plan(cred, rest, r.URL.RawQuery)
		return err
	})
	if no != nil {
		if ctx.Err() != nil && r.Context().Err() != nil {
			rec.Status, rec.Refused, rec.Duration = StatusGone, "the server side went away", time.Since(start)
			h.p.Done(rec)
			return
		}
		refuse(no.Status, no.Message)
		return
	}
	sent := &countingReader{r: http.MaxBytesReader(w, r.Body, lim.MaxBody)}
	r.Body = sent
	lw := &meterWriter{ResponseWriter: w}
	// wrote is set once the whole request has gone to the provider.
	var wrote atomic.Bool
	trace := &httptrace.ClientTrace{WroteRequest: func(i httptrace.WroteRequestInfo) {
		if i.Err == nil {
			wrote.Store(true)
		}
	}}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = inj.Target
			pr.Out.Host = ""
			for _, k := range dropHeaders {
				pr.Out.Header.Del(k)
			}
			for k := range pr.Out.Header {
				if strings.HasPrefix(strings.ToLower(k), "llm-agent-") {
					pr.Out.Header.Del(k)
				}
			}
			inj.Apply(pr.Out.Header)
		},
		Transport:     h.s.Transport,
		FlushInterval: -1,
		ModifyResponse: func(resp *http.Response) error {
			lw.meter = h.s.Meter(resp.Header.Get("Content-Type"))
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, out *http.Request, err error) {
			switch {
			case r.Context().Err() != nil:
				// No answer yet, and nobody to give one to.
				lw.code = StatusGone
				if !wrote.Load() {
					// Nor a whole request at the provider: nothing it
					// could act on, so the server side's own doing, and a
					// refusal's record (which the audit log may thin out).
					lw.refused = "the server side went away before its request reached " + rt.Prov.Name
					return
				}
				rec.Err = "cancelled: the server side went away before the provider answered"
				return
			case out.Context().Err() != nil && context.Cause(ctx) != nil && !errors.Is(context.Cause(ctx), context.DeadlineExceeded) && !errors.Is(context.Cause(ctx), context.Canceled):
				// The agent took the credential away (a lock, a remove).
				rec.Err = "cancelled: " + context.Cause(ctx).Error()
				writeRefusal(w, rt.Prov.Errors, http.StatusServiceUnavailable, "llm-agent: "+context.Cause(ctx).Error())
				return
			case out.Context().Err() != nil:
				rec.Err = fmt.Sprintf("cancelled: no answer within %v, the laptop's limit", lim.MaxDuration)
				writeRefusal(w, rt.Prov.Errors, http.StatusGatewayTimeout, "llm-agent relay: "+rt.Prov.Name+" did not answer within "+lim.MaxDuration.String()+", the laptop's limit for a request")
				return
			}
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				lw.refused = fmt.Sprintf("llm-agent relay: the body is over %d bytes, the laptop's limit", lim.MaxBody)
				writeRefusal(w, rt.Prov.Errors, http.StatusRequestEntityTooLarge, lw.refused)
				return
			}
			// The laptop's audit log gets the whole error; the server side
			// a reason that names nothing of the laptop's network (its
			// resolver, its proxy, its addresses).
			rec.Err = oneLine(err.Error())
			writeRefusal(w, rt.Prov.Errors, http.StatusBadGateway, "llm-agent relay: the laptop could not reach "+rt.Prov.Name+" ("+netReason(err)+"; the laptop's audit log has the details)")
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	// cancelled says why ctx ended during the answer.
	cancelled := func() string {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) && !errors.Is(cause, context.DeadlineExceeded) {
			return "cancelled: " + cause.Error()
		}
		if r.Context().Err() != nil {
			return "cancelled: the server side went away, or stopped reading, during the answer"
		}
		return fmt.Sprintf("cancelled: the answer took longer than %v, the laptop's limit", lim.MaxDuration)
	}
	done := false
	finish := func() {
		done = true
		rec.Status, rec.Duration, rec.Refused = lw.status(), time.Since(start), lw.refused
		rec.Sent, rec.Received = sent.n, lw.n
		if lw.meter != nil {
			rec.Usage = lw.meter.Usage()
		}
		if rec.Err == "" && ctx.Err() != nil {
			rec.Err = cancelled()
		}
		h.p.Done(rec)
	}
	defer func() {
		// ReverseProxy aborts the stream (http.ErrAbortHandler) when the
		// answer breaks off: the server side reset it, stopped reading it
		// past MaxDuration, or the provider's body failed. It was a call
		// with the owner's credential all the same: it gets its record,
		// and a budget counts what went up and came back.
		if v := recover(); v != nil {
			if !done {
				if rec.Err == "" {
					rec.Err = "the provider's answer broke off"
					if ctx.Err() != nil {
						rec.Err = cancelled()
					}
				}
				finish()
			}
			panic(v)
		}
	}()
	rp.ServeHTTP(lw, r.WithContext(httptrace.WithClientTrace(ctx, trace)))
	finish()
}

// StatusGone is the status recorded for a request whose server side went
// away before the provider answered (nginx's "client closed request"):
// the provider may have had the whole request by then.
const StatusGone = 499

// writeRefusal writes one of the agent's own answers, within refusalWrite,
// and flushes it, so that the handler, and its place among MaxOpen, lasts
// until it is sent, not a goroutine of net/http's after it.
func writeRefusal(w http.ResponseWriter, shape providers.ErrorShape, status int, msg string) {
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Now().Add(refusalWrite))
	providers.WriteError(w, shape, status, msg)
	rc.Flush()
}

// meterWriter passes the answer through, feeding its body to the meter.
type meterWriter struct {
	http.ResponseWriter
	code    int
	n       int64
	meter   Meter
	refused string
}

// countingReader counts the request body as it goes up.
type countingReader struct {
	r io.ReadCloser
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }

func (m *meterWriter) WriteHeader(code int) {
	if m.code == 0 {
		m.code = code
	}
	m.ResponseWriter.WriteHeader(code)
}

func (m *meterWriter) Write(b []byte) (int, error) {
	if m.code == 0 {
		m.code = http.StatusOK
	}
	m.n += int64(len(b))
	if m.meter != nil {
		m.meter.Write(b)
	}
	return m.ResponseWriter.Write(b)
}

func (m *meterWriter) Flush() { http.NewResponseController(m.ResponseWriter).Flush() }

func (m *meterWriter) Unwrap() http.ResponseWriter { return m.ResponseWriter }

func (m *meterWriter) status() int {
	if m.code == 0 {
		return http.StatusOK
	}
	return m.code
}

// netReason says in a few words why a call failed, naming no address.
func netReason(err error) string {
	var dns *net.DNSError
	var op *net.OpError
	switch {
	case errors.As(err, &dns):
		return "its name did not resolve"
	case errors.Is(err, context.DeadlineExceeded), os.IsTimeout(err):
		return "timed out"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.As(err, &op) && op.Op == "dial":
		return "no connection"
	}
	return "the connection failed"
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// cut keeps a server-chosen string short for messages and the audit log.
func cut(s string) string {
	if len(s) > 128 {
		return s[:128] + "..."
	}
	return s
}

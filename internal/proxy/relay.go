package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"

	"github.com/llm-agent/llm-agent/internal/providers"
	"github.com/llm-agent/llm-agent/internal/relay"
	"github.com/llm-agent/llm-agent/protocol"
)

// newRelay builds relay mode's upstream: every request goes, unchanged
// but for the tool's key headers, through relay streams to the agent,
// which adds the credential and calls the provider (package relay).
func (p *Proxy) newRelay() *httputil.ReverseProxy {
	tr := relay.NewClientTransport(func(ctx context.Context) (net.Conn, error) {
		c, err := p.dial(ctx) // refuses a socket another user serves
		if err != nil {
			return nil, &unreachableError{err}
		}
		var who *protocol.Requester
		if p.cfg.Requester != nil {
			who = p.cfg.Requester()
		}
		c, err = relay.Upgrade(ctx, c, who, p.cfg.Timeout)
		if err == nil {
			p.linkAnswered()
		}
		return c, err
	})
	p.relayTr = tr
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			in := pr.In.URL
			pr.Out.URL = &url.URL{Scheme: "http", Host: "llm-agent", Path: in.Path, RawPath: in.RawPath, RawQuery: in.RawQuery}
			pr.Out.Host = ""
			for _, name := range providers.CredentialHeaders {
				pr.Out.Header.Del(name)
			}
		},
		Transport:     headerBound{tr},
		FlushInterval: -1,
		ErrorHandler:  p.relayError,
		ErrorLog:      log.New(io.Discard, "", 0),
	}
}

// errHeadersTooLarge refuses a request whose header fields are past what
// the agent takes (relay.MaxHeaderBytes).
var errHeadersTooLarge = fmt.Errorf("the request's header fields are over %d bytes, the laptop's limit", relay.MaxHeaderBytes)

// headerBound refuses, before it reaches the relay connection, a request
// that the agent would not take: one field too long for its HTTP/2
// decoder ends the shared connection, and every tool's request on it.
// Sizes are counted as HTTP/2 counts them, 32 bytes more a field.
type headerBound struct{ http.RoundTripper }

func (h headerBound) RoundTrip(r *http.Request) (*http.Response, error) {
	n := len(r.Method) + len(r.URL.Scheme) + len(r.URL.Host) + len(r.URL.RequestURI()) + 4*32
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 32
		}
	}
	if n > relay.MaxHeaderBytes {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, errHeadersTooLarge
	}
	return h.RoundTripper.RoundTrip(r)
}

// relayError answers a request the relay could not carry: the agent
// unreachable or refusing the stream (classify's answers), or the stream
// broken off, which is the link to the laptop ending (the agent answers
// the provider's own failures itself, as HTTP answers).
func (p *Proxy) relayError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return
	}
	name, _ := providers.SplitRoute(r.URL)
	if errors.Is(err, errHeadersTooLarge) {
		providers.WriteError(w, p.routes.Shape(name), http.StatusRequestHeaderFieldsTooLarge, "llm-agent proxy: "+err.Error())
		return
	}
	var ue *unreachableError
	var f *protocol.Failure
	var te *protocol.TransportError
	status, msg := http.StatusServiceUnavailable, "llm-agent: the owner is not connected: the relay stream to the laptop ended ("+oneLine(err.Error())+")"

	if errors.As(err, &ue) || errors.As(err, &f) || errors.As(err, &te) || errors.Is(err, context.DeadlineExceeded) {
		status, msg = classify(err, p.cfg.Socket, p.cfg.Timeout)
	}
	if p.cfg.Log != nil {
		p.cfg.Log.Printf("%s: %s", name, msg)
	}
	providers.WriteError(w, p.routes.Shape(name), status, msg)
}

package proxy

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

// FrontConfig configures a Front.
type FrontConfig struct {
	// Target is the tool's own API, http://127.0.0.1:PORT.
	Target string
	// Username is the user name of the tool's basic authentication
	// ("opencode" for opencode serve).
	Username string
	// Peer judges the process behind each connection (PeerCheck's
	// CheckConn). Nil allows every connection (only where no check
	// exists: not Linux).
	Peer func(c net.Conn) error
	// Refused gets one line per refused connection.
	Refused *log.Logger
}

// Front is the owner's door to a tool's HTTP API (proxy --serve): it
// listens on a Unix socket (which the owner's ssh -L reaches) or on
// loopback TCP (for local clients only: sshd's session process cannot be
// identified over TCP), lets in only the connections whose process passes
// the same peer check as the provider routes (the owner's login, or the
// owner's ssh -L through its sshd session process), and relays them to the
// tool's API with the tool's password added. The password is random,
// made at start, and given to the tool in its environment only: the owner
// never types it, and a Linux user of another uid, who cannot read the
// tool's environment, cannot use the tool's port either.
type Front struct {
	cfg      FrontConfig
	password string
	auth     string
	rp       *httputil.ReverseProxy
	srv      *http.Server
}

// NewFront makes a front with a fresh random password.
func NewFront(cfg FrontConfig) (*Front, error) {
	target, err := url.Parse(cfg.Target)
	if err != nil || target.Scheme != "http" || target.Host == "" {
		return nil, fmt.Errorf("the tool's API %q: want http://HOST:PORT", cfg.Target)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("making the tool's password: %w", err)
	}
	f := &Front{cfg: cfg, password: base64.RawURLEncoding.EncodeToString(key)}
	f.auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(cfg.Username+":"+f.password))
	f.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = target.Host
			// Whatever the client sent (opencode attach sends none, or
			// its own password) is replaced by the tool's.
			r.Out.Header.Del("Authorization")
			r.Out.Header.Set("Authorization", f.auth)
		},
		// Server-sent events (opencode's /event) pass as they come.
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, "llm-agent proxy: the tool's API does not answer", http.StatusBadGateway)
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	f.srv = peerServer(f)
	return f, nil
}

// Password is the tool's password, for its environment only.
func (f *Front) Password() string { return f.password }

func (f *Front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := f.checkPeer(r.Context()); err != nil {
		// Close the refused connection: a client's next request comes on
		// a new one, judged afresh (the owner's ssh -L may arrive before
		// the new login's guard has told the agent of its session).
		w.Header().Set("Connection", "close")
		http.Error(w, "llm-agent proxy: refused: this process is not one of the proxy owner's (see the proxy's log)", http.StatusForbidden)
		return
	}
	f.rp.ServeHTTP(w, r)
}

// checkPeer judges the process behind the request's connection.
func (f *Front) checkPeer(ctx context.Context) error {
	if f.cfg.Peer == nil {
		return nil
	}
	return connVerdict(ctx, f.cfg.Peer, func(err error) {
		if f.cfg.Refused != nil {
			f.cfg.Refused.Printf("refused a connection to the tool's API: %s", oneLine(err.Error()))
		}
	})
}

// Serve answers on l until Close.
func (f *Front) Serve(l net.Listener) error { return serveUntilClosed(f.srv, l) }

// Close stops serving, giving open requests at most grace.
func (f *Front) Close(grace time.Duration) { shutdown(f.srv, grace) }

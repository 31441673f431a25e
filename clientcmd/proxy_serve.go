package clientcmd

import (
	"errors"
	"fmt"
	"log"
	"net"
	"strings"
	"time"

	"github.com/llm-agent/llm-agent/proxy"
)

// proxyServe is proxy --serve FRONT=API: the owner's door to the HTTP API
// of the tool run as CMD (opencode serve). The tool's API gets a random
// password in the tool's environment; the front, on FRONT, lets in only
// the owner's processes (the provider routes' peer check) and adds the
// password to what it relays to API.
type proxyServe struct {
	front *proxy.Front
	l     net.Listener
}

// newProxyServe parses --serve FRONT=API and listens on FRONT; nil when
// the flag is unset.
func newProxyServe(spec string, argv []string, pc *proxy.PeerCheck, refused *log.Logger) (*proxyServe, error) {
	if spec == "" {
		return nil, nil
	}
	frontAddr, api, ok := strings.Cut(spec, "=")
	if !ok || frontAddr == "" || api == "" {
		return nil, fmt.Errorf("--serve %q: want FRONT=API, e.g. 127.0.0.1:4096=127.0.0.1:4097", spec)
	}
	if len(argv) == 0 {
		return nil, errors.New("--serve needs the tool as -- CMD: the proxy gives the tool its API password")
	}
	if err := checkLoopback(frontAddr); err != nil {
		return nil, fmt.Errorf("--serve: %v", err)
	}
	if err := checkLoopback(api); err != nil {
		return nil, fmt.Errorf("--serve: %v", err)
	}
	if frontAddr == api {
		return nil, fmt.Errorf("--serve %q: the front and the tool's API need two addresses", spec)
	}
	cfg := proxy.FrontConfig{Target: "http://" + api, Username: "opencode", Refused: refused}
	if pc != nil {
		cfg.Peer = pc.Check
	}
	f, err := proxy.NewFront(cfg)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", frontAddr)
	if err != nil {
		return nil, fmt.Errorf("--serve: %v", err)
	}
	return &proxyServe{front: f, l: l}, nil
}

// toolVars are the variables the tool gets: its API password, and the
// user name that goes with it (opencode's variables). They replace any the
// caller had set.
func (s *proxyServe) toolVars() []proxy.Var {
	if s == nil {
		return nil
	}
	return []proxy.Var{
		{Name: "OPENCODE_SERVER_USERNAME", Value: "opencode"},
		{Name: "OPENCODE_SERVER_PASSWORD", Value: s.front.Password()},
	}
}

// start serves the front; the returned function closes it.
func (s *proxyServe) start() func() {
	if s == nil {
		return func() {}
	}
	go s.front.Serve(s.l)
	return func() { s.front.Close(time.Second) }
}

// close gives the front's port back when the tool never started.
func (s *proxyServe) close() {
	if s != nil {
		s.l.Close()
	}
}

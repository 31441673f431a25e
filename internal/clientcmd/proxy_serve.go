package clientcmd

import (
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/llm-agent/llm-agent/internal/proxy"
)

// proxyServe is proxy --serve FRONT=API: the owner's door to the HTTP API
// of the tool run as CMD (opencode serve). The tool's API gets a random
// password in the tool's environment; the front, on FRONT (a Unix socket
// path, which ssh -L PORT:PATH reaches, or a loopback address for local
// clients), lets in only the owner's processes (the provider routes' peer
// check) and adds the password to what it relays to API.
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
	unixFront := strings.HasPrefix(frontAddr, "/")
	if !unixFront {
		if err := checkLoopback(frontAddr); err != nil {
			return nil, fmt.Errorf("--serve: %v", err)
		}
	}
	if err := checkLoopback(api); err != nil {
		return nil, fmt.Errorf("--serve: %v", err)
	}
	if frontAddr == api {
		return nil, fmt.Errorf("--serve %q: the front and the tool's API need two addresses", spec)
	}
	cfg := proxy.FrontConfig{Target: "http://" + api, Username: "opencode", Refused: refused}
	if pc != nil {
		cfg.Peer = pc.CheckConn
	}
	f, err := proxy.NewFront(cfg)
	if err != nil {
		return nil, err
	}
	var l net.Listener
	if unixFront {
		l, err = listenFront(frontAddr)
	} else {
		l, err = net.Listen("tcp", frontAddr)
	}
	if err != nil {
		return nil, fmt.Errorf("--serve: %v", err)
	}
	return &proxyServe{front: f, l: l}, nil
}

// listenFront listens on the Unix socket path, in a directory of the
// caller's that no other user may write (made 0700 if missing), replacing
// a socket there that nobody answers on (a proxy that died).
func listenFront(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Getuid() || fi.Mode().Perm()&0o022 != 0 {
		return nil, fmt.Errorf("%s: the directory must be yours and writable by you only", dir)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s: another process serves it", path)
		}
		os.Remove(path)
	}
	// 0600 from the start: no moment where another user may connect.
	old := syscall.Umask(0o177)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	return l, err
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
		s.l.Close() // removes a Unix socket too
	}
}

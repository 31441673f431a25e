package clientcmd

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/llm-agent/llm-agent/internal/proxy"
	"github.com/llm-agent/llm-agent/protocol"
)

// registerEarly registers proxy -- CMD with the guard behind socket
// (proxy@llm-agent) before the tool starts: from then on the guard
// refuses every process under the proxy and serves the proxy itself. It
// runs before the proxy makes itself non-dumpable, while the kernel still
// shows the guard our executable to compare with its own. noGuard is true
// when no guard answers (a plain forwarded socket): the caller says so
// once and goes on. A guard's refusal is an error (fail closed: the tool
// does not start).
func registerEarly(socket string) (noGuard bool, err error) {
	c, err := dial(socket, 5*time.Second)
	if err != nil {
		return false, fmt.Errorf("registering with the guard at %s: %v", socket, err)
	}
	defer c.Close()
	err = c.RegisterProxy()
	if errors.Is(err, protocol.ErrNoGuard) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("registering with the guard at %s: %v; not starting the tool", socket, err)
	}
	return false, nil
}

// proxyConfine makes the proxy a child subreaper (the tool's descendants
// cannot leave its tree, so the guard keeps refusing them) and says once
// that no guard serves the socket, if none does. start is called with the
// tool's pid; stop (idempotent) ends what the tool left behind.
func proxyConfine(p *proxy.Proxy, noGuard bool) (start func(int), stop func(time.Duration), err error) {
	start, inner, err := confineTool()
	if err != nil {
		return nil, nil, fmt.Errorf("making the proxy a child subreaper: %w", err)
	}
	if noGuard {
		p.NoteNoGuard()
	}
	var once sync.Once
	return start, func(grace time.Duration) { once.Do(func() { inner(grace) }) }, nil
}

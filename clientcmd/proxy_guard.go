package clientcmd

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/llm-agent/llm-agent/proxy"
)

// proxyConfine prepares proxy -- CMD for the guard's rule that under a
// proxy only the proxy may take a credential: it makes the proxy a child
// subreaper (the tool's descendants cannot leave its tree) and registers
// the proxy with the guard behind its socket before the tool starts. A
// guard's refusal stops the proxy (fail closed); no guard is said once on
// stderr. start is called with the tool's pid; stop (idempotent) ends what
// the tool left behind.
func proxyConfine(p *proxy.Proxy) (start func(int), stop func(time.Duration), err error) {
	start, stop, err = confineTool()
	if err != nil {
		return nil, nil, fmt.Errorf("making the proxy a child subreaper: %w", err)
	}
	var once sync.Once
	stopOnce := func(grace time.Duration) { once.Do(func() { stop(grace) }) }
	if err := p.Register(context.Background()); err != nil {
		stopOnce(0)
		return nil, nil, fmt.Errorf("%v; not starting the tool", err)
	}
	return start, stopOnce, nil
}

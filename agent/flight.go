package agent

import (
	"errors"
	"sync"
	"time"
)

// flights runs at most one job per provider at a time, for the gets that
// must bring a credential up to date first (an OAuth refresh, a run of
// the credential's command): concurrent gets of one provider share the
// job in flight and its outcome.
type flights struct {
	a      *Agent
	mu     sync.Mutex
	flying map[string]*flight // by provider
}

// flight is one job in flight; done is closed once cred or err is set.
type flight struct {
	gen  uint64 // the add whose credential the job brings up to date
	done chan struct{}
	cred *credential
	err  error
}

func newFlights(a *Agent) *flights { return &flights{a: a, flying: make(map[string]*flight)} }

// do returns the credential to hand out for cr. With cr known to be the
// provider's current credential and no job in flight for it, settle, called
// under the flights' lock, says whether cr can be answered as it is
// (answer): handed out (out), or refused (err). If not, job(cr) runs in a goroutine of
// its own and every caller meanwhile waits for its outcome. A job that
// fails with errSuperseded (the credential was removed or replaced while
// it ran) makes its callers look the credential up again, and so does any
// job for another add than the caller's: a get that came after a remove
// and re-add must never be answered with the removed credential's value.
func (g *flights) do(cr *credential,
	settle func(cr *credential, now time.Time) (answer bool, out *credential, err error),
	job func(cr *credential) (*credential, error)) (*credential, error) {
	for {
		now := g.a.cfg.Now()
		g.mu.Lock()
		// A job that just finished has replaced cr: go on from its result.
		if cur := g.a.store.lookup(cr.provider, now); cur != cr {
			g.mu.Unlock()
			if cur == nil {
				return nil, errNotFound
			}
			cr = cur
			continue
		}
		f := g.flying[cr.provider]
		if f == nil {
			if answer, out, err := settle(cr, now); answer {
				g.mu.Unlock()
				return out, err
			}
			f = &flight{gen: cr.gen, done: make(chan struct{})}
			g.flying[cr.provider] = f
			go g.fly(f, cr, job)
		}
		g.mu.Unlock()
		<-f.done
		if errors.Is(f.err, errSuperseded) || f.gen != cr.gen {
			if cr = g.a.store.lookup(cr.provider, g.a.cfg.Now()); cr == nil {
				return nil, errNotFound
			}
			continue
		}
		return f.cred, f.err
	}
}

// fly runs job for cr, ends the flight and completes f.
func (g *flights) fly(f *flight, cr *credential, job func(cr *credential) (*credential, error)) {
	cred, err := job(cr)
	g.mu.Lock()
	delete(g.flying, cr.provider)
	g.mu.Unlock()
	f.cred, f.err = cred, err
	close(f.done)
}

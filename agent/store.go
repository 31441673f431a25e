package agent

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/llm-agent/llm-agent/memsafe"
	"github.com/llm-agent/llm-agent/protocol"
)

// errNotFound is returned for a provider the store does not hold (or does
// not show to the asking connection).
var errNotFound = errors.New("no credential for that provider")

// errStoreFull is returned when an add would exceed the store's limits.
var errStoreFull = errors.New("the agent's store is full")

// credential is one stored credential. It is never modified after it is
// stored: a re-add replaces the whole value, so readers need no lock once
// they hold the pointer.
type credential struct {
	provider string
	kind     string
	fields   []storedField // in the order they were added
	added    time.Time
	expires  time.Time // zero: no lifetime
	cons     protocol.Constraints
	size     int // bytes of field values, counted against the store's cap
	// needsLogin: the provider refused the refresh token (refresh.go).
	needsLogin bool
	// gen tells the adds apart: the copies a command run makes keep it
	// (command.go), a new add of the provider gets a new one.
	gen uint64
	// A credential whose secret a command prints (cons.Command) holds the
	// command's field only while a value is kept (command.go):
	valueLife    time.Duration // how long a printed value is kept; 0: until removed
	valueExpires time.Time     // when the value held is forgotten; zero: never
	attention    string        // why the last run gave no value ("the command ...")
	stderrLogged bool          // that run's stderr is in the audit log
	retryAt      time.Time     // with attention: no new run before
}

// storedField is a field's value: plain metadata, or a sealed secret.
type storedField struct {
	name   string
	plain  string
	secret *memsafe.Secret
}

func (c *credential) plain(name string) string {
	for _, f := range c.fields {
		if f.name == name && f.secret == nil {
			return f.plain
		}
	}
	return ""
}

func (c *credential) has(name string) bool {
	for _, f := range c.fields {
		if f.name == name {
			return true
		}
	}
	return false
}

// store holds the credentials by provider.
type store struct {
	budget   *memsafe.Budget
	max      int // credentials
	maxBytes int // bytes of field values, all credentials together

	mu    sync.Mutex
	creds map[string]*credential
	bytes int
	gens  uint64 // adds so far
}

func newStore(budget *memsafe.Budget, max, maxBytes int) *store {
	return &store{budget: budget, max: max, maxBytes: maxBytes, creds: make(map[string]*credential)}
}

// add seals the request's secret fields and stores the credential,
// replacing one of the same provider. The request's values are wiped.
func (s *store) add(req *protocol.AddRequest, lifetime time.Duration, now time.Time) error {
	defer req.Wipe()
	if err := req.Validate(); err != nil {
		return err
	}
	c := &credential{provider: req.Provider, kind: req.Kind, added: now, cons: req.Constraints}
	// Host keys alias the request frame, which is wiped after the request.
	c.cons.Destinations = cloneChains(req.Destinations)
	for _, f := range req.Fields {
		c.size += len(f.Name) + len(f.Value)
	}
	switch {
	case req.Command != "":
		// The lifetime is the printed value's; the credential stays.
		c.valueLife = lifetime
	case lifetime > 0:
		c.expires = now.Add(lifetime)
	}
	// Refuse what could never be opened before sealing anything.
	for _, f := range req.Fields {
		if protocol.IsSecret(req.Kind, f.Name) {
			if err := s.budget.Check(len(f.Value)); err != nil {
				return err
			}
		}
	}
	for _, f := range req.Fields {
		if !protocol.IsSecret(req.Kind, f.Name) {
			c.fields = append(c.fields, storedField{name: f.Name, plain: string(f.Value)})
			continue
		}
		sec, err := s.budget.Seal(f.Value)
		if err != nil {
			return fmt.Errorf("sealing %s: %w", f.Name, err)
		}
		c.fields = append(c.fields, storedField{name: f.Name, secret: sec})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.creds[c.provider]
	if old == nil && len(s.creds) >= s.max {
		return fmt.Errorf("%w: it holds %d credentials, its limit", errStoreFull, s.max)
	}
	total := s.bytes + c.size
	if old != nil {
		total -= old.size
	}
	if total > s.maxBytes {
		return fmt.Errorf("%w: it would exceed its limit of %d MiB", errStoreFull, s.maxBytes>>20)
	}
	s.gens++
	c.gen = s.gens
	s.creds[c.provider] = c
	s.bytes = total
	return nil
}

func cloneChains(in []protocol.Chain) []protocol.Chain {
	if in == nil {
		return nil
	}
	out := make([]protocol.Chain, len(in))
	for i, ch := range in {
		out[i] = make(protocol.Chain, len(ch))
		for j, h := range ch {
			keys := make([][]byte, len(h.Keys))
			for k, key := range h.Keys {
				keys[k] = bytes.Clone(key)
			}
			out[i][j] = protocol.Hop{Host: h.Host, Keys: keys}
		}
	}
	return out
}

// lookup returns a live credential, dropping it if its lifetime is over.
func (s *store) lookup(provider string, now time.Time) *credential {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.creds[provider]
	if c != nil && !c.expires.IsZero() && !now.Before(c.expires) {
		s.deleteLocked(provider)
		return nil
	}
	return c
}

func (s *store) remove(provider string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.creds[provider]
	s.deleteLocked(provider)
	return ok
}

func (s *store) removeAll() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.creds)
	clear(s.creds)
	s.bytes = 0
	return n
}

func (s *store) deleteLocked(provider string) {
	if c, ok := s.creds[provider]; ok {
		s.bytes -= c.size
		delete(s.creds, provider)
	}
}

// expire drops every credential whose lifetime is over, and forgets every
// value a command printed whose lifetime is over, and returns the
// providers of each.
func (s *store) expire(now time.Time) (gone, forgotten []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p, c := range s.creds {
		switch {
		case !c.expires.IsZero() && !now.Before(c.expires):
			s.deleteLocked(p)
			gone = append(gone, p)
		case c.cons.Command != "" && c.has(protocol.CommandField(c.kind)) && !c.holdsValue(now):
			nc := c.withoutValue()
			s.bytes += nc.size - c.size
			s.creds[p] = nc
			forgotten = append(forgotten, p)
		}
	}
	sort.Strings(gone)
	sort.Strings(forgotten)
	return gone, forgotten
}

// snapshot returns the live credentials sorted by provider.
func (s *store) snapshot(now time.Time) []*credential {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*credential, 0, len(s.creds))
	for _, c := range s.creds {
		if c.expires.IsZero() || now.Before(c.expires) {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].provider < out[j].provider })
	return out
}

// entry describes c, as of now, for list@llm-agent.
func (c *credential) entry(now time.Time) protocol.Entry {
	e := protocol.Entry{
		Provider:   c.provider,
		Kind:       c.kind,
		Added:      c.added.Unix(),
		Confirm:    c.cons.Confirm,
		LocalOnly:  c.cons.LocalOnly,
		HasRefresh: c.has(protocol.FieldRefresh),
		NeedsLogin: c.needsLogin,
	}
	if !c.expires.IsZero() {
		e.Expires = c.expires.Unix()
	}
	for _, ch := range c.cons.Destinations {
		e.Destinations = append(e.Destinations, ch.String())
	}
	if ms, err := strconv.ParseInt(c.plain(protocol.FieldExpires), 10, 64); err == nil {
		e.AccessExpires = ms
	}
	if c.cons.Command != "" {
		e.Command, e.Attention = c.cons.Command, c.attention
		if e.HasValue = c.holdsValue(now); e.HasValue && !c.valueExpires.IsZero() {
			e.ValueExpires = c.valueExpires.Unix()
		}
	}
	return e
}

// reveal opens the credential's secret fields, except the refresh token,
// which never leaves the agent, and passes the plaintext credential and a
// locked scratch buffer big enough for its get reply to fn. Everything fn
// sees is wiped when it returns.
func (s *store) reveal(c *credential, fn func(cred *protocol.Credential, scratch []byte) error) error {
	out := &protocol.Credential{Provider: c.provider, Kind: c.kind}
	var fields []storedField
	var secrets []*memsafe.Secret
	size := protocol.GetReplySize(&protocol.Credential{Provider: c.provider, Kind: c.kind})
	for _, f := range c.fields {
		if f.name == protocol.FieldRefresh {
			continue
		}
		fields = append(fields, f)
		n := len(f.plain)
		if f.secret != nil {
			secrets = append(secrets, f.secret)
			n = f.secret.Len()
		}
		size += 8 + len(f.name) + n
	}
	size += 4 // frame header
	r, err := s.budget.Reserve(secrets, size)
	if err != nil {
		return err
	}
	defer r.Release()
	var open func(i int) error
	open = func(i int) error {
		if i == len(fields) {
			return r.Scratch(size, func(buf []byte) error { return fn(out, buf) })
		}
		f := fields[i]
		if f.secret == nil {
			out.Fields = append(out.Fields, protocol.Field{Name: f.name, Value: []byte(f.plain)})
			return open(i + 1)
		}
		return r.Open(f.secret, func(plain []byte) error {
			out.Fields = append(out.Fields, protocol.Field{Name: f.name, Value: plain})
			return open(i + 1)
		})
	}
	return open(0)
}

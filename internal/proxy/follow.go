package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/llm-agent/llm-agent/internal/guard"
	"github.com/llm-agent/llm-agent/internal/peercred"
	"github.com/llm-agent/llm-agent/protocol"
)

// Follower dials the owner's agent for a long-running proxy: the socket the
// proxy was started with while it answers, else the owner's stable guard
// paths, so that the proxy resumes on its own when the owner reconnects
// and a guard starts (the forwarded socket of the old login is gone by
// then). Every dial refuses a socket another user serves, and the agent
// behind a socket must prove the owner key the proxy started with; the
// verdict is kept per socket file (device, inode and change time: one
// guard instance; ext4 gives a freed inode to the next file at once, so a
// socket planted at the path after the guard exited may have its inode,
// never its change time), so a request costs one stat more than a plain
// dial.
type Follower struct {
	socket string   // the socket the proxy started with
	stable []string // the owner's stable guard paths, in order
	owner  string   // guard.OwnerID of the owner key; "" follows nothing

	// OnNew, when set, runs on a connection to a socket instance that has
	// just proved the owner key for the first time (a new guard, after the
	// owner reconnected): the proxy registers with it there. An error
	// makes that instance unusable, and is said as why.
	OnNew func(*protocol.Client) error

	mu     sync.Mutex
	proven map[fileID]bool // true: proved the owner key; false: did not
}

type fileID struct {
	dev, ino    uint64
	ctime, nsec int64
}

// maxProven bounds the verdict cache; it starts afresh when full.
const maxProven = 64

// NewFollower follows owner (a guard.OwnerID) from socket to the stable
// paths under each of bases ($XDG_RUNTIME_DIR/llm-agent, ~/.llm-agent).
// With owner "" it dials socket only, as a plain proxy does.
func NewFollower(socket, owner string, bases []string) *Follower {
	f := &Follower{socket: socket, owner: owner, proven: map[fileID]bool{}}
	if owner != "" {
		for _, b := range bases {
			p := guard.StablePath(b, owner)
			if p != socket {
				f.stable = append(f.stable, p)
			}
		}
	}
	return f
}

// FollowError says what each path the proxy tried held; one line.
type FollowError struct{ found []string }

func (e *FollowError) Error() string {
	return "cannot reach the owner's agent: " + strings.Join(e.found, "; ")
}

// Dial returns a connection to the owner's agent, within ctx. A socket
// that already proved the owner key is used first; the others are proved
// at once, side by side, and the first to prove the key wins, so that a
// socket that accepts and never answers (a co-tenant's, at a path of the
// owner's) holds up neither the owner's guard nor the proxy: only when
// nothing proves the key and something did not answer is the time up.
func (f *Follower) Dial(ctx context.Context) (net.Conn, error) {
	paths := append([]string{f.socket}, f.stable...)
	if f.owner == "" {
		c, why, err := f.try(ctx, f.socket, true)
		if c != nil || err != nil {
			return c, err
		}
		return nil, &FollowError{[]string{f.socket + ": " + why}}
	}
	for _, path := range paths {
		if !f.provenNow(path) {
			continue
		}
		c, _, err := f.try(ctx, path, false)
		if c != nil || err != nil {
			return c, err
		}
	}
	type result struct {
		i   int
		c   net.Conn
		why string
		err error
	}
	rctx, cancel := context.WithCancel(ctx)
	results := make(chan result, len(paths))
	for i, path := range paths {
		go func() {
			c, why, err := f.try(rctx, path, false)
			results <- result{i, c, why, err}
		}()
	}
	found := make([]string, len(paths))
	var timedOut error
	for n := 0; n < len(paths); n++ {
		r := <-results
		if r.c != nil {
			cancel()
			// Close what the others still bring.
			go func(left int) {
				for ; left > 0; left-- {
					if o := <-results; o.c != nil {
						o.c.Close()
					}
				}
			}(len(paths) - n - 1)
			return r.c, nil
		}
		if r.err != nil {
			timedOut = r.err
			found[r.i] = paths[r.i] + ": did not answer"
			continue
		}
		found[r.i] = paths[r.i] + ": " + r.why
	}
	cancel()
	if timedOut != nil {
		return nil, timedOut
	}
	return nil, &FollowError{found}
}

// provenNow reports whether the socket at path proved the owner key.
func (f *Follower) provenNow(path string) bool {
	id, err := statID(path)
	if err != nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.proven[id]
}

// try dials path; it returns the connection, or why not, or an error when
// ctx ended.
func (f *Follower) try(ctx context.Context, path string, trust bool) (net.Conn, string, error) {
	before, statErr := statID(path)
	if statErr != nil {
		return nil, protocol.DialReason(statErr), nil
	}
	conn, err := peercred.DialOwned(ctx, path)
	if err != nil {
		if ctx.Err() != nil {
			return nil, "", errTimeout
		}
		return nil, protocol.DialReason(err), nil
	}
	if trust {
		return conn, "", nil
	}
	after, err := statID(path)
	cacheable := err == nil && after == before
	if cacheable {
		f.mu.Lock()
		ok, known := f.proven[before]
		f.mu.Unlock()
		if known {
			if ok {
				return conn, "", nil
			}
			conn.Close()
			return nil, "not the owner's agent", nil
		}
	}
	// When ctx ends (the time is up, or another path won), the proof
	// stops at once rather than at its own time-out.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	why, final, err := f.prove(ctx, conn)
	if err != nil {
		stop()
		conn.Close()
		return nil, "", err
	}
	if why == "" && f.OnNew != nil {
		c := protocol.NewClient(conn)
		c.Timeout = 5 * time.Second
		if err := f.OnNew(c); err != nil {
			why, final = oneLine(err.Error()), false
		}
	}
	if !stop() {
		conn.Close()
		return nil, "", errTimeout
	}
	if cacheable && final {
		f.mu.Lock()
		if len(f.proven) >= maxProven {
			f.proven = map[fileID]bool{}
		}
		f.proven[before] = why == ""
		f.mu.Unlock()
	}
	if why != "" {
		conn.Close()
		return nil, why, nil
	}
	return conn, "", nil
}

// Watch looks for a new guard instance at the proxy's paths every period
// until ctx ends, and dials it when one appears, so that OnNew runs at
// once rather than at the next request: after the owner reconnects, the
// new guard learns of the proxy within a period.
func (f *Follower) Watch(ctx context.Context, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, path := range append([]string{f.socket}, f.stable...) {
			id, err := statID(path)
			if err != nil {
				continue
			}
			f.mu.Lock()
			_, known := f.proven[id]
			f.mu.Unlock()
			if known {
				continue
			}
			dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if conn, _, _ := f.try(dctx, path, false); conn != nil {
				conn.Close()
			}
			cancel()
		}
	}
}

// prove asks the agent on conn to prove the owner key; "" means it did.
// The connection stays in step for the request that follows. final says
// whether the verdict holds for the socket's life: a proof, or the key of
// another owner; a refusal (a guard that does not know this process yet)
// may change.
func (f *Follower) prove(ctx context.Context, conn net.Conn) (why string, final bool, err error) {
	c := protocol.NewClient(conn)
	c.Timeout = 5 * time.Second
	if d, ok := ctx.Deadline(); ok {
		c.Timeout = max(time.Until(d), time.Millisecond)
	}
	key, err := guard.ProveOwner(c)
	if err != nil {
		var te *protocol.TransportError
		if errors.As(err, &te) && errors.Is(err, os.ErrDeadlineExceeded) {
			return "", false, errTimeout
		}
		if errors.As(err, &te) {
			return "the agent hung up (" + oneLine(te.Error()) + ")", false, nil
		}
		var fl *protocol.Failure
		if errors.As(err, &fl) && fl.Code != protocol.CodeFailed {
			return oneLine(fl.Message), false, nil
		}
		return "not an llm-agent that proves an owner (" + oneLine(err.Error()) + ")", false, nil
	}
	if id := guard.OwnerID(key); id != f.owner {
		return fmt.Sprintf("an agent of another owner (%s, not %s)", id, f.owner), true, nil
	}
	return "", true, nil
}

func statID(path string) (fileID, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return fileID{}, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFSOCK {
		return fileID{}, fmt.Errorf("%s is not a socket", path)
	}
	sec, nsec := ctimeOf(&st)
	return fileID{uint64(st.Dev), uint64(st.Ino), sec, nsec}, nil
}

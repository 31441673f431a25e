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

	"github.com/llm-agent/llm-agent/guard"
	"github.com/llm-agent/llm-agent/peercred"
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

// Dial returns a connection to the owner's agent, within ctx.
func (f *Follower) Dial(ctx context.Context) (net.Conn, error) {
	var found []string
	for i, path := range append([]string{f.socket}, f.stable...) {
		c, why, err := f.try(ctx, path, i == 0 && f.owner == "")
		if c != nil {
			return c, nil
		}
		if err != nil {
			return nil, err // the time is up
		}
		found = append(found, path+": "+why)
	}
	return nil, &FollowError{found}
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
	why, final, err := f.prove(ctx, conn)
	if err != nil {
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

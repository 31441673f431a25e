package peercred

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/user"
	"strconv"
)

// OwnerError says that a socket we dialled is served by another user: not
// by us, not by root. Someone may have planted it at a path our tools use
// (a predictable name in /tmp, a stale forward), to collect our requests or
// to hand us data of their choosing.
type OwnerError struct {
	Path string
	UID  uint32 // the uid of the process that listens on Path
	Self uint32 // ours
}

func (e *OwnerError) Error() string {
	return fmt.Sprintf("refusing the agent socket %s: it is served by uid %d%s, not by you (uid %d) or root; someone else may have planted it",
		e.Path, e.UID, userName(e.UID), e.Self)
}

// userName returns " (name)" for uid, or "" when it has none.
func userName(uid uint32) string {
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil || u.Username == "" {
		return ""
	}
	return " (" + quote(u.Username) + ")"
}

// CheckOwner returns an *OwnerError unless the process serving c (the one
// that listened on path) runs as our uid or as root. It reads only what the
// kernel recorded at connect time; nothing is sent on c.
func CheckOwner(c *net.UnixConn, path string) error {
	p, err := FromConn(c)
	if err != nil {
		return fmt.Errorf("checking who serves the agent socket %s: %w", path, err)
	}
	uid := p.UID
	p.Close()
	self := uint32(os.Getuid())
	if uid == self || uid == 0 {
		return nil
	}
	return &OwnerError{Path: path, UID: uid, Self: self}
}

// DialOwned connects to the Unix socket at path and checks its owner with
// [CheckOwner] before anything is written; on failure the connection is
// closed. Every client of an agent socket dials through here.
func DialOwned(ctx context.Context, path string) (*net.UnixConn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		nc.Close()
		return nil, fmt.Errorf("%s: not a Unix socket connection", path)
	}
	if err := CheckOwner(uc, path); err != nil {
		uc.Close()
		return nil, err
	}
	return uc, nil
}

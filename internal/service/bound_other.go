//go:build !linux

package service

import "errors"

// boundFile would be the file the Unix socket fd is bound to; only Linux
// says (sock_diag), and only systemd passes sockets this way.
func boundFile(fd int) (dev, ino uint64, err error) {
	return 0, 0, errors.New("this system cannot tell which file a passed socket is bound to; let llm-agent bind its socket itself (-a PATH)")
}

//go:build !linux

package guard

import "errors"

var errLinuxOnly = errors.New("the guard runs on Linux servers only")

func getsid() (int, error) { return 0, errLinuxOnly }

// Getsid returns the calling process's session id.
func Getsid() (int, error) { return 0, errLinuxOnly }
func harden() error        { return errLinuxOnly }
func pidfdAlive(int) bool  { return false }
func closeFD(int)          {}

func waitExit(int, <-chan struct{}) bool { return false }

type heldSocket struct{}

func holdSocket(string) (*heldSocket, error) { return nil, errLinuxOnly }
func (*heldSocket) samePath(string) error    { return errLinuxOnly }
func (*heldSocket) path() string             { return "" }
func (*heldSocket) close()                   {}

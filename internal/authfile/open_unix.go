//go:build unix

package authfile

import "syscall"

// O_NONBLOCK: opening a FIFO must not wait for a writer (fstat rejects it
// right after). O_NOCTTY: a terminal must never become our controlling tty.
const openFlags = syscall.O_NONBLOCK | syscall.O_NOCTTY

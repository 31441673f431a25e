//go:build !linux

package sshtest

import "syscall"

// dieWithParent: only Linux has a parent-death signal; the end-to-end
// tests run there, and elsewhere this package only has to compile.
func dieWithParent() *syscall.SysProcAttr { return nil }

//go:build tools

// Package tools pins dependencies that are not yet imported elsewhere.
package tools

import (
	_ "github.com/awnumar/memguard"
	_ "github.com/rogpeppe/go-internal/testscript"
	_ "github.com/spf13/pflag"
	_ "golang.org/x/crypto/ssh/agent"
	_ "golang.org/x/sys/unix"
	_ "golang.org/x/term"
)

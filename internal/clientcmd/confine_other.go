//go:build !linux

package clientcmd

import (
	"os/exec"
	"time"
)

// confineTool does nothing where there is no child subreaper: the guard
// that would use it runs on Linux only.
func confineTool() (func(int), func(time.Duration), error) {
	return func(int) {}, func(time.Duration) {}, nil
}

// startNoNewPrivs starts cmd: the guard, which the flag serves, runs on
// Linux only.
func startNoNewPrivs(cmd *exec.Cmd) error { return cmd.Start() }

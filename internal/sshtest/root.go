package sshtest

import (
	"os"
	"testing"
)

// RequireRoot skips t when the test process is not root, because the test
// creates Unix users, runs sshd or acts as other uids. When the environment
// variable CI is "true" it fails t instead, so that CI can never skip them
// silently.
func RequireRoot(t testing.TB) {
	t.Helper()
	requireRoot(t, os.Geteuid(), os.Getenv("CI"))
}

// requireRoot is RequireRoot with its inputs spelled out, for testing.
// It returns after Skipf/Fatalf so that fakes which do not stop the
// goroutine behave too.
func requireRoot(t testing.TB, euid int, ci string) {
	t.Helper()
	if euid == 0 {
		return
	}
	const msg = "test needs root to create users, run sshd or act as other uids (euid is %d)"
	if ci == "true" {
		t.Fatalf(msg+"; CI=true, so this is a failure, not a skip", euid)
		return
	}
	t.Skipf(msg+"; skipping", euid)
}

//go:build unix

package authfile_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/llm-agent/llm-agent/internal/authfile"
)

// writeFile puts testdata/name at dir/auth.json with mode perm.
func writeFile(t *testing.T, dir, name string, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, "auth.json")
	if err := os.WriteFile(p, testdata(t, name), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil { // umask
		t.Fatal(err)
	}
	return p
}

func openaiUpdate(prev, next string) authfile.Update {
	return authfile.Update{Access: []byte(newAccess), Refresh: []byte(next), Expires: 1800000000000, Previous: []byte(prev), Now: stamp}
}

// noTemps fails if a temporary file of WriteBack was left in dir.
func noTemps(t *testing.T, dir string) {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(dir, ".*.llm-agent-*"))
	if len(names) > 0 {
		t.Errorf("temporary files left behind: %v", names)
	}
}

func TestWriteBackKeepsModeAndOwner(t *testing.T) {
	for _, perm := range []os.FileMode{0o600, 0o640} {
		dir := t.TempDir()
		p := writeFile(t, dir, "opencode.json", perm)
		owner := -1
		if os.Geteuid() == 0 {
			owner = 65534 // nobody: only root can keep a foreign owner
			if err := os.Chown(p, owner, owner); err != nil {
				t.Fatal(err)
			}
		}
		before, _ := os.Stat(p)
		if err := authfile.WriteBack(p, authfile.FormatOpencode, "openai", openaiUpdate("rt_FAKE-opencode-openai-refresh", newRefresh)); err != nil {
			t.Fatal(err)
		}
		after, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if after.Mode() != before.Mode() {
			t.Errorf("mode %v became %v", before.Mode(), after.Mode())
		}
		if os.SameFile(before, after) {
			t.Errorf("the file was rewritten in place, not replaced by a rename")
		}
		if owner >= 0 {
			st := after.Sys().(*syscall.Stat_t)
			if int(st.Uid) != owner || int(st.Gid) != owner {
				t.Errorf("owner %d:%d became %d:%d", owner, owner, st.Uid, st.Gid)
			}
		} else {
			t.Log("not root: the foreign-owner case is not tested")
		}
		data, _ := os.ReadFile(p)
		if e := entryOf(t, data, "openai"); string(e.Fields["refresh"]) != newRefresh {
			t.Errorf("the new refresh token is not in the file")
		}
		if _, err := os.Stat(p + authfile.LockSuffix); err != nil {
			t.Errorf("no lock file beside the file: %v", err)
		}
		noTemps(t, dir)
	}
}

// TestWriteBackFollowsSymlink: dotfile managers link the file; the target
// is rewritten and the link stays.
func TestWriteBackFollowsSymlink(t *testing.T) {
	dir := t.TempDir()
	real := writeFile(t, dir, "claude.json", 0o600)
	link := filepath.Join(t.TempDir(), ".credentials.json")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	up := authfile.Update{Access: []byte(newAccess), Refresh: []byte(newRefresh), Expires: 1, Previous: []byte("sk-ant-ort01-FAKE-claude-refresh-token-0123456789")}
	if err := authfile.WriteBack(link, authfile.FormatClaude, "anthropic", up); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v", err)
	}
	data, _ := os.ReadFile(real)
	if e := entryOf(t, data, "anthropic"); string(e.Fields["refresh"]) != newRefresh {
		t.Errorf("the link's target does not hold the new refresh token")
	}
	noTemps(t, dir)
}

// TestWriteBackWaitsForLock: another holder of the lock file delays the
// write until it lets go.
func TestWriteBackWaitsForLock(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "codex.json", 0o600)
	lf, err := os.OpenFile(p+authfile.LockSuffix, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	fd := int(lf.Fd())
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	const hold = 300 * time.Millisecond
	released := make(chan struct{})
	go func() {
		time.Sleep(hold)
		unix.Flock(fd, unix.LOCK_UN)
		close(released)
	}()
	defer func() {
		<-released
		lf.Close()
	}()
	start := time.Now()
	if err := authfile.WriteBack(p, authfile.FormatCodex, "openai", openaiUpdate("rt_FAKE-codex-refresh-token-0123456789", newRefresh)); err != nil {
		t.Fatal(err)
	}
	waited := time.Since(start)
	t.Logf("write-back waited %v for a lock held %v", waited.Round(time.Millisecond), hold)
	if waited < hold-50*time.Millisecond {
		t.Errorf("write-back did not wait for the lock (%v)", waited)
	}
}

// TestWriteBackNeverHalfWritten: a reader polling the file as fast as it
// can while it is rewritten over and over always reads one whole JSON
// document, the old one or the new one.
func TestWriteBackNeverHalfWritten(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "opencode.json", 0o600)
	var stop atomic.Bool
	var reads, bad atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				data, err := os.ReadFile(p)
				reads.Add(1)
				if err != nil || !json.Valid(data) {
					bad.Add(1)
				}
			}
		}()
	}
	const rounds = 200
	prev := "rt_FAKE-opencode-openai-refresh"
	start := time.Now()
	for i := range rounds {
		next := fmt.Sprintf("rt-rotated-%d-%s", i, strings.Repeat("x", i%50))
		if err := authfile.WriteBack(p, authfile.FormatOpencode, "openai", openaiUpdate(prev, next)); err != nil {
			stop.Store(true)
			wg.Wait()
			t.Fatalf("round %d: %v", i, err)
		}
		prev = next
	}
	took := time.Since(start)
	stop.Store(true)
	wg.Wait()
	t.Logf("%d write-backs in %v; %d reads meanwhile (%.0f per ms), %d not a whole JSON document",
		rounds, took.Round(time.Millisecond), reads.Load(), float64(reads.Load())/float64(took.Milliseconds()+1), bad.Load())
	if bad.Load() != 0 {
		t.Errorf("%d reads saw a half-written or missing file", bad.Load())
	}
	data, _ := os.ReadFile(p)
	if e := entryOf(t, data, "openai"); string(e.Fields["refresh"]) != prev {
		t.Errorf("the last rotated token is not in the file")
	}
	noTemps(t, dir)
}

// TestWriteBackLeavesFileAlone: when the entry changed (a new login) or
// the file is gone, nothing is written and no temporary file remains.
func TestWriteBackLeavesFileAlone(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "opencode.json", 0o600)
	before, _ := os.ReadFile(p)
	err := authfile.WriteBack(p, authfile.FormatOpencode, "openai", openaiUpdate("not-the-current-token", newRefresh))
	if !errors.Is(err, authfile.ErrEntryChanged) {
		t.Errorf("err = %v, want ErrEntryChanged", err)
	}
	if after, _ := os.ReadFile(p); string(after) != string(before) {
		t.Errorf("the file changed")
	}
	noTemps(t, dir)
	err = authfile.WriteBack(filepath.Join(dir, "gone.json"), authfile.FormatOpencode, "openai", openaiUpdate("x", "y"))
	if err == nil || !strings.Contains(err.Error(), "gone.json") {
		t.Errorf("missing file: %v", err)
	}
}

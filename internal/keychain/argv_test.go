package keychain_test

import (
	"os/exec"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/internal/authfile"
	"github.com/llm-agent/llm-agent/internal/keychain"
	"github.com/llm-agent/llm-agent/internal/keychain/keychaintest"
)

// standInDelay keeps each run of the stand-in alive long enough for the
// /proc watcher to see it, in the proof and in its control alike.
const standInDelay = "40ms"

// Secrets of the proof: distinct, and found nowhere else.
const (
	oldRefresh = "sk-ant-ort01-OLD-REFRESH-7d1e0c55a9"
	newRefresh = "sk-ant-ort01-NEW-REFRESH-4b2f96e1c3"
	newAccess  = "sk-ant-oat01-NEW-ACCESS-e8a3d07f12"
)

func secretForms() [][]byte {
	var forms [][]byte
	for _, s := range []string{oldRefresh, newRefresh, newAccess} {
		forms = append(forms, keychaintest.Forms([]byte(s))...)
	}
	return forms
}

// TestWriteBackArgv is the proof that a write-back puts no token in any
// process's argv: while WriteBack reads, rewrites and reads back the item,
// a watcher polls the command line of every process (and the environment
// of every security process) for each token, as is, as hex and as base64;
// afterwards the stand-in's argv log must hold none of them either.
// TestWatcherCatchesNaiveWrite shows that the same watcher does see a
// token written the naive way.
func TestWriteBackArgv(t *testing.T) {
	k := keychaintest.Setup(t)
	t.Setenv(keychaintest.EnvDelay, standInDelay)
	k.Put(item.Service, item.Account, login(oldRefresh, "sk-ant-oat01-OLD-ACCESS", true))
	forms := secretForms()

	w := keychaintest.Watch(forms)
	err := keychain.WriteBack(ctx(t), item, authfile.Update{
		Access: []byte(newAccess), Refresh: []byte(newRefresh), Expires: 1800000000000, Previous: []byte(oldRefresh)})
	rep := w.Stop()
	if err != nil {
		t.Fatalf("WriteBack: %v", err)
	}
	// Three runs (read, write, read back) of at least 40 ms each: a
	// watcher that saw none of them proves nothing.
	rep.ExpectClean(t, k, forms, 3)
	if got, _ := k.Get(item.Service, item.Account); len(keychaintest.Holds(got, keychaintest.Forms([]byte(newRefresh)))) == 0 {
		t.Errorf("the item does not hold the new refresh token")
	}
	argv := k.Argv()
	t.Logf("argv of the write-back's runs: %q", argv)
	if len(argv) != 3 {
		t.Errorf("want 3 runs of security (read, write, read back), got %d", len(argv))
	}
}

// TestWatcherCatchesNaiveWrite is the control: the stand-in run the way
// most tools run the real one, with the secret after -w, is caught by the
// same watcher and by the argv log.
func TestWatcherCatchesNaiveWrite(t *testing.T) {
	k := keychaintest.Setup(t)
	t.Setenv(keychaintest.EnvDelay, standInDelay)
	forms := secretForms()
	w := keychaintest.Watch(forms)
	out, err := exec.Command("security", "add-generic-password", "-U", "-a", item.Account, "-s", item.Service,
		"-w", string(login(newRefresh, newAccess, false))).CombinedOutput()
	rep := w.Stop()
	if err != nil {
		t.Fatalf("security: %v\n%s", err, out)
	}
	t.Logf("watcher: %d sweeps in %v, %d hits, %d sweeps saw a security process", rep.Sweeps, rep.Took.Round(time.Millisecond), len(rep.Hits), rep.SecuritySweeps)
	if len(rep.Hits) == 0 {
		t.Errorf("the watcher did not see the token in the naive command line")
	}
	if len(keychaintest.Holds(k.ArgvLog(), forms)) == 0 {
		t.Errorf("the argv log does not show the token of the naive command line")
	}
}

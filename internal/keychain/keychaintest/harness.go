package keychaintest

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Dispatch runs the stand-in and exits when the running binary was
// invoked as security (through the link Setup makes). Call it from an
// init function of a test package, so that it runs before the tests.
func Dispatch() {
	if filepath.Base(os.Args[0]) == "security" {
		os.Exit(Main())
	}
}

// Keychain is the stand-in's keychain of one test.
type Keychain struct {
	Dir string
	t   testing.TB
}

// Setup links the running test binary as security into a new directory
// put first on PATH, and points EnvDir at a new keychain directory, for
// the rest of the test. The test package must call Dispatch.
func Setup(t testing.TB) *Keychain {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.Symlink(exe, filepath.Join(bin, "security")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	// A -race binary sleeps a second when it exits with status 0, to let
	// other threads report; the stand-in has none.
	t.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	k := &Keychain{Dir: t.TempDir(), t: t}
	t.Setenv(EnvDir, k.Dir)
	return k
}

// Put stores an item directly, without running the tool (no argv).
func (k *Keychain) Put(service, account string, password []byte) {
	k.t.Helper()
	err := withItems(k.Dir, func(items *[]item) bool {
		upsert(items, service, account, append([]byte(nil), password...))
		return true
	})
	if err != nil {
		k.t.Fatal(err)
	}
}

// Get returns an item's password, read directly.
func (k *Keychain) Get(service, account string) ([]byte, bool) {
	k.t.Helper()
	var out []byte
	var found bool
	err := withItems(k.Dir, func(items *[]item) bool {
		if it := lookup(*items, &service, &account); it != nil {
			out, found = it.Password, true
		}
		return false
	})
	if err != nil {
		k.t.Fatal(err)
	}
	return out, found
}

// Argv returns the argv of every invocation so far.
func (k *Keychain) Argv() [][]string {
	k.t.Helper()
	f, err := os.Open(filepath.Join(k.Dir, ArgvLog))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		k.t.Fatal(err)
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var argv []string
		if err := json.Unmarshal(sc.Bytes(), &argv); err != nil {
			k.t.Fatalf("argv log: %v", err)
		}
		out = append(out, argv)
	}
	return out
}

// ArgvLog returns the raw argv log.
func (k *Keychain) ArgvLog() []byte {
	data, err := os.ReadFile(filepath.Join(k.Dir, ArgvLog))
	if err != nil && !os.IsNotExist(err) {
		k.t.Fatal(err)
	}
	return data
}

// Forms returns the ways a secret could show up in a command line: as
// is, as hex (both cases) and as base64 (standard and URL alphabets,
// padded or not).
func Forms(secret []byte) [][]byte {
	h := hex.EncodeToString(secret)
	return [][]byte{
		secret,
		[]byte(h),
		bytes.ToUpper([]byte(h)),
		[]byte(base64.StdEncoding.EncodeToString(secret)),
		[]byte(base64.RawStdEncoding.EncodeToString(secret)),
		[]byte(base64.URLEncoding.EncodeToString(secret)),
		[]byte(base64.RawURLEncoding.EncodeToString(secret)),
	}
}

// Holds reports which of needles data contains, by index.
func Holds(data []byte, needles [][]byte) []int {
	var hits []int
	for i, n := range needles {
		if len(n) > 0 && bytes.Contains(data, n) {
			hits = append(hits, i)
		}
	}
	return hits
}

// Watcher polls the command line of every process (/proc/*/cmdline), and
// the environment of each security process, for needles.
type Watcher struct {
	needles [][]byte
	stop    chan struct{}
	done    chan struct{}

	mu     sync.Mutex
	report WatchReport
}

// WatchReport is what a Watcher saw.
type WatchReport struct {
	Sweeps         int           // passes over /proc
	Processes      int           // command lines read, all sweeps together
	SecuritySweeps int           // sweeps that saw a process named security
	Hits           []string      // where a needle was seen
	Took           time.Duration // how long it watched
	Err            error         // /proc could not be read
}

// ExpectClean fails t unless the watcher read /proc, saw a security
// process in at least minSeen sweeps (else it proves nothing), and saw no
// needle; and unless k's argv log holds no needle either. It logs what
// the watcher measured.
func (r WatchReport) ExpectClean(t testing.TB, k *Keychain, needles [][]byte, minSeen int) {
	t.Helper()
	if r.Err != nil {
		t.Fatalf("watcher: %v", r.Err)
	}
	t.Logf("watcher: %d sweeps of /proc in %v (%.2f ms a sweep), %d command lines read, %d sweeps saw a security process",
		r.Sweeps, r.Took.Round(time.Millisecond), float64(r.Took.Microseconds())/1000/float64(max(r.Sweeps, 1)), r.Processes, r.SecuritySweeps)
	for _, h := range r.Hits {
		t.Errorf("watcher: %s", h)
	}
	if r.SecuritySweeps < minSeen {
		t.Errorf("the watcher saw a security process in %d sweeps, fewer than %d: it proves nothing", r.SecuritySweeps, minSeen)
	}
	if hits := Holds(k.ArgvLog(), needles); len(hits) > 0 {
		t.Errorf("the stand-in's argv log holds forms %v of a secret", hits)
	}
}

// Watch starts a Watcher; it polls about every millisecond until Stop.
func Watch(needles [][]byte) *Watcher {
	w := &Watcher{needles: needles, stop: make(chan struct{}), done: make(chan struct{})}
	go w.loop()
	return w
}

// Stop ends the watch and returns its report.
func (w *Watcher) Stop() WatchReport {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.report
}

func (w *Watcher) loop() {
	defer close(w.done)
	start := time.Now()
	for {
		select {
		case <-w.stop:
			w.mu.Lock()
			w.report.Took = time.Since(start)
			w.mu.Unlock()
			return
		default:
		}
		entries, err := os.ReadDir("/proc")
		if err != nil {
			w.mu.Lock()
			w.report.Err = err
			w.mu.Unlock()
			return
		}
		var hits []string
		n, sawSecurity := 0, false
		for _, e := range entries {
			pid := e.Name()
			if pid[0] < '0' || pid[0] > '9' {
				continue
			}
			cmdline, err := os.ReadFile("/proc/" + pid + "/cmdline")
			if err != nil || len(cmdline) == 0 {
				continue
			}
			n++
			for _, i := range Holds(cmdline, w.needles) {
				hits = append(hits, fmt.Sprintf("pid %s: command line holds form %d of the secret", pid, i))
			}
			argv0, _, _ := bytes.Cut(cmdline, []byte{0})
			if filepath.Base(string(argv0)) != "security" {
				continue
			}
			sawSecurity = true
			if env, err := os.ReadFile("/proc/" + pid + "/environ"); err == nil {
				for _, i := range Holds(env, w.needles) {
					hits = append(hits, fmt.Sprintf("pid %s (security): environment holds form %d of the secret", pid, i))
				}
			}
		}
		w.mu.Lock()
		w.report.Sweeps++
		w.report.Processes += n
		if sawSecurity {
			w.report.SecuritySweeps++
		}
		w.report.Hits = append(w.report.Hits, hits...)
		w.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
}

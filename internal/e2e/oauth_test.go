package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/internal/sshtest"
)

// The TestOAuth tests run the built llm-agent with --oauth-endpoint
// pointing openai's token endpoint at a fake one in the test process, and
// import opencode auth.json files the tests write. The agent's refresh
// margin is its default, 30 s: a get refreshes an access token that
// expires within 30 s.

const oauthMargin = 30 * time.Second

// oauthEndpoint is the fake token endpoint (openai's refresh grant, a
// form). Every token it issues is a fresh random marker; it remembers
// when each access token expires and which refresh tokens it issued.
type oauthEndpoint struct {
	*httptest.Server
	t      *testing.T
	prefix string

	mu        sync.Mutex
	mode      string        // "ok", "invalid_grant"
	expiresIn int           // seconds
	rotate    bool          // issue a new refresh token each time
	delay     time.Duration // before answering
	times     []time.Time   // of the requests
	got       []string      // refresh tokens received
	expiry    map[string]time.Time
	refreshes []string // refresh tokens issued
}

func newOAuthEndpoint(t *testing.T, expiresIn int) *oauthEndpoint {
	t.Helper()
	e := &oauthEndpoint{t: t, prefix: randHex(t, 6), mode: "ok", expiresIn: expiresIn, expiry: map[string]time.Time{}}
	e.Server = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.Close)
	return e
}

func (e *oauthEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	q, _ := url.ParseQuery(string(body))
	e.mu.Lock()
	n := len(e.times) + 1
	e.times = append(e.times, time.Now())
	e.got = append(e.got, q.Get("refresh_token"))
	mode, delay := e.mode, e.delay
	access := fmt.Sprintf("at-e2e-%s-%d-%s", e.prefix, n, randHex(e.t, 8))
	e.expiry[access] = time.Now().Add(time.Duration(e.expiresIn) * time.Second)
	answer := map[string]any{"access_token": access, "expires_in": e.expiresIn, "token_type": "Bearer"}
	if e.rotate {
		rt := fmt.Sprintf("rt-e2e-%s-%d-%s", e.prefix, n, randHex(e.t, 8))
		e.refreshes = append(e.refreshes, rt)
		answer["refresh_token"] = rt
	}
	e.mu.Unlock()
	time.Sleep(delay)
	if mode == "invalid_grant" {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"invalid_grant","error_description":"Refresh token has been revoked"}`)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(answer)
}

func (e *oauthEndpoint) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.times)
}

// issued returns the refresh tokens the endpoint issued so far.
func (e *oauthEndpoint) issued() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.refreshes...)
}

func (e *oauthEndpoint) expiryOf(access string) (time.Time, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	exp, ok := e.expiry[access]
	return exp, ok
}

// oauthAgent starts llm-agent refreshing openai tokens at e.
func oauthAgent(t *testing.T, e *oauthEndpoint) *Agent {
	t.Helper()
	return StartAgent(t, AgentOptions{Audit: true, Args: []string{"--oauth-endpoint", "openai=" + e.URL + "/oauth/token"}})
}

// oauthFile is an opencode auth.json as opencode writes it (two-space
// indent): an openai OAuth login with the given tokens and expiry between
// two other entries.
func oauthFile(refresh, access string, expires time.Time) []byte {
	return []byte(fmt.Sprintf(`{
  "anthropic": {
    "type": "api",
    "key": "sk-ant-api03-FAKE-e2e-oauth-0000"
  },
  "openai": {
    "type": "oauth",
    "refresh": %q,
    "access": %q,
    "expires": %d,
    "accountId": "00000000-fake-acct-0000-000000000000"
  },
  "openrouter": {
    "type": "api",
    "key": "sk-or-v1-FAKE-e2e-oauth-0000"
  }
}`, refresh, access, expires.UnixMilli()))
}

// writeOAuthFile writes data to a fresh auth.json, mode 0600.
func writeOAuthFile(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "auth.json")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestOAuthRefreshAcrossExpiry: an imported login whose access token
// expires in 2 s, used for 5 s: every get succeeds with an unexpired
// token, and the endpoint sees exactly the refreshes needed.
func TestOAuthRefreshAcrossExpiry(t *testing.T) {
	t.Parallel()
	// Each issued token is good for 32 s, i.e. it comes within the 30 s
	// margin 2 s after it was issued, as the imported one (2 s left) is
	// at once.
	e := newOAuthEndpoint(t, int((oauthMargin + 2*time.Second).Seconds()))
	a := oauthAgent(t, e)
	refresh, access := fwdToken(t, "rt-e2e-import"), fwdToken(t, "at-e2e-import")
	path := writeOAuthFile(t, oauthFile(refresh, access, time.Now().Add(2*time.Second)))
	if r := a.Client(t, "", "import", "--provider", "openai", path); r.Code != 0 {
		t.Fatalf("import: %+v", r)
	}
	start := time.Now()
	gets, fails := 0, 0
	var lastGet time.Time
	for time.Since(start) < 5*time.Second {
		at := time.Now()
		r := a.Client(t, "", "get", "openai")
		gets++
		lastGet = at
		if r.Code != 0 {
			fails++
			t.Errorf("get at +%v: exit %d, %q", at.Sub(start).Round(time.Millisecond), r.Code, strings.TrimSpace(r.Stderr))
			continue
		}
		exp, ok := e.expiryOf(r.Stdout)
		switch {
		case !ok:
			t.Errorf("get at +%v did not hand out a refreshed token (the imported one is within the margin)", at.Sub(start).Round(time.Millisecond))
		case exp.Sub(at) <= oauthMargin:
			// No refresh was missed: every token handed out was more than
			// the margin away from its expiry.
			t.Errorf("get at +%v handed out a token expiring in %v, inside the margin", at.Sub(start).Round(time.Millisecond), exp.Sub(at).Round(time.Millisecond))
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.mu.Lock()
	times := append([]time.Time(nil), e.times...)
	got := append([]string(nil), e.got...)
	e.mu.Unlock()
	var at []string
	for i, tm := range times {
		at = append(at, "+"+tm.Sub(start).Round(time.Millisecond).String())
		// No refresh was early: each came when the previous token, issued
		// at the previous request, had come within the margin (2 s later).
		if i > 0 && tm.Sub(times[i-1]) < 2*time.Second {
			t.Errorf("refresh %d came %v after the previous one, before that token was due", i+1, tm.Sub(times[i-1]))
		}
	}
	// With neither an early refresh nor a token handed out inside the
	// margin, the refreshes are exactly those needed: one at the first get
	// (the imported token has 2 s left, inside the 30 s margin), then one
	// each time the last token comes within the margin, 2 s after it was
	// issued (tokens live 32 s) plus the time to the next get: about +0,
	// +2 s and +4 s in a 5 s run, 3 in all; the next would fall after it.
	t.Logf("%d gets over %v, %d failed; the endpoint saw %d refreshes at %v; expected 3: one at the first get, then one every 2 s plus the time to the next get",
		gets, lastGet.Sub(start).Round(time.Millisecond), fails, len(times), at)
	if len(times) == 0 || got[0] != refresh {
		t.Fatalf("the first refresh did not send the imported refresh token")
	}
	if len(times) < 2 || len(times) > 3 {
		t.Errorf("%d refreshes; want 3 (2 only if the gets ran slowly)", len(times))
	}
	fwdNoSecretInLogs(t, a, refresh)
}

// TestOAuthSingleFlight: 100 gets started together at the moment the
// token comes within the margin cause one refresh.
func TestOAuthSingleFlight(t *testing.T) {
	t.Parallel()
	e := newOAuthEndpoint(t, 3600)
	e.delay = 300 * time.Millisecond
	a := oauthAgent(t, e)
	refresh, access := fwdToken(t, "rt-e2e-flight"), fwdToken(t, "at-e2e-flight")
	due := time.Now().Add(time.Second)
	path := writeOAuthFile(t, oauthFile(refresh, access, due.Add(oauthMargin)))
	if r := a.Client(t, "", "import", "--provider", "openai", path); r.Code != 0 {
		t.Fatalf("import: %+v", r)
	}
	if r := a.Client(t, "", "get", "openai"); r.Code != 0 || r.Stdout != access {
		t.Fatalf("get before the margin: exit %d, the imported token: %v", r.Code, r.Stdout == access)
	}
	time.Sleep(time.Until(due))
	const n = 100
	type out struct {
		code   int
		stdout string
	}
	outs := make([]out, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(bins.Client, "get", "openai")
			cmd.Env = a.Env()
			var so bytes.Buffer
			cmd.Stdout = &so
			cmd.Run()
			outs[i] = out{cmd.ProcessState.ExitCode(), so.String()}
		}()
	}
	wg.Wait()
	t.Logf("%d concurrent gets at the moment of expiry: %d refresh(es) at the endpoint, all done in %v", n, e.count(), time.Since(start).Round(time.Millisecond))
	tokens := map[string]int{}
	for i, o := range outs {
		if o.code != 0 {
			t.Errorf("get %d: exit %d", i, o.code)
			continue
		}
		tokens[o.stdout]++
	}
	if e.count() != 1 {
		t.Errorf("%d refreshes; want 1", e.count())
	}
	if len(tokens) != 1 {
		t.Errorf("the gets handed out %d different tokens; want the one refreshed token", len(tokens))
	}
	for tok := range tokens {
		if _, ok := e.expiryOf(tok); !ok {
			t.Errorf("the gets handed out a token the endpoint did not issue")
		}
	}
}

// memberSpan returns the byte span of the value of top-level member key
// of the JSON object in data.
func memberSpan(t *testing.T, data []byte, key string) (int, int) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not a JSON object")
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		if k == key {
			end := int(dec.InputOffset())
			return end - len(v), end
		}
	}
	t.Fatalf("no member %q", key)
	return 0, 0
}

// TestOAuthWriteBack: with import --write-back, each rotated refresh token
// lands in the imported auth.json, which keeps its mode and every byte
// outside the openai entry, and which a reader polling it meanwhile never
// sees half-written.
func TestOAuthWriteBack(t *testing.T) {
	t.Parallel()
	e := newOAuthEndpoint(t, int((oauthMargin + time.Second).Seconds())) // due 1 s after issue
	e.rotate = true
	a := oauthAgent(t, e)
	refresh, access := fwdToken(t, "rt-e2e-wb"), fwdToken(t, "at-e2e-wb")
	orig := oauthFile(refresh, access, time.Now())
	path := writeOAuthFile(t, orig)
	if r := a.Client(t, "", "import", "--write-back", path); r.Code != 0 || !strings.Contains(r.Stderr, "written back") {
		t.Fatalf("import --write-back: %+v", r)
	}

	var stop atomic.Bool
	var reads, bad atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			data, err := os.ReadFile(path)
			reads.Add(1)
			if err != nil || !json.Valid(data) {
				bad.Add(1)
			}
		}
	}()
	start := time.Now()
	for time.Since(start) < 3500*time.Millisecond {
		if r := a.Client(t, "", "get", "openai"); r.Code != 0 {
			t.Errorf("get: exit %d, %q", r.Code, r.Stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)
	issued := e.issued()
	t.Logf("%d refreshes, each rotating the refresh token and writing the file back; a reader polled it %d times (%.0f per ms): %d reads were not one whole JSON document",
		len(issued), reads.Load(), float64(reads.Load())/float64(elapsed.Milliseconds()), bad.Load())
	if bad.Load() != 0 {
		t.Errorf("%d reads saw a half-written or missing file", bad.Load())
	}
	if len(issued) < 2 {
		t.Fatalf("%d refreshes; want several", len(issued))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var file map[string]map[string]any
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatalf("the file is not JSON: %v", err)
	}
	if file["openai"]["refresh"] != issued[len(issued)-1] {
		t.Errorf("the file does not hold the last rotated refresh token (it holds the imported one: %v)", file["openai"]["refresh"] == refresh)
	}
	// The agent computes the expiry from its own clock: within a second
	// or two of the endpoint's.
	expires, _ := file["openai"]["expires"].(float64)
	if exp, ok := e.expiryOf(fmt.Sprint(file["openai"]["access"])); !ok || absDiff(int64(expires), exp.UnixMilli()) > 2000 {
		t.Errorf("the file's access token and expiry are not those of a refresh")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	s0, e0 := memberSpan(t, orig, "openai")
	s1, e1 := memberSpan(t, data, "openai")
	if s0 != s1 || !bytes.Equal(orig[:s0], data[:s1]) || !bytes.Equal(orig[e0:], data[e1:]) {
		t.Errorf("bytes outside the openai entry changed")
	}
	if strings.Contains(string(data), refresh) {
		t.Errorf("the imported (used up) refresh token is still in the file")
	}
	fwdNoSecretInLogs(t, a, append(issued, refresh)...)
	audit, _ := os.ReadFile(a.Audit)
	if n := strings.Count(string(audit), `"op":"write-back","provider":"openai","decision":"allow"`); n != len(issued) {
		t.Errorf("%d write-back events for %d rotations", n, len(issued))
	}
}

func absDiff(a, b int64) int64 {
	if a > b {
		return a - b
	}
	return b - a
}

// TestOAuthInvalidGrant: a revoked login: get fails with one clear line
// and exit 1, and list shows the credential needs a new login.
func TestOAuthInvalidGrant(t *testing.T) {
	t.Parallel()
	e := newOAuthEndpoint(t, 3600)
	e.mode = "invalid_grant"
	a := oauthAgent(t, e)
	refresh, access := fwdToken(t, "rt-e2e-revoked"), fwdToken(t, "at-e2e-revoked")
	path := writeOAuthFile(t, oauthFile(refresh, access, time.Now()))
	if r := a.Client(t, "", "import", "--write-back", path); r.Code != 0 {
		t.Fatalf("import: %+v", r)
	}
	r := a.Client(t, "", "get", "openai")
	msg := strings.TrimSuffix(r.Stderr, "\n")
	t.Logf("get: exit %d, stderr: %s", r.Code, msg)
	if r.Code != 1 || r.Stdout != "" || strings.Contains(msg, "\n") {
		t.Errorf("get: exit %d, %d bytes on stdout, stderr %q; want exit 1 and one line", r.Code, len(r.Stdout), r.Stderr)
	}
	for _, want := range []string{"llm-agent-client: get: ", "openai", "needs a new login", "codex login", "on the laptop", "import --write-back " + path} {
		if !strings.Contains(msg, want) {
			t.Errorf("the message does not say %q", want)
		}
	}
	l := a.Client(t, "", "list")
	if l.Code != 0 || !strings.Contains(l.Stdout, "NEEDS A NEW LOGIN") {
		t.Errorf("list: %+v", l)
	}
	l = a.Client(t, "", "list", "--json")
	var entries []struct {
		Provider   string `json:"provider"`
		NeedsLogin bool   `json:"needsLogin"`
	}
	if err := json.Unmarshal([]byte(l.Stdout), &entries); err != nil || len(entries) != 3 {
		t.Fatalf("list --json: %v, %s", err, l.Stdout)
	}
	for _, en := range entries {
		if en.NeedsLogin != (en.Provider == "openai") {
			t.Errorf("list --json: %s needsLogin %v", en.Provider, en.NeedsLogin)
		}
	}
	if e.count() != 1 {
		t.Errorf("%d requests to the endpoint; a refused token must not be tried again", e.count())
	}
	fwdNoSecretInLogs(t, a, refresh, access)
}

// oauthTap is a byte-recording relay: the laptop's ssh forwards it as its
// agent, and it relays every connection to the real agent socket,
// recording everything in both directions. It is a capture, not an agent.
type oauthTap struct {
	sock string
	mu   sync.Mutex
	buf  bytes.Buffer
	l    net.Listener
	wg   sync.WaitGroup
}

func newOAuthTap(t *testing.T, agentSock string) *oauthTap {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o700)
	tap := &oauthTap{sock: filepath.Join(dir, "tap.sock")}
	l, err := net.Listen("unix", tap.sock)
	if err != nil {
		t.Fatal(err)
	}
	tap.l = l
	t.Cleanup(tap.close)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("unix", agentSock)
			if err != nil {
				c.Close()
				continue
			}
			tap.wg.Add(2)
			go tap.pipe(up, c)
			go tap.pipe(c, up)
		}
	}()
	return tap
}

// pipe copies src to dst, recording what passes.
func (tap *oauthTap) pipe(dst, src net.Conn) {
	defer tap.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			tap.mu.Lock()
			tap.buf.Write(buf[:n])
			tap.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
}

func (tap *oauthTap) close() {
	tap.l.Close()
	tap.wg.Wait()
}

func (tap *oauthTap) captured() []byte {
	tap.mu.Lock()
	defer tap.mu.Unlock()
	return bytes.Clone(tap.buf.Bytes())
}

// TestOAuthForwardedCapture: over a real forwarded ssh session, a get on
// the server (which makes the laptop's agent refresh and rotate) hands
// out a JSON entry without the refresh token, and nothing that crossed
// the forwarded socket ever held a refresh token's bytes.
func TestOAuthForwardedCapture(t *testing.T) {
	t.Parallel()
	sshtest.RequireRoot(t)
	e := newOAuthEndpoint(t, 3600)
	e.rotate = true
	a := oauthAgent(t, e)
	user := sshtest.NewUser(t, "oauth")
	live := liveSSHAgent(t)
	srv := sshtest.Start(t, sshtest.Options{Name: "oauthhost"})
	refresh, access := fwdToken(t, "rt-e2e-fwd"), fwdToken(t, "at-e2e-fwd")
	path := writeOAuthFile(t, oauthFile(refresh, access, time.Now())) // expired: the get refreshes
	if r := a.Client(t, "", "import", "--provider", "openai", path); r.Code != 0 {
		t.Fatalf("import: %+v", r)
	}
	tap := newOAuthTap(t, a.Sock)
	session := func(script string) Result {
		cmd := srv.SSH(user, []string{"-o", "ForwardAgent=" + tap.sock}, remoteScript(script))
		cmd.Env = append(cmd.Env, "SSH_AUTH_SOCK="+live)
		return fwdRun(t, cmd, "")
	}
	r := session(`"$C" status && "$C" get --format json openai`)
	if r.Code != 0 {
		t.Fatalf("get on the server: exit %d, stderr %q\n%s", r.Code, r.Stderr, srv.LogTail(20))
	}
	if !strings.Contains(r.Stdout, "use-only: yes") {
		t.Errorf("the agent did not see the tapped connection as forwarded:\n%s", r.Stdout)
	}
	jsonOut := r.Stdout[strings.Index(r.Stdout, "{"):]
	var entry map[string]any
	if err := json.Unmarshal([]byte(jsonOut), &entry); err != nil {
		t.Fatalf("get --format json: not JSON: %v", err)
	}
	issued := e.issued()
	if len(issued) != 1 {
		t.Fatalf("%d refreshes; the server's get should have caused one", len(issued))
	}
	if _, ok := entry["refresh"]; ok {
		t.Errorf("get --format json has a refresh member")
	}
	if _, ok := e.expiryOf(fmt.Sprint(entry["access"])); !ok || entry["type"] != "oauth" || entry["expires"] == nil {
		t.Errorf("get --format json: not the refreshed access token with its expiry: keys %v", keys(entry))
	}
	for _, rt := range append(issued, refresh) {
		if strings.Contains(r.Stdout, rt) {
			t.Errorf("a refresh token was printed on the server: found")
		}
	}
	capture := tap.captured()
	if !bytes.Contains(capture, []byte(fmt.Sprint(entry["access"]))) {
		t.Fatalf("the capture (%d bytes) does not hold the access token the server printed: the tap did not see the traffic", len(capture))
	}
	for i, rt := range append(issued, refresh) {
		if bytes.Contains(capture, []byte(rt)) {
			t.Errorf("refresh token #%d crossed the forwarded socket: found in the capture", i+1)
		}
	}
	t.Logf("capture of the forwarded socket: %d bytes, holds the access token, refresh tokens (imported and rotated) not found", len(capture))
	fwdNoSecretInLogs(t, a, append(issued, refresh)...)
}

func keys(m map[string]any) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	return k
}

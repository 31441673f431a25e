package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/internal/sshtest"
	"github.com/llm-agent/llm-agent/protocol"
)

// leakMarker is a secret made up for one run. Its value is never printed:
// reports name it by its label.
type leakMarker struct {
	label string
	value string // prefix + 32 random hex digits
}

func newLeakMarker(label, prefix string) leakMarker {
	b := make([]byte, 16)
	rand.Read(b)
	return leakMarker{label: label, value: prefix + hex.EncodeToString(b)}
}

// leakNeedle is a byte string to look for. Secret needles are the random
// part of a marker and two 12-digit pieces of it (a fragment left behind
// counts too); the others are known strings whose presence shows that a
// scan looked at real data.
type leakNeedle struct {
	label  string
	b      []byte
	secret bool
}

func leakNeedles(ms ...leakMarker) []leakNeedle {
	var ns []leakNeedle
	for _, m := range ms {
		h := m.value[len(m.value)-32:]
		ns = append(ns,
			leakNeedle{m.label, []byte(h), true},
			leakNeedle{m.label + " (its first 12 random digits)", []byte(h[:12]), true},
			leakNeedle{m.label + " (its last 12 random digits)", []byte(h[20:]), true})
	}
	return ns
}

// leakHit is where a needle was found, with its surroundings made safe
// to print.
type leakHit struct {
	label  string
	offset int64
	before string
	after  string
}

func (h leakHit) String() string {
	return fmt.Sprintf("%s at offset %#x (%d): context %q[MARKER]%q", h.label, h.offset, h.offset, h.before, h.after)
}

// leakSafe renders bytes next to a hit: non-printables become '.', and runs
// of 6 or more hex digits (which might be a piece of a marker) become '#'.
func leakSafe(b []byte) string {
	out := []byte(string(b))
	isHex := func(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }
	for i := 0; i < len(out); {
		j := i
		for j < len(out) && isHex(out[j]) {
			j++
		}
		if j-i >= 6 {
			for k := i; k < j; k++ {
				out[k] = '#'
			}
		}
		if j == i {
			if out[i] < 0x20 || out[i] > 0x7e {
				out[i] = '.'
			}
			j++
		}
		i = j
	}
	return string(out)
}

// leakScan reads r to the end looking for every needle, in chunks that
// overlap so that no match is split. base is the offset (or address) of
// r's first byte. It returns up to 8 hits per needle, and the count of
// bytes read.
func leakScan(r io.Reader, base int64, ns []leakNeedle) ([]leakHit, int64, error) {
	const chunk, ctx = 8 << 20, 48
	keep := ctx
	for _, n := range ns {
		keep = max(keep, len(n.b)+2*ctx)
	}
	buf := make([]byte, chunk+keep)
	have := 0 // bytes in buf
	var total int64
	seen := map[string]map[int64]bool{}
	var hits []leakHit
	for {
		n, err := io.ReadFull(r, buf[have:])
		have += n
		total += int64(n)
		eof := err == io.EOF || err == io.ErrUnexpectedEOF
		if err != nil && !eof {
			return hits, total, err
		}
		data := buf[:have]
		for _, nd := range ns {
			for from := 0; ; {
				i := bytes.Index(data[from:], nd.b)
				if i < 0 {
					break
				}
				i += from
				from = i + 1
				off := base + int64(i)
				if seen[nd.label] == nil {
					seen[nd.label] = map[int64]bool{}
				}
				if seen[nd.label][off] || len(seen[nd.label]) >= 8 {
					continue
				}
				seen[nd.label][off] = true
				lo, hi := max(0, i-ctx), min(len(data), i+len(nd.b)+ctx)
				hits = append(hits, leakHit{nd.label, off, leakSafe(data[lo:i]), leakSafe(data[i+len(nd.b) : hi])})
			}
		}
		if eof {
			return hits, total, nil
		}
		copy(buf, data[len(data)-keep:])
		base += int64(len(data) - keep)
		have = keep
	}
}

// leakReport fails the test for every secret hit, and returns the labels
// of the known strings found.
func leakReport(t testing.TB, where string, hits []leakHit, ns []leakNeedle) map[string]bool {
	t.Helper()
	secret := map[string]bool{}
	for _, n := range ns {
		secret[n.label] = n.secret
	}
	found := map[string]bool{}
	for _, h := range hits {
		found[h.label] = true
		if secret[h.label] {
			t.Errorf("LEAK in %s: %s", where, h)
		}
	}
	return found
}

// leakCheckBytes looks for the markers in data and fails the test if one is
// there.
func leakCheckBytes(t testing.TB, where string, data []byte, ms ...leakMarker) {
	t.Helper()
	ns := leakNeedles(ms...)
	hits, _, _ := leakScan(bytes.NewReader(data), 0, ns)
	leakReport(t, where, hits, ns)
}

// leakCheckProc scans /proc/PID/cmdline and /proc/PID/environ. Both must
// be readable and not empty, so that a process that already went away
// cannot pass.
func leakCheckProc(t testing.TB, pid int, who string, ms ...leakMarker) {
	t.Helper()
	for _, f := range []string{"cmdline", "environ"} {
		path := fmt.Sprintf("/proc/%d/%s", pid, f)
		b, err := os.ReadFile(path)
		if err != nil {
			if errors.Is(err, os.ErrPermission) && os.Geteuid() != 0 {
				t.Logf("%s %s: %v (not root: not checked)", who, path, err)
				continue
			}
			t.Errorf("%s: reading %s: %v", who, path, err)
			continue
		}
		if len(b) == 0 {
			t.Errorf("%s: %s is empty: the process is gone, the check proves nothing", who, path)
		}
		leakCheckBytes(t, who+" "+path, b, ms...)
	}
}

// leakAddHeld runs llm-agent-client with the secret on a stdin pipe that
// stays open while the client's /proc entries are scanned, then closes it.
func leakAddHeld(t *testing.T, a *Agent, secret string, ms []leakMarker, args ...string) Result {
	t.Helper()
	cmd := exec.Command(bins.Client, args...)
	cmd.Env = a.Env()
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if _, err := io.WriteString(in, secret); err != nil {
		t.Fatalf("writing the secret to the client: %v", err)
	}
	// Let the client read what is there; it waits for EOF.
	time.Sleep(200 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("client %v exited (%v) before its stdin was closed: the /proc scan would prove nothing", args, err)
	default:
	}
	pid := cmd.Process.Pid
	if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); !bytes.Contains(b, []byte("add")) {
		t.Fatalf("/proc/%d/cmdline is not the client's: %q", pid, b)
	}
	leakCheckProc(t, pid, fmt.Sprintf("running client %v (pid %d)", args, pid), ms...)
	in.Close()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("client %v did not exit within 30 s of EOF on stdin", args)
	}
	return Result{Code: cmd.ProcessState.ExitCode(), Stdout: out.String(), Stderr: errb.String()}
}

// leakCore dumps the agent with gcore (as root; the agent is not dumpable,
// but CAP_SYS_PTRACE lets gdb attach) and returns the core's path, or ""
// if gcore is missing or fails.
func leakCore(t *testing.T, pid int) string {
	t.Helper()
	gcore, err := exec.LookPath("gcore")
	if err != nil {
		t.Logf("gcore not found (%v): relying on /proc/%d/mem alone", err, pid)
		return ""
	}
	base := filepath.Join(t.TempDir(), "agent-core")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, gcore, "-o", base, strconv.Itoa(pid)).CombinedOutput()
	path := base + "." + strconv.Itoa(pid)
	if err != nil {
		t.Logf("gcore -o %s %d failed after %v: %v\n%s\nrelying on /proc/%d/mem alone", base, pid, time.Since(start), err, out, pid)
		return ""
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Logf("gcore reported success but wrote no %s: %v\n%s", path, err, out)
		return ""
	}
	t.Logf("gcore dumped the non-dumpable agent (pid %d) as root: %d MiB in %v", pid, fi.Size()>>20, time.Since(start).Round(time.Millisecond))
	return path
}

// leakScanMem reads every readable mapping of pid through /proc/PID/mem
// (root only, as the agent is not dumpable) and scans it.
func leakScanMem(t *testing.T, pid int, ns []leakNeedle) ([]leakHit, int64) {
	t.Helper()
	maps, err := readableMappings(pid)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		t.Fatalf("opening /proc/%d/mem as root: %v", pid, err)
	}
	defer mem.Close()
	var hits []leakHit
	var total int64
	var regions, unreadable int
	for _, m := range maps {
		regions++
		h, n, err := leakScan(io.NewSectionReader(mem, int64(m.start), int64(m.end-m.start)), int64(m.start), ns)
		hits = append(hits, h...)
		total += n
		if err != nil {
			unreadable++
		}
	}
	t.Logf("/proc/%d/mem: read %d MiB from %d readable mappings (%d cut short)", pid, total>>20, regions, unreadable)
	return hits, total
}

// leakFailingRequests sends add requests that the agent must refuse, with
// the markers in secret fields, and checks that the refusals do not echo
// them. It also puts plain a non-secret marker in the fields that are not
// secret (expires, accountId): the agent may keep those in clear, so the
// memory scan only reports where they are.
func leakFailingRequests(t *testing.T, a *Agent, plain leakMarker, secrets ...leakMarker) {
	t.Helper()
	api, refresh, access := secrets[0], secrets[1], secrets[2]
	all := append([]leakMarker{plain}, secrets...)
	c, err := protocol.Dial(a.Sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f := func(name, value string) protocol.Field { return protocol.Field{Name: name, Value: []byte(value)} }
	cred := func(provider, kind string, fields ...protocol.Field) *protocol.AddRequest {
		return &protocol.AddRequest{Credential: protocol.Credential{Provider: provider, Kind: kind, Fields: fields}}
	}
	for _, tc := range []struct {
		name string
		req  *protocol.AddRequest
	}{
		{"unknown kind", cred("leak-bad-1", "bogus", f("key", api.value))},
		{"field of another kind", cred("leak-bad-2", "api", f("key", api.value), f("refresh", refresh.value))},
		{"unknown field", cred("leak-bad-3", "api", f("key", api.value), f("password", api.value))},
		{"field twice", cred("leak-bad-4", "api", f("key", api.value), f("key", api.value))},
		{"bad provider name", cred("leak bad 5", "api", f("key", api.value))},
		{"oauth without refresh", cred("leak-bad-6", "oauth", f("access", access.value))},
		{"wellknown without key", cred("leak-bad-7", "wellknown", f("token", access.value))},
		{"value over MaxValueLen", cred("leak-bad-8", "api", f("key", api.value+strings.Repeat("x", protocol.MaxValueLen)))},
		{"non-secret marker in a number field", cred("leak-bad-9", "oauth", f("refresh", refresh.value), f("expires", plain.value))},
		{"non-secret marker with a control byte in a text field", cred("leak-bad-10", "oauth", f("refresh", refresh.value), f("accountId", plain.value+"\x01"))},
	} {
		err := c.Add(tc.req)
		var fl *protocol.Failure
		if !errors.As(err, &fl) {
			t.Errorf("add with %s: got %v, want a failure reply", tc.name, err)
			continue
		}
		leakCheckBytes(t, "the failure message for an add with "+tc.name, []byte(fl.Message), all...)
	}

	// A frame cut in the middle of the secret.
	frame := cred("leak-bad-11", "api", f("key", api.value)).Marshal()
	i := bytes.Index(frame, []byte(api.value))
	frame = frame[:i+20]
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	nc, err := dialUnix(a.Sock)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := nc.Write(frame); err != nil {
		t.Fatal(err)
	}
	body, err := protocol.ReadFrame(nc, protocol.MaxFrame)
	if err != nil || body[0] != protocol.MsgExtensionFailure {
		t.Errorf("truncated add: reply %v, %v; want an extension failure", body, err)
	} else {
		leakCheckBytes(t, "the failure reply to a truncated add", body, all...)
	}

	if _, err := c.Get("leak-missing", nil); err == nil {
		t.Errorf("get leak-missing: no error")
	}
	if err := c.Remove("leak-missing"); err == nil {
		t.Errorf("remove leak-missing: no error")
	}
}

// TestSecretsNoLeak adds an API key and an OAuth credential to an agent in
// debug mode with an audit log, uses them, makes failing requests, and
// looks for the secrets everywhere they must not be: the log, stderr, the
// /proc entries of the agent and of the client, and the agent's memory
// (a gcore core image and /proc/PID/mem, as root).
func TestSecretsNoLeak(t *testing.T) {
	a := StartAgent(t, AgentOptions{Debug: true, Audit: true})
	api := newLeakMarker("API key", "sk-test-")
	refresh := newLeakMarker("OAuth refresh token", "rt-test-")
	access := newLeakMarker("OAuth access token", "at-test-")
	all := []leakMarker{api, refresh, access}
	// Random provider names: strings that exist only in the agent's heap,
	// to show that a memory scan saw the data it was meant to see.
	apiProv := "leakapi-" + randHex(t, 6)
	oauthProv := "leakoauth-" + randHex(t, 6)
	var outputs []string // everything the clients printed that must hold no secret
	client := func(stdin string, args ...string) Result {
		t.Helper()
		r := a.Client(t, stdin, args...)
		outputs = append(outputs, fmt.Sprintf("%v", args), r.Stderr)
		return r
	}

	leakCheckProc(t, a.PID, fmt.Sprintf("agent (pid %d)", a.PID), all...)

	r := leakAddHeld(t, a, api.value, all, "add", apiProv)
	outputs = append(outputs, r.Stdout, r.Stderr)
	if r.Code != 0 {
		t.Fatalf("add %s: code %d, stderr %q", apiProv, r.Code, r.Stderr)
	}
	entry := fmt.Sprintf(`{"type":"oauth","refresh":%q,"access":%q,"expires":%d}`,
		refresh.value, access.value, time.Now().Add(time.Hour).UnixMilli())
	r = leakAddHeld(t, a, entry, all, "add", "--json", oauthProv)
	outputs = append(outputs, r.Stdout, r.Stderr)
	if r.Code != 0 {
		t.Fatalf("add --json %s: code %d, stderr %q", oauthProv, r.Code, r.Stderr)
	}

	// One get of each; the refresh token never comes back.
	if r := client("", "get", apiProv); r.Code != 0 || r.Stdout != api.value {
		t.Fatalf("get %s: code %d, right value %v, stderr %q", apiProv, r.Code, r.Stdout == api.value, r.Stderr)
	}
	if r := client("", "get", oauthProv); r.Code != 0 || r.Stdout != access.value {
		t.Fatalf("get %s: code %d, access token %v, stderr %q", oauthProv, r.Code, r.Stdout == access.value, r.Stderr)
	}
	for _, format := range []string{"json", "opencode"} {
		r := client("", "get", "--format", format, oauthProv)
		if r.Code != 0 || !strings.Contains(r.Stdout, access.value) {
			t.Errorf("get --format %s %s: code %d, has the access token %v, stderr %q",
				format, oauthProv, r.Code, strings.Contains(r.Stdout, access.value), r.Stderr)
		}
		leakCheckBytes(t, "get --format "+format+" output", []byte(r.Stdout), refresh)
		if strings.Contains(r.Stdout, `"refresh"`) {
			t.Logf("get --format %s holds a \"refresh\" member (without the token)", format)
		}
	}
	for _, args := range [][]string{{"list"}, {"list", "--json"}, {"status"}} {
		r := client("", args...)
		if r.Code != 0 {
			t.Errorf("%v: code %d, stderr %q", args, r.Code, r.Stderr)
		}
		outputs = append(outputs, r.Stdout)
	}

	// Failing requests, through the client and on the wire.
	for _, tc := range []struct {
		stdin string
		args  []string
	}{
		{"", []string{"get", "leak-missing"}},
		{"", []string{"remove", "leak-missing"}},
		{`{"type":"api","key":"` + api.value + `"`, []string{"add", "--json", "leak-bad-json"}},
		{`{"type":"api","key":` + api.value + `}`, []string{"add", "--json", "leak-bad-json"}},
		{`{"type":"oauth","access":"` + access.value + `"}`, []string{"add", "--json", "leak-bad-json"}},
		{`{"type":"oauth","refresh":"` + refresh.value + `","expires":"` + access.value + `"}`, []string{"add", "--json", "leak-bad-json"}},
		{api.value, []string{"add", "-t", "never", "leak-bad-life"}},
	} {
		r := client(tc.stdin, tc.args...)
		if r.Code == 0 {
			t.Errorf("%v: succeeded, want a failure", tc.args)
		}
		outputs = append(outputs, r.Stdout)
	}
	// Not a secret by the protocol (it went in a field that is metadata):
	// only reported, never a failure.
	plain := newLeakMarker("non-secret marker sent in expires/accountId", "np-test-")
	leakFailingRequests(t, a, plain, api, refresh, access)

	leakCheckProc(t, a.PID, fmt.Sprintf("agent (pid %d)", a.PID), all...)

	// The idle agent's memory: only enclave ciphertext may hold the secrets.
	t.Run("memory", func(t *testing.T) {
		sshtest.RequireRoot(t)
		var plainNeedles []leakNeedle
		for _, n := range leakNeedles(plain) {
			n.secret = false
			plainNeedles = append(plainNeedles, n)
		}
		ns := append(append(leakNeedles(all...), plainNeedles...),
			leakNeedle{label: "provider " + apiProv, b: []byte(apiProv)},
			leakNeedle{label: "provider " + oauthProv, b: []byte(oauthProv)})
		known := func(where string, found map[string]bool) {
			t.Helper()
			t.Logf("%s holds the %s: %v (allowed: the field is not secret)", where, plain.label, found[plainNeedles[0].label])
			for _, p := range []string{apiProv, oauthProv} {
				if !found["provider "+p] {
					t.Errorf("%s does not hold the provider name %s: the scan saw no live heap, and proves nothing", where, p)
				}
			}
		}
		if core := leakCore(t, a.PID); core != "" {
			f, err := os.Open(core)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			hits, n, err := leakScan(f, 0, ns)
			f.Close()
			os.Remove(core)
			if err != nil {
				t.Errorf("reading the core: %v", err)
			}
			t.Logf("scanned %d MiB of core in %v", n>>20, time.Since(start).Round(time.Millisecond))
			known("the core", leakReport(t, "the gcore image of the agent", hits, ns))
		}
		hits, _ := leakScanMem(t, a.PID, ns)
		known("/proc/PID/mem", leakReport(t, "the agent's memory (/proc/PID/mem)", hits, ns))
		if !memlockAlive(a.PID) {
			t.Fatalf("the agent died while being dumped")
		}
	})

	// Remove them, and fail once more on what is gone.
	for _, p := range []string{apiProv, oauthProv} {
		if r := client("", "remove", p); r.Code != 0 {
			t.Errorf("remove %s: code %d, stderr %q", p, r.Code, r.Stderr)
		}
		if r := client("", "get", p); r.Code != 1 {
			t.Errorf("get %s after remove: code %d, want 1", p, r.Code)
		}
	}
	leakCheckBytes(t, "the clients' output", []byte(strings.Join(outputs, "\n")), all...)

	// Stop the agent so that its last words are in stderr too.
	a.Stop(t)
	auditLog, err := os.ReadFile(a.Audit)
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := os.ReadFile(a.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	leakCheckBytes(t, "the audit log", auditLog, all...)
	leakCheckBytes(t, "the agent's debug stderr", stderr, all...)
	for _, want := range []string{apiProv, oauthProv, `"op":"add"`, `"op":"get"`, `"op":"remove"`, `"decision":"deny"`} {
		if !bytes.Contains(auditLog, []byte(want)) {
			t.Errorf("the audit log lacks %s: the check proves less than it should", want)
		}
	}
	for _, want := range []string{"audit: ", "connection from", apiProv} {
		if !bytes.Contains(stderr, []byte(want)) {
			t.Errorf("the debug stderr lacks %q: the check proves less than it should", want)
		}
	}
	t.Logf("audit log: %d lines; debug stderr: %d lines; no marker in either",
		bytes.Count(auditLog, []byte("\n")), bytes.Count(stderr, []byte("\n")))
}

// TestSecretsNotFromArgv checks that llm-agent-client add takes no secret
// from its command line, and does not echo one given there.
func TestSecretsNotFromArgv(t *testing.T) {
	a := StartAgent(t, AgentOptions{})
	tok := newLeakMarker("API key given on the command line", "sk-test-")
	prov := "leakargv-" + randHex(t, 4)
	for _, args := range [][]string{
		{"add", prov, tok.value},
		{"add", "--json", prov, tok.value},
		{"add", "--wellknown", "SOME_TOKEN", prov, tok.value},
		{"add", "--", prov, tok.value},
		{"add", "-c", prov, tok.value},
		{"add", "--key=" + tok.value, prov},
		{"add", "--secret", tok.value, prov},
	} {
		// Redacted form of the arguments for the messages.
		shown := strings.ReplaceAll(strings.Join(args, " "), tok.value, "<TOKEN>")
		r := a.Client(t, "", args...)
		if r.Code != 1 {
			t.Errorf("%s: exit code %d, want 1 (a usage error)", shown, r.Code)
		}
		leakCheckBytes(t, "the output of "+shown, []byte(r.Stdout+r.Stderr), tok)
		first, _, _ := strings.Cut(r.Stderr, "\n")
		if !strings.HasPrefix(first, "llm-agent-client: add: ") {
			t.Errorf("%s: stderr does not start with a one-line error: %q", shown, leakSafe([]byte(first)))
		}
	}
	r := a.Client(t, "", "list", "--json")
	if r.Code != 0 || strings.Contains(r.Stdout, prov) {
		t.Errorf("list after the refused adds: code %d, holds %s: %v", r.Code, prov, strings.Contains(r.Stdout, prov))
	}
}

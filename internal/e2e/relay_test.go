package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The TestToolsRelay tests run the real tools (tools_test.go) on the server
// under proxy --relay: each request goes through the forwarded agent
// socket to the laptop, whose agent adds the credential and calls the fake
// upstream (llm-agent --relay-upstream). The server never holds the
// credential: not in any process's environment, command line or memory,
// and not in any file.

// TestToolsRelay: each tool prints the upstream's answer through the
// relay, the upstream saw the laptop's token, no process of the test user
// holds it (environment, command line, and the memory of every process,
// the proxy's included, read while a request is in flight) and no file
// holds it afterwards; the laptop's audit log has a relay record per
// provider. The last door runs the guard first: the proxy reaches the
// agent through it.
func TestToolsRelay(t *testing.T) {
	r := newToolsRigArgs(t, relayAgentArgs, "claude", "codex", "opencode")
	doors := append(relayDoors(), relayDoor{name: "claude-relay-guard", provider: "anthropic", tool: "claude", guard: true})
	ran := map[string]bool{}
	for _, d := range doors {
		t.Run(d.name, func(t *testing.T) {
			ran[d.provider] = true
			token := r.tokens[d.provider]
			before := len(r.up.requests())
			var mu sync.Mutex
			var scanned, withDummy int
			var hits []string
			var mem memScanResult
			var memHits []string
			r.up.arm(func() {
				mu.Lock()
				defer mu.Unlock()
				s, h, w := procScan(r.user.UID, token, "sk-llm-agent-proxy-")
				m := memScan(r.user.UID, token, "sk-llm-agent-proxy-")
				// Every scan's findings count; the report keeps a scan that
				// read a proxy: a request the tool gave up on may be scanned
				// after the proxy has exited.
				hits, memHits = append(hits, h...), append(memHits, m.hits...)
				if scanned == 0 || len(mem.proxies) == 0 {
					scanned, withDummy, mem = s, w, m
				}
			})
			res, took := toolsRun(t, r.cmd(r.srv, fwdPrimary, nil, r.prelude(d.name)+d.script(r, d.toolLine(r))))
			r.up.arm(nil)
			r.checkAnswered(t, d.name, token, res, took, before)
			if d.guard {
				relays := ""
				for _, l := range strings.Split(res.Stdout, "\n") {
					if v, ok := strings.CutPrefix(l, "@@guard-relays "); ok {
						relays = v
					}
				}
				t.Logf("%s: guard.log: %s relay connections opened", d.name, relays)
				if relays == "" || relays == "0" {
					t.Errorf("%s: guard.log shows no relay connection opened (%q): the proxy did not go through the guard", d.name, relays)
				}
			}

			mu.Lock()
			defer mu.Unlock()
			checkProcScan(t, scanned, hits, withDummy)
			t.Logf("memory: read %d bytes in %d regions of %d processes of the test user while a request was in flight (%d regions not read to the end, skipped: %d of them unmapped during the scan); proxies %v (pid: bytes read); dummy key in the memory of pids %v: credential %s",
				mem.bytes, mem.regions, mem.procs, mem.failed, mem.gone, mem.proxies, mem.withMarker, map[bool]string{true: "FOUND", false: "not found"}[len(memHits) > 0])
			if len(memHits) > 0 {
				t.Errorf("the credential is in the memory of pid %s", strings.Join(memHits, ", "))
			}
			proxyRead := false
			for pid, b := range mem.proxies {
				for _, m := range mem.withMarker {
					proxyRead = proxyRead || (m == pid && b > 0)
				}
			}
			if !proxyRead {
				t.Errorf("the memory scan did not find the dummy key in a proxy --relay process: it did not read the proxy")
			}
			scanFiles(t, r.user, token)
			if t.Failed() {
				t.Logf("sshd log:\n%s", r.srv.LogTail(10))
			}
		})
	}
	var providers []string
	for p := range ran {
		providers = append(providers, p)
	}
	relayCheckAudit(t, r.agent, providers...)
}

// TestToolsRelayDisconnect: the owner disconnects (the ssh that forwards
// the agent is killed) while a tool works through proxy --relay, in two
// ways. in-flight: when the tool's first request reaches the upstream,
// before it is answered. between: after a first run of the tool under the
// proxy has printed the answer, before a second run of it under the same
// proxy (whose relay connection to the laptop then sits idle). Either way
// the tool then fails promptly, saying the owner is not connected, and the
// upstream never sees the token again.
func TestToolsRelayDisconnect(t *testing.T) {
	r := newToolsRigArgs(t, relayAgentArgs, "claude", "codex", "opencode")
	for _, mode := range []string{"in-flight", "between"} {
		for _, d := range relayDoors() {
			t.Run(mode+"/"+d.name, func(t *testing.T) {
				relayDisconnect(t, r, d, mode)
			})
		}
	}
}

func relayDisconnect(t *testing.T, r *toolsRig, d relayDoor, mode string) {
	token := r.tokens[d.provider]
	owner, sock, ownerDone := r.startOwner(t)
	disconnect, disconnectedAt := r.ownerCut(owner, sock, ownerDone)
	name := "relay-disc-" + mode + "-" + d.name
	inner := d.toolLine(r)
	stop := make(chan struct{})
	var watched sync.WaitGroup
	if mode == "in-flight" {
		// A tool call as the answer, should it get through, makes the
		// tool ask again.
		r.up.setToolCall(true)
		r.up.arm(disconnect)
	} else {
		// The first run must end normally: no tool call, no hook. The
		// script marks its end, waits for the socket to go, and runs the
		// tool again under the same proxy.
		r.up.setToolCall(false)
		r.up.arm(nil)
		done := filepath.Join(r.user.Home, name, "first-done")
		inner = "sh -c " + shq(inner+`; echo "@@first $?"; : > "$HOME/first-done"
while [ -S `+shq(sock)+` ]; do sleep 0.02; done
s=$(date +%s%N); `+inner+`; rc=$?; echo "@@second $rc $(( ($(date +%s%N) - s) / 1000000 ))ms"; exit $rc`)
		watched.Add(1)
		go func() {
			defer watched.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				if _, err := os.Stat(done); err == nil {
					disconnect()
					return
				}
			}
		}()
	}
	before := len(r.up.requests())
	script := "export SSH_AUTH_SOCK=" + shq(sock) + "\n" + r.prelude(name) + d.script(r, inner)
	res, took := toolsRun(t, r.cmd(r.srv, fwdNone, nil, script))
	close(stop)
	watched.Wait()
	r.up.arm(nil)
	r.up.setToolCall(false)
	disconnected := disconnectedAt()
	out := res.Stdout + res.Stderr
	if disconnected.IsZero() {
		t.Fatalf("%s: the owner was never disconnected (exit %d after %v)\nstdout: %s\nstderr: %s", d.name, res.Code, took.Round(time.Millisecond), res.Stdout, res.Stderr)
	}
	t.Logf("%s %s: exit %d, %v after the disconnect (%v in all); says %q", mode, d.name, res.Code,
		time.Since(disconnected).Round(time.Millisecond), took.Round(time.Millisecond), notConnectedLine(out))
	nreqs, after, afterWithToken := r.up.afterDisconnect(before, token)
	t.Logf("%s %s: the upstream got %d requests, %d after the disconnect, %d of them with the token", mode, d.name, nreqs, after, afterWithToken)
	failed := res.Stdout
	if mode == "between" {
		first, second, ok := strings.Cut(res.Stdout, "@@first ")
		if !ok {
			t.Fatalf("%s: the first run did not end\nstdout: %s\nstderr: %s", d.name, res.Stdout, res.Stderr)
		}
		t.Logf("between %s: first run %s; second run: %s", d.name, strings.SplitN(second, "\n", 2)[0], relaySecond(res.Stdout))
		if !strings.Contains(first, r.up.Answer) || !strings.HasPrefix(second, "0\n") {
			t.Errorf("%s: the first run, before the disconnect, did not print the answer and exit 0\nstdout: %s\nstderr: %s", d.name, res.Stdout, res.Stderr)
		}
		failed = second
	}
	if !strings.Contains(out, "not connected") {
		t.Errorf("%s: the tool's output does not say the owner is not connected\nstdout: %s\nstderr: %s", d.name, res.Stdout, res.Stderr)
	}
	if strings.Contains(failed, r.up.Answer) {
		t.Errorf("%s: the tool printed the answer after the disconnect", d.name)
	}
	if afterWithToken > 0 {
		t.Errorf("%s: the upstream got the token %d times after the disconnect", d.name, afterWithToken)
	}
	if res.Code == 0 {
		t.Errorf("%s: the tool exited 0 after the owner disconnected", d.name)
	}
	if t.Failed() {
		t.Logf("sshd log:\n%s", r.srv.LogTail(10))
	}
}

// relaySecond is the "@@second" line's exit status and duration.
func relaySecond(stdout string) string {
	for _, l := range strings.Split(stdout, "\n") {
		if v, ok := strings.CutPrefix(l, "@@second "); ok {
			return "exit " + strings.Replace(v, " ", ", ", 1)
		}
	}
	return "(no line)"
}

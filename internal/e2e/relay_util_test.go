package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// relayAgentArgs points the laptop agent's relay routes at the fake
// upstream: the relay calls only a route's base URL, which on the laptop
// is the table's or --relay-upstream's.
func relayAgentArgs(upURL string) []string {
	return []string{"--relay-upstream", "anthropic=" + upURL, "--relay-upstream", "openai=" + upURL + "/v1"}
}

// relayDoor is one tool run on the server under proxy --relay.
type relayDoor struct {
	name, provider, tool string
	// listen: Codex, whose built-in OpenAI provider speaks WebSockets,
	// gets a provider of its own at a fixed port (as codex-proxy).
	listen bool
	// guard: eval "$(llm-agent-client guard)" first, so that the proxy
	// reaches the agent through the guard; the script then prints
	// "@@guard-relays N", the relay connections guard.log says it opened.
	guard bool
}

func relayDoors() []relayDoor {
	return []relayDoor{
		{name: "opencode-relay", provider: "anthropic", tool: "opencode"},
		{name: "claude-relay", provider: "anthropic", tool: "claude"},
		{name: "codex-relay", provider: "openai", tool: "codex", listen: true},
	}
}

// toolLine is the tool's command line for a one-line prompt.
func (d relayDoor) toolLine(r *toolsRig) string {
	bin := shq(r.bins[d.tool])
	switch d.tool {
	case "opencode":
		return bin + ` run "say hi"`
	case "codex":
		return bin + ` exec --skip-git-repo-check "say hi"`
	}
	return bin + ` -p "say hi"`
}

// script is the server-side script (after the prelude) that runs inner,
// a shell command line, as proxy --relay's command.
func (d relayDoor) script(r *toolsRig, inner string) string {
	var pre, flags, post string
	if d.listen {
		port := toolsFreePort(r.t)
		pre = writeFile(`"$HOME/.codex/config.toml"`, codexConfig(fmt.Sprintf("http://127.0.0.1:%d/openai", port), "", false))
		flags = fmt.Sprintf(" --listen 127.0.0.1:%d", port)
	}
	if d.guard {
		pre += `eval "$("$C" guard)" >/dev/null || exit 97` + "\n"
		post = `rc=$?
echo "@@guard-relays $(grep -c '^guard: relay connection for pid .* opened (' "$(dirname "$(dirname "$LLM_AUTH_SOCK")")/guard.log")"
kill "$LLM_GUARD_PID"
exit $rc
`
	}
	return pre + `"$C" proxy --relay` + flags + ` -- ` + inner + " </dev/null\n" + post
}

// relayCheckAudit checks that the laptop's audit log has, for each
// provider, an allowed relay record with status 200 made over a
// connection forwarded by the laptop's ssh, and logs what it found.
func relayCheckAudit(t testing.TB, a *Agent, providers ...string) {
	t.Helper()
	sshExe := fwdSSHExe(t)
	count, metered := map[string]int{}, map[string]int{}
	var seen []string
	usage := 0
	for _, e := range readAudit(t, a.Audit) {
		if e.Op != "relay" {
			continue
		}
		info := "?"
		if e.Relay != nil && e.Relay.UsageKnown {
			usage++
		}
		if e.Relay != nil {
			info = fmt.Sprintf("%s %s %d %s %dms usage_known=%v", e.Relay.Method, e.Relay.Path, e.Relay.Status, e.Relay.Model, e.Relay.DurationMS, e.Relay.UsageKnown)
		}
		if e.Reason != "" {
			info += " (" + e.Reason + ")"
		}
		seen = append(seen, fmt.Sprintf("%s %s %s", e.Provider, e.Decision, info))
		if e.Decision == "allow" && e.Relay != nil && e.Relay.Status == 200 && e.Forwarded && e.Peer != nil && e.Peer.Exe == sshExe {
			count[e.Provider]++
			// The fake upstream reports 10 tokens in and 5 out in every
			// answer, in each API's own shape.
			if e.Relay.UsageKnown && e.Relay.InputTokens == 10 && e.Relay.OutputTokens == 5 {
				metered[e.Provider]++
			}
		}
	}
	t.Logf("audit log: %d relay records, %d with the provider's usage:\n  %s", len(seen), usage, strings.Join(seen, "\n  "))
	for _, p := range providers {
		if count[p] == 0 {
			t.Errorf("audit log: no relay %q allow record with status 200, forwarded, peer exe %s", p, sshExe)
		} else if metered[p] == 0 {
			t.Errorf("audit log: no relay %q record with the usage the provider reported (10 in, 5 out)", p)
		}
	}
}

// memScanResult is what memScan read.
type memScanResult struct {
	procs, regions int
	// failed: readable regions that could not be read, or not to the end
	// (skipped); gone: those of them no longer mapped after the scan.
	failed, gone int
	bytes        int64 // bytes read
	hits         []string
	// withMarker: pids whose memory holds the marker; proxies: pids of
	// llm-agent-client proxy --relay processes, with the bytes read of each.
	withMarker []int
	proxies    map[int]int64
}

// memScan reads, as root, the memory of every process of uid (each
// readable mapping in /proc/PID/maps, through /proc/PID/mem) and looks for
// secret, and pieces of it, as leakScan does, and for marker, a known
// string (the proxy's dummy key prefix: a scan that finds it in the proxy
// shows that it read the proxy's heap). It may run off the test's
// goroutine: it never fails t.
func memScan(uid int, secret, marker string) memScanResult {
	res := memScanResult{proxies: map[int]int64{}}
	ns := append(leakNeedles(leakMarker{label: "the credential", value: secret}),
		leakNeedle{label: "marker", b: []byte(marker)})
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || uidOf(pid) != uid {
			continue
		}
		regions, err := readableMappings(pid)
		if err != nil {
			continue // gone
		}
		mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
		if err != nil {
			continue
		}
		res.procs++
		rr := &regionsReader{mem: mem, regions: regions}
		hits, n, _ := leakScan(rr, 0, ns)
		mem.Close()
		res.regions += len(regions)
		res.failed += len(rr.failed)
		res.gone += unmapped(pid, rr.failed)
		res.bytes += n
		var hit, mark bool
		for _, h := range hits {
			hit = hit || h.label != "marker"
			mark = mark || h.label == "marker"
		}
		if hit {
			res.hits = append(res.hits, fmt.Sprintf("%d (%s)", pid, procComm(pid)))
		}
		if mark {
			res.withMarker = append(res.withMarker, pid)
		}
		if isRelayProxy(pid) {
			res.proxies[pid] = n
		}
	}
	return res
}

// mapping is one region of a process's address space.
type mapping struct{ start, end uint64 }

// readableMappings lists the readable regions in /proc/PID/maps, but for
// [vsyscall], which sits above what a file offset can say.
func readableMappings(pid int) ([]mapping, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return nil, fmt.Errorf("reading the maps of pid %d: %w", pid, err)
	}
	var out []mapping
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[1][0] != 'r' {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil || start >= end || end > 1<<62 {
			continue
		}
		out = append(out, mapping{start, end})
	}
	return out, nil
}

// unmapped counts the regions of ms that pid no longer maps.
func unmapped(pid int, ms []mapping) int {
	if len(ms) == 0 {
		return 0
	}
	now, err := readableMappings(pid)
	if err != nil {
		return len(ms)
	}
	still := map[mapping]bool{}
	for _, m := range now {
		still[m] = true
	}
	n := 0
	for _, m := range ms {
		if !still[m] {
			n++
		}
	}
	return n
}

// regionsReader reads the regions of a process's memory one after the
// other; a region that fails to read is counted and skipped.
type regionsReader struct {
	mem     *os.File
	regions []mapping
	off     uint64 // in regions[0]; 0 for its start
	failed  []mapping
}

func (r *regionsReader) Read(p []byte) (int, error) {
	for len(r.regions) > 0 {
		g := r.regions[0]
		if r.off == 0 {
			r.off = g.start
		}
		want := min(uint64(len(p)), g.end-r.off)
		n, err := r.mem.ReadAt(p[:want], int64(r.off))
		r.off += uint64(n)
		if err != nil && n < int(want) || r.off >= g.end {
			if r.off < g.end {
				r.failed = append(r.failed, g) // [vvar], device mappings, a region unmapped meanwhile
			}
			r.regions, r.off = r.regions[1:], 0
		}
		if n > 0 {
			return n, nil
		}
	}
	return 0, io.EOF
}

// isRelayProxy reports whether pid is llm-agent-client proxy --relay.
func isRelayProxy(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(string(b), "\x00")
	return len(args) > 2 && filepath.Base(args[0]) == filepath.Base(bins.Client) && args[1] == "proxy" && args[2] == "--relay"
}

// procComm is pid's command name, for a finding's message.
func procComm(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

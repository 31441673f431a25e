// Package bench measures llm-agent against ssh-agent and against the
// physical floor, side by side in one run: Go benchmarks for the in-process
// rows (go test -bench ./bench/) and a report (bench/run) that prints one
// table of ratios and writes bench/RESULTS.md.
//
// TestRTT (go test -run '^TestRTT$' ./bench/ -args -rtt 5ms,50ms,100ms,
// as root; bench/run runs it) measures what llm-agent-client proxy and
// proxy --relay cost in laptop round trips: the owner's real ssh reaches a real sshd on
// 127.0.0.1 through a user-space relay that delays every chunk by half the
// RTT each way from its arrival (link_test.go), the proxy runs in that
// session with a load generator (this test binary, loadgen_test.go) as its
// tool, and a fake provider (provider_test.go) answers next to the
// server and, for relayed requests, 30 ms (-rtt-provider-laptop) from the
// laptop. Every number is reported beside the RTT probed through the same
// path, and as a multiple of it; -rtt-before PATH measures an older
// llm-agent-client beside the tree's in the same run. About five minutes for
// the three RTTs.
package bench

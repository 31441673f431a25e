// Package bench measures llm-agent against ssh-agent and against the
// physical floor, side by side in one run: Go benchmarks for the in-process
// rows (go test -bench ./bench/) and a report (bench/run) that prints one
// table of ratios and writes bench/RESULTS.md.
package bench

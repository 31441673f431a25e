#!/bin/sh
# The proxy's cost, as ratios against direct requests to the same fake
# upstream in the same run: added latency per request (latency-ratio,
# added-µs/req) and streaming throughput (throughput-ratio, proxy-MiB/s
# against direct-MiB/s), and what the peer check adds per connection with
# SLEEPERS (200) idle processes of the uid alive (BenchmarkPeerCheck). Timings are measured here, never asserted in tests.
set -eu
cd "$(dirname "$0")/.."
exec go test -run '^$' -bench 'BenchmarkLatency|BenchmarkStream|BenchmarkPeerCheck' -benchtime "${BENCHTIME:-2s}" -count "${COUNT:-1}" ./internal/proxy/

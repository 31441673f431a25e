// Package agenttest starts real llm-agent daemons for tests and benchmarks:
// it builds the binaries once, starts an agent in the foreground on a
// private socket, waits until it answers, and runs llm-agent-client
// against it. It is used by the end-to-end tests and the benchmarks.
package agenttest

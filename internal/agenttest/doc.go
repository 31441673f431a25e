// Package agenttest starts llm-agent for tests and benchmarks. Build and
// Start run the real daemon: build the binaries once, start an agent in the
// foreground on a private socket, wait until it answers, and run
// llm-agent-client against it (the end-to-end tests and the benchmarks).
// Serve runs the agent package inside the test process instead, on the same
// pair of sockets (the tests of agent, protocol and proxy).
package agenttest

// Package agenttest is the test kit for running llm-agent. Build and Start
// run the real daemon: build the binaries once, start an agent in the
// foreground on a private socket, wait until it answers, and run
// llm-agent-client against it (the end-to-end tests and the benchmarks).
// Serve runs the agent package inside the test process instead, on the same
// pair of sockets (the tests of agent, protocol, proxy and the bench).
// ServeUnix and ParseSessionBind are the small pieces fake agents and
// relays in those tests share.
package agenttest

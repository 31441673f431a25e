// Package agentcmd is the llm-agent command: flags and behaviour mirroring
// ssh-agent(1) (eval output, -a, -c/-s, -D/-d, -k, -t, running a command),
// daemonising, signal handling and process hardening around package agent;
// and, through package service, the units that start it at login
// (--print-service, --install-service) and the sockets systemd passes it.
// cmd/llm-agent is a thin main over Main; Flags hands its flag set to
// llm-agent-client's shell completions.
package agentcmd

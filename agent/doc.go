// Package agent is the llm-agent daemon's core: the credential store with
// its policy (lifetime, confirm, destination, local-only, lock), the socket
// server that speaks the SSH agent protocol with the LLM extensions, the
// per-connection checks, the refresh of OAuth access tokens (refresh.go:
// on the laptop, single flight per credential, write-back of rotated
// tokens), the runs of the commands that print credentials added with
// --from-command (command.go, through internal/credcmd; the same single
// flight, flight.go), the relay door (relay.go: a connection that sends
// relay@llm-agent becomes an HTTP/2 stream that internal/relay serves,
// each request checked as a get on that connection, the provider called
// from the laptop, daily token budgets counted from the usage the answers
// report), and the audit log.
//
// Frames are read by the agent's own loop through protocol.FrameConn (capped
// at protocol.MaxFrame, with deadlines; request and reply buffers wiped
// after use). LLM extensions are
// served there; every other frame goes to golang.org/x/crypto/ssh/agent for
// the SSH-key side, an in-memory keyring or a passthrough to an upstream
// agent.
package agent

// Package protocol is the wire protocol of llm-agent: the SSH agent protocol
// (draft-miller-ssh-agent, OpenSSH's PROTOCOL.agent) with the LLM credential
// operations carried as SSH_AGENTC_EXTENSION messages.
//
// It holds the message encodings (shared by the agent and its clients), the
// frame reader and writer (a hard size cap; FrameConn adds the deadlines the
// agent's and the guard's serving loops share), and the client library that
// llm-agent-client uses. PROTOCOL.md beside this package is the
// specification it implements.
//
// Secret values are carried as []byte that alias the frame they were decoded
// from, so that a caller can wipe one buffer and know every copy is gone.
package protocol

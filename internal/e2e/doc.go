// Package e2e holds the end-to-end tests: they build llm-agent and
// llm-agent-client, start real agents, and drive them with the real OpenSSH
// tools (ssh-add, ssh-agent, sshd, ssh). Tests that need root (second users,
// sshd, gcore) say so loudly when skipped, and fail instead under CI=true.
// kit_test.go holds the helpers most tests share (running commands as other
// users, ssh-agent, the audit log).
package e2e

// Package clientcmd is the llm-agent-client command: managing the agent on
// the laptop (add, import, list, remove, lock, unlock, status) and, on a
// server, fetching credentials for tools (get). cmd/llm-agent-client is a
// thin main over Main.
//
// Exit codes follow ssh-add: 0 done, 1 failed (not found, refused,
// locked), 2 no agent could be reached. Errors are one line on stderr.
package clientcmd

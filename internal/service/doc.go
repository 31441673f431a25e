// Package service starts llm-agent at login: it writes the systemd user
// units (a socket unit and the service it activates) and the launchd
// LaunchAgent for macOS, installs them in the user's directories, and takes
// the two listening sockets a service manager passes (LISTEN_PID,
// LISTEN_FDS, LISTEN_FDNAMES), checked as strictly as the agent's own.
//
// The units run the agent as a user would in a terminal, in the
// foreground on a fixed path: `llm-agent -D -a PATH`. Under systemd, PATH is
// %t/llm-agent/agent.sock (in $XDG_RUNTIME_DIR), created by the socket unit
// together with its management socket beside it; on macOS it is
// ~/.llm-agent/agent.sock, which the agent binds itself.
package service

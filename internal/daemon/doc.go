// Package daemon starts a background copy of the running program and waits
// until it says it is ready, as llm-agent does for its agent daemon and
// llm-agent-client guard for the guard.
//
// The copy gets a pipe at a file descriptor of the caller's choosing. It
// writes one line there: "ok", or "ok " and a detail (the guard's socket
// path) once it serves, or the reason it cannot, which becomes the parent's
// error. So an error the daemon meets while it hardens itself or binds its
// socket reaches the user's terminal rather than /dev/null, where its
// stdio goes.
package daemon

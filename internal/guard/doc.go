// Package guard is the server side's protection for shared accounts: it
// takes the forwarded agent socket out of reach, re-exposes the agent on a
// stable per-owner path, and lets through only processes of the owner's
// own login sessions (the kernel's audit session id, or descent from the
// owner's login when audit is off), relaying their requests over
// connections it opened before it hid the forwarded socket.
//
// A relay@llm-agent request (the connection becomes an HTTP/2 stream the
// agent serves) gets an upstream connection of its own: the client's
// reserve one when it sent session-bind, else a new one, dialled through
// the forwarded socket's file, which the guard holds open (O_PATH) since
// before it unlinked the path. Once the agent accepts, the guard copies
// bytes both ways, unread and without time-outs, until either side ends;
// it carries at most Config.MaxRelays at once and ends them all when it
// closes (relay.go).
//
// It protects against another person who shares the Linux account and
// connects to sockets; it does not protect against one who ptraces the
// owner's processes, nor against root, nor during the moments between
// login and the guard's start. See llm-agent-client(1), GUARD.
package guard

// Package peercred tells who is on the other end of a Unix domain socket.
//
// llm-agent hands out LLM credentials over a Unix socket, so every accepted
// connection must be attributed to a user and, for the audit log and the
// confirmation prompt, to a process. This package asks the kernel, never the
// client:
//
//   - [FromConn] reads the peer credentials recorded at connect(2) time
//     (SO_PEERCRED on Linux, LOCAL_PEERCRED and LOCAL_PEERPID on macOS).
//     On Linux 6.5+ it also takes a pidfd of the peer from the socket itself
//     (SO_PEERPIDFD). The pidfd pins the exact process that connected, so a
//     later pid reuse cannot make us describe some other process.
//   - [Peer.Describe] reads the peer's process description (executable,
//     argv[0], parent, audit session, ...) and, when a pidfd is available,
//     proves afterwards that the process read is still the one that connected
//     ([Process.Verified]).
//   - [ProcessOf] describes an arbitrary pid on a best-effort basis (for
//     walking parent chains); it can never be verified.
//   - [PidfdOpen] opens a pidfd for a pid (Linux only).
//
// A peer that has exited, or whose pid was reused, is not an error: Describe
// then returns what it could read with Verified false. Errors are kept for
// real failures (unreadable /proc, unexpected pidfd errors).
//
// # Verification on Linux
//
// Describe first reads /proc/PID through one directory file descriptor, then
// checks the peer's pidfd: the pidfd must still name pid PID in our pid
// namespace and the process must not have exited. Because a pid number is
// only freed when its process is reaped, a live process at check time means
// every earlier /proc read hit that same process. The check uses the
// PIDFD_GET_INFO ioctl (Linux 6.13+) and falls back to
// pidfd_send_signal(pidfd, 0) plus the "Pid:" line of
// /proc/self/fdinfo/<pidfd>; in both cases poll(2) on the pidfd tells whether
// the process has exited. [Process.VerifiedBy] names the mechanism used.
// Without a pidfd (older kernels, ProcessOf) the start time is read before
// and after the other fields to catch reuse during the read, but reuse
// before the read cannot be excluded, so Verified stays false.
//
// # Limits
//
// The credentials name the process that called connect(2). Verified proves
// that the description is of that process, not that it still runs the same
// program: it may have exec'd since, or handed the socket to another process
// (fork, SCM_RIGHTS). Argv0 and, on Linux, Comm are chosen by the process.
//
// # macOS
//
// FromConn uses LOCAL_PEERCRED (uid, first group) and LOCAL_PEERPID.
// Describe and ProcessOf use the kern.proc.pid sysctl: they fill PID, UID,
// PPID, Comm (kinfo_proc's p_comm, the executable's base name truncated to
// 16 bytes) and StartTime. Exe and Argv0 stay empty: proc_pidpath is not
// reachable through golang.org/x/sys, and kern.procargs2 is memory the
// process itself can rewrite, which is worthless for an audit log. There is
// no pidfd, so Verified is always false.
//
// Other operating systems get stubs that return errors wrapping
// [errors.ErrUnsupported].
package peercred

// Package sshtest starts real OpenSSH servers and creates real Unix users for
// llm-agent's end-to-end tests.
//
// llm-agent's socket is meant to be forwarded by stock OpenSSH
// (ssh -o ForwardAgent=$SOCK, ssh -R remote.sock:$SOCK), so the end-to-end
// tests use the real thing and no mock SSH: this package runs
// /usr/sbin/sshd on 127.0.0.1, makes throwaway users with useradd, and builds
// ssh(1) command lines for the test process, which plays the "laptop".
// Everything it creates is removed again in t.Cleanup.
//
// The harness needs root (to create users and to run sshd, which needs root
// for privilege separation and PAM). Call RequireRoot first: it skips the
// test when not root, unless the environment variable CI is "true", in which
// case it fails the test, so CI can never silently skip.
//
// # Servers
//
// Start runs "sshd -D -e -f <config>" on 127.0.0.1 with a free port, a fresh
// ed25519 host key per server, UsePAM yes, public key authentication only,
// agent, TCP and stream-local forwarding allowed, StreamLocalBindUnlink no
// (the OpenSSH default: stale forwarded sockets are left behind, and tests
// rely on that) and LogLevel DEBUG1 into Server.LogPath. It returns once
// sshd logged that it listens and answered with an "SSH-2.0-" banner.
// Several servers can run at once. Cleanup sends SIGTERM to the listening
// sshd and waits for it; sessions that are still open are not killed here
// (they die with their user, see NewUser).
//
// # Users
//
// NewUser creates a real user (useradd -m, shell /bin/bash, GECOS field
// GECOS) with a fresh ed25519 key. The private key is kept twice: at
// User.KeyPath (root-owned, for the laptop-side ssh run by the test
// process) and as the user's own ~/.ssh/id_ed25519, so the user can hop
// from one test server to another; the public key is in
// ~/.ssh/authorized_keys. Cleanup kills all of the user's processes
// (pkill -KILL by real and effective uid) and runs userdel -r, retrying
// while userdel still sees processes or /etc/passwd is locked. A test
// binary killed before its Cleanup leaves its users behind; find them by
// GECOS. (Its sshd processes die with it: they get SIGTERM via
// PR_SET_PDEATHSIG.)
//
// # Client side
//
// Server.SSH returns an *exec.Cmd for
//
//	ssh -F <config> [sshArgs...] <Server.Name> [remote...]
//
// where <config> (Server.ClientConfig, one file per server and user) logs in
// as the user with User.KeyPath and checks the host key strictly against
// Server.KnownHostsFile, a known_hosts file of its own for each server
// (GlobalKnownHostsFile /dev/null, BatchMode, IdentitiesOnly, no connection
// sharing; root's ~/.ssh/config and /etc/ssh/ssh_config are not read).
// The Cmd's Env is the test's environment without SSH_AUTH_SOCK and
// SSH_AGENT_PID; append to it. Trust, ClientConfig and SSH have no t of
// their own: they report errors with Errorf on the test that started the
// server, which is safe from subtests.
//
// # Forwarding an agent socket: an OpenSSH trap
//
// OpenSSH 9.2's ssh silently drops "-o ForwardAgent=<path>" unless
// SSH_AUTH_SOCK in ssh's own environment reaches a live agent (any agent):
// before requesting forwarding it checks that "an agent is present" by
// connecting to $SSH_AUTH_SOCK, not to <path>. If that check passes, the
// forwarded channel does go to <path>. So with a clean Env, set one of
//
//	cmd := s.SSH(u, []string{"-o", "ForwardAgent=" + sock}, "ssh-add -l")
//	cmd.Env = append(cmd.Env, "SSH_AUTH_SOCK="+sock) // or any live agent
//
//	s.SSH(u, []string{"-o", "IdentityAgent=" + sock, "-o", "ForwardAgent=yes"}, "ssh-add -l")
//
// (IdentityAgent makes ssh set SSH_AUTH_SOCK for itself.) Remote forwarding
// needs nothing special:
//
//	s.SSH(u, []string{"-R", "/tmp/x.sock:" + sock}, "SSH_AUTH_SOCK=/tmp/x.sock ssh-add -l")
//
// With StreamLocalBindUnlink no (the default kept here) /tmp/x.sock stays
// behind after the session, owned by the user, and a second -R to the same
// path fails until someone removes it.
//
// Server.Trust writes a Host block for the server into the user's own
// ~/.ssh/config and its host key into ~/.ssh/known_hosts, so that in a
// session on another test server "ssh hostB" just works.
//
// # Login sessions and audit session ids
//
// Logins go through Debian's stock /etc/pam.d/sshd (UsePAM yes), where
// pam_loginuid.so is "required", so each login gets its own audit session:
// in the session /proc/self/loginuid is the user's uid and
// /proc/self/sessionid is fresh for every login (checked by this package's
// tests). This needs a kernel with CONFIG_AUDIT and an sshd with
// CAP_AUDIT_CONTROL; no auditd is needed. In a container (user namespace)
// pam_loginuid lets the login through without an audit session, and the
// test skips with the reason. OpenSSH 9.2 has no PAMServiceName option
// (sshd -T rejects it), so the stock "sshd" PAM service is used.
package sshtest

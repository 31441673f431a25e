// Package hostkeys reads OpenSSH known_hosts files: the host keys of a named
// host (for destination constraints, as ssh-add -h resolves them) and the
// name of a host key (for prompts and the audit log). Hashed entries are
// matched; wildcard patterns and @revoked markers are not used to name or
// trust a host.
package hostkeys

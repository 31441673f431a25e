package keychain

import (
	"crypto/sha256"
	"encoding/hex"
)

// DefaultService is the service name of Claude Code's login item when
// neither CLAUDE_CONFIG_DIR nor CLAUDE_SECURESTORAGE_CONFIG_DIR is set.
const DefaultService = "Claude Code-credentials"

// FallbackAccount is the account name Claude Code uses when the user's
// name is not made of [A-Za-z0-9._-] only.
const FallbackAccount = "claude-code-user"

// How Claude Code names its item. What follows was read in the bundle of
// Claude Code 2.1.328 (the version CI installs; the same code is in every
// platform's build) and agrees with what several tools that read the item
// report (openusage #424, oh-my-claudecode #1125, orca #12862):
//
//   - the service is "Claude Code" + "-credentials" (+ an OAuth-endpoint
//     suffix that only Anthropic's internal builds set), and, when
//     CLAUDE_CONFIG_DIR is set and not empty, "-" + the first 8 hex digits
//     of sha256 of its value;
//   - the value is hashed as given, after Unicode NFC normalisation: no ~
//     expansion (a shell expands ~ before Claude Code sees it), no
//     absolute path, no trailing-slash trimming, so "/Users/a/.claude-w"
//     and "/Users/a/.claude-w/" are two items;
//   - newer versions first look at CLAUDE_SECURESTORAGE_CONFIG_DIR: when it
//     is set, its value (NFC) is hashed instead, and no suffix is added when
//     it is empty;
//   - the account is $USER, else the login name, replaced by
//     "claude-code-user" unless it matches ^[a-zA-Z0-9._-]+$.
//
// Uncertain, and not done here: NFC normalisation (Go's standard library
// has none; a value that is already NFC, which covers ASCII and what a
// keyboard types, hashes the same, but a decomposed path would not: then
// --keychain-service names the item); CLAUDE_SECURESTORAGE_CONFIG_DIR set
// to the empty string is taken as unset (the caller's getenv cannot tell
// them apart); older Claude Code versions used the plain name whatever the
// directory. No real Mac was at hand to check any of it.

// ServiceName returns the service name of Claude Code's login item for the
// given configuration directory, the value of CLAUDE_CONFIG_DIR (see
// ConfigDir): DefaultService when it is empty, else DefaultService + "-" +
// the first 8 hex digits of sha256(configDir).
func ServiceName(configDir string) string {
	if configDir == "" {
		return DefaultService
	}
	sum := sha256.Sum256([]byte(configDir))
	return DefaultService + "-" + hex.EncodeToString(sum[:4])
}

// ConfigDir returns the directory whose hash names Claude Code's item:
// CLAUDE_SECURESTORAGE_CONFIG_DIR when set, else CLAUDE_CONFIG_DIR.
func ConfigDir(getenv func(string) string) string {
	if v := getenv("CLAUDE_SECURESTORAGE_CONFIG_DIR"); v != "" {
		return v
	}
	return getenv("CLAUDE_CONFIG_DIR")
}

// AccountName returns the account Claude Code files its item under for a
// user of the given name: the name itself when it is made of ASCII
// letters, digits, '.', '_' and '-', else FallbackAccount.
func AccountName(user string) string {
	if user == "" {
		return FallbackAccount
	}
	for i := 0; i < len(user); i++ {
		c := user[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return FallbackAccount
		}
	}
	return user
}

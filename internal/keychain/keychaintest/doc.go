// Package keychaintest is a stand-in for macOS's security(1) tool, for
// tests on Linux: test binaries run Main when invoked under the name
// security (Dispatch, or testscript's command map), and Setup puts such a
// link first on PATH.
//
// The stand-in keeps generic-password items in a file under the
// directory named by $LLM_AGENT_TEST_KEYCHAIN (EnvDir), and appends every
// invocation's argv, one JSON array a line, to argv.log there.
//
// # What it copies from the real tool
//
// Read in Apple's source, apple-oss-distributions/Security at
// Security-61901 (SecurityTool/macOS: security.c, readline.c,
// keychain_find.c, keychain_add.c, keychain_utilities.c); the behaviour
// below is the same back to Security-57740. It is a new implementation of
// that behaviour, not a copy of the code.
//
//   - Global options parsed like getopt "hilp:qvR"; a command name matches
//     any command it is a prefix of (first in table order).
//   - -i: commands read from stdin, one a line, into a 4096-byte buffer:
//     a line is cut after 4095 characters and the rest read as the next
//     command; a last line without a newline is dropped at end of input.
//     Lines are split as split_line does: on isspace, " or ' quoting, a
//     backslash taking the next character literally inside quotes or not,
//     at most 32 arguments, stop at a NUL. A failing command prints
//     "NAME: returned STATUS" on stderr (unless -q); the exit status is the
//     last command's, an empty line's 0 included.
//   - -v prints each command and its quoted arguments on stderr.
//   - find-generic-password (getopt "ha:c:C:D:G:j:l:s:wg"; -a and -s
//     match, the other filters are accepted and ignored): -w prints the
//     password and a newline on stdout, raw when every byte is printable
//     ASCII (isprint, C locale), else as lowercase hex; -g prints a few
//     attributes on stdout and "password: " and the password on stderr
//     (0x-hex and/or quoted, as print_buffer does). A missing item:
//     "security: SecKeychainSearchCopyNext: The specified item could not
//     be found in the keychain." and status -25300, which as a process
//     exit status is 44.
//   - add-generic-password (getopt ":a:c:C:D:G:j:l:s:p:w:X:UAT:h"): -a and
//     -s required (else status 2 and the usage text); -w or -p the
//     password, -X it as hex (an odd number of digits zero-padded in
//     front; a non-hex digit: "Unable to convert password data (-X must
//     specify valid hex digits)" and status 2); -U updates an existing
//     item, without it an existing item gives "security:
//     SecKeychainItemCreateFromContent (<default>): The specified item
//     already exists in the keychain." and -25299 (exit status 45). -w
//     without a value would prompt on the terminal: here status 1.
//   - Process exit status: the command's status & 0xff, as exit(3) does.
//
// Not copied: every other command and option, keychains other than one
// per directory, access control, prompts, and the item attributes besides
// service and account.
//
// # Test hooks (not real behaviour)
//
//   - $LLM_AGENT_TEST_KEYCHAIN_DELAY (a Go duration): each invocation
//     sleeps that long before it exits, so that a watcher of
//     /proc/*/cmdline has time to see it.
//   - $LLM_AGENT_TEST_KEYCHAIN_FAULT=locked: every find and add fails
//     with errSecInteractionNotAllowed (-25308, exit status 36), the
//     status Claude Code treats as a locked Keychain; =mangle: an add
//     stores the password with its last byte changed; =drop: an add
//     exits 0 and writes nothing (a lying security on PATH).
package keychaintest

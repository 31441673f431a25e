// Package keychain reads and writes Claude Code's login in the macOS
// login Keychain, through Apple's security(1) tool, for
// llm-agent-client import --keychain and the agent's write-back of
// rotated tokens.
//
// On a Mac, Claude Code keeps its login not in ~/.claude/.credentials.json
// but in a generic-password item of the login Keychain: service
// "Claude Code-credentials" (ServiceName), account the user's name
// (AccountName), password the same JSON the Linux file holds.
//
// # Why the security tool
//
// Claude Code reads the item with the security tool (and writes its
// Keychain items with it, as far as its bundle shows), so the item's
// access control trusts that tool; a program that wrote the item through
// the Keychain API itself would put its own code signature in the item's
// partition list, and Claude Code would then meet a Keychain prompt at
// every start (reported by ai-usagebar's users, issue 148). The tool is looked up on PATH at each call (on a Mac it
// is /usr/bin/security; tests put a stand-in, package keychaintest, first
// on PATH).
//
// # Reading
//
// Read runs security find-generic-password -a ACCOUNT -s SERVICE -w: no
// secret in argv. The tool prints the password on stdout, followed by a
// newline, as it is when every byte is printable ASCII (isprint in the C
// locale) and as lowercase hex otherwise (pretty-printed JSON's newlines,
// a non-ASCII character); Read undoes the hex. Exit status 44 is
// errSecItemNotFound (-25300 as a process status): not logged in.
//
// # Writing, without the secret in argv
//
// add-generic-password takes the password only in argv (-w or -X), where
// any process of the machine can read it. Write therefore runs security -i
// (interactive mode) and writes the one line
//
//	add-generic-password -U -a "ACCOUNT" -s "SERVICE" -X "HEX"
//
// to its stdin through a pipe. It is the line that the bundle of Claude
// Code 2.1.328 builds for the Keychain items whose writing could be read
// in it (its API key, its device keys; the OAuth login's writer is in
// compiled bytecode there), sent to security -i the same way, except that
// Claude Code falls back to -X in argv above 4032 characters. What the
// tool does with the line was read in Apple's source,
// apple-oss-distributions/Security, SecurityTool/macOS/security.c and
// readline.c (Security-61901, identical in this respect back to
// Security-57740):
//
//   - readline reads into a 4096-byte buffer: at most 4095 characters, and
//     a longer line is cut there, its rest read as the next command (whose
//     name the tool then echoes in "unknown command" on stderr). A line of
//     exactly 4095 characters leaves its newline behind, which reads as an
//     empty command whose status 0 replaces the real one. A last line
//     without a newline is dropped at end of input. So a line is at most
//     MaxLine (4094) characters and always ends in a newline; longer
//     content is refused, not sent.
//   - split_line splits on isspace; an argument may be quoted with " or ',
//     and a backslash takes the next character literally, inside quotes or
//     not; at most 32 arguments. Write quotes service and account with "
//     and refuses names with a " or \ or any byte outside printable ASCII,
//     which the tokenizer could read otherwise than meant.
//   - the tool's exit status in -i mode is the status of the last command
//     it ran (an OSStatus such as -25299 becomes 45 as a process status);
//     a failing command also prints "NAME: returned STATUS" on stderr.
//
// Whatever the status says, Write reads the item back and compares it, in
// constant time, with what it wrote: the item holds the new content, or
// Write fails. The -i session's stderr can hold a piece of the line (the
// unknown-command echo), so only what looks like none is ever quoted in an
// error.
//
// # Errors and memory
//
// Errors are one line and never hold a value from the item. Output is read
// into one buffer sized in advance and hex is decoded in place, the rest
// wiped; every buffer that held the item or the line is wiped before the
// call returns, except the result of Read, which the caller wipes.
package keychain

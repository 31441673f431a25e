package service

import (
	"encoding/xml"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// The kinds --print-service takes.
const (
	KindSystemd       = "systemd"        // llm-agent.service
	KindSystemdSocket = "systemd-socket" // llm-agent.socket
	KindLaunchd       = "launchd"        // the LaunchAgent plist
)

// Kinds lists the kinds in the order the help names them.
var Kinds = []string{KindSystemd, KindSystemdSocket, KindLaunchd}

// Names of the units and of the LaunchAgent.
const (
	ServiceUnit = "llm-agent.service"
	SocketUnit  = "llm-agent.socket"
	// Label is the LaunchAgent's label, after the module path.
	Label = "com.github.llm-agent.llm-agent"
)

// PackagedProgram is where distribution packages install llm-agent; pass
// it as Program when printing units for /usr/lib/systemd/user.
const PackagedProgram = "/usr/bin/llm-agent"

// SystemdSock is the use socket under systemd, in the unit's own terms
// (%t is $XDG_RUNTIME_DIR); the management socket is beside it.
const SystemdSock = "%t/llm-agent/agent.sock"

// ShellSystemdSock is SystemdSock as a shell finds it.
const ShellSystemdSock = "$XDG_RUNTIME_DIR/llm-agent/agent.sock"

// LaunchdDir is the socket directory on macOS, relative to the home
// directory: per user, private (0700, made by Install), out of reach of
// the /tmp cleaner, and short enough for sun_path's 104 bytes.
const LaunchdDir = ".llm-agent"

// LaunchdSock is the use socket on macOS for the user whose home is home.
func LaunchdSock(home string) string { return filepath.Join(home, LaunchdDir, "agent.sock") }

// launchdLog is where launchd sends the agent's output (the eval lines
// and any refusal to start; never a secret).
func launchdLog(home string) string { return filepath.Join(home, "Library", "Logs", "llm-agent.log") }

// CheckProgram checks that program, the llm-agent a unit runs, is a path
// a unit can name.
func CheckProgram(program string) error {
	if !filepath.IsAbs(program) {
		return fmt.Errorf("the program a unit runs must be an absolute path, not %q", program)
	}
	if oddText(program) {
		return fmt.Errorf("the program path %q holds a control character, a byte that is not UTF-8 or a Unicode noncharacter, which units cannot name; install llm-agent elsewhere", program)
	}
	return nil
}

// oddText reports whether s cannot be written into a unit or a plist as it
// is: a control character (a newline would start a directive), bytes that
// are not UTF-8 (systemd drops the line, XML turns them into U+FFFD), or a
// noncharacter (systemd refuses it, XML has no U+FFFE).
func oddText(s string) bool {
	return !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool {
		return r < 0x20 || r == 0x7f || r >= 0xfdd0 && r <= 0xfdef || r&0xfffe == 0xfffe
	})
}

// Systemd is llm-agent.service for program. The agent runs in the
// foreground on the socket unit's path, and takes both sockets from it.
func Systemd(program string) (string, error) {
	if err := CheckProgram(program); err != nil {
		return "", err
	}
	if strings.ContainsAny(program, `"'\`) {
		return "", fmt.Errorf("systemd cannot run a program whose path holds quotes or backslashes (%q); install llm-agent elsewhere or name it with --service-program", program)
	}
	return `# llm-agent.service: written by llm-agent --print-service systemd.
# Started by llm-agent.socket: systemctl --user enable --now llm-agent.socket
[Unit]
Description=llm-agent: LLM provider credentials in memory, as ssh-agent holds SSH keys
Documentation=man:llm-agent(1)
Requires=llm-agent.socket
After=llm-agent.socket

[Service]
Type=exec
# The socket unit passes both sockets; -a must name the same path.
ExecStart=` + execArg(program) + ` -D -a ` + SystemdSock + `
Restart=on-failure
# No audit log by default; add one with systemctl --user edit llm-agent.service.
# Secrets are mlocked: the agent raises RLIMIT_MEMLOCK's soft limit to the
# hard one, which a user unit cannot raise. NoNewPrivileges is harmless
# (Debian's setgid ssh-agent then runs without its group; it still makes
# itself undumpable). PrivateTmp and the mount-namespace directives are left
# out: in a user unit they need user namespaces, which some systems disable.
NoNewPrivileges=yes
UMask=0077

[Install]
Also=llm-agent.socket
`, nil
}

// SystemdSocket is llm-agent.socket: the use socket and the management
// socket beside it, private from the first instant. FileDescriptorName
// names every socket of a unit alike, so the agent tells them apart by
// path.
func SystemdSocket() string {
	return `# llm-agent.socket: written by llm-agent --print-service systemd-socket.
[Unit]
Description=llm-agent sockets (LLM_AUTH_SOCK and its management socket)
Documentation=man:llm-agent(1)

[Socket]
ListenStream=` + SystemdSock + `
ListenStream=` + SystemdSock + adminSuffix + `
FileDescriptorName=` + FDName + `
SocketMode=0600
DirectoryMode=0700
RemoveOnStop=yes

[Install]
WantedBy=sockets.target
`
}

// adminSuffix is agent.AdminSuffix, kept here so that the unit text does
// not depend on the agent package.
const adminSuffix = ".admin"

// execArg is program as ExecStart='s first word: specifiers (%) doubled,
// quoted when it holds blanks. systemd expands no variables in that word,
// and refuses quotes and backslashes in it (Systemd refuses them first).
func execArg(program string) string {
	s := strings.ReplaceAll(program, "%", "%%")
	if strings.ContainsAny(s, " \t") {
		return `"` + s + `"`
	}
	return s
}

// Launchd is the LaunchAgent plist for program and the user whose home is
// home. launchd expands neither ~ nor variables, so the paths are the
// user's own. KeepAlive restarts the agent when it fails, not when it was
// stopped on purpose (SIGTERM, exit 0).
func Launchd(program, home string) (string, error) {
	if err := CheckProgram(program); err != nil {
		return "", err
	}
	if !filepath.IsAbs(home) {
		return "", errors.New("the home directory must be an absolute path; set HOME")
	}
	if oddText(home) {
		return "", fmt.Errorf("the home directory %q holds a character a plist cannot hold; set HOME to a plainer path", home)
	}
	var b strings.Builder
	str := func(indent, s string) {
		b.WriteString(indent + "<string>")
		xml.EscapeText(&b, []byte(s))
		b.WriteString("</string>\n")
	}
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<!-- llm-agent's LaunchAgent: see llm-agent(1) -->
<plist version="1.0">
<dict>
	<key>Label</key>
`)
	str("\t", Label)
	b.WriteString("\t<key>ProgramArguments</key>\n\t<array>\n")
	for _, arg := range []string{program, "-D", "-a", LaunchdSock(home)} {
		str("\t\t", arg)
	}
	b.WriteString(`	</array>
	<key>RunAtLoad</key>
	<true/>
	<key>KeepAlive</key>
	<dict>
		<key>SuccessfulExit</key>
		<false/>
	</dict>
	<key>StandardOutPath</key>
`)
	str("\t", launchdLog(home))
	b.WriteString("\t<key>StandardErrorPath</key>\n")
	str("\t", launchdLog(home))
	b.WriteString("</dict>\n</plist>\n")
	return b.String(), nil
}

// Print is the text of kind for program; home is needed for launchd.
func Print(kind, program, home string) (string, error) {
	switch kind {
	case KindSystemd:
		return Systemd(program)
	case KindSystemdSocket:
		return SystemdSocket(), nil
	case KindLaunchd:
		return Launchd(program, home)
	}
	return "", fmt.Errorf("--print-service %q: want one of %s", kind, strings.Join(Kinds, ", "))
}

package agentcmd

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/llm-agent/llm-agent/protocol"
)

// sshUsage is OpenSSH 9.2's ssh-agent usage text, printed as it prints it.
const sshUsage = `usage: ssh-agent [-c | -s] [-Dd] [-a bind_address] [-E fingerprint_hash]
                 [-O option] [-P allowed_providers] [-t life]
       ssh-agent [-a bind_address] [-E fingerprint_hash] [-O option]
                 [-P allowed_providers] [-t life] command [arg ...]
       ssh-agent [-c | -s] -k
`

// names are the environment variables the agent prints, reads (-k) and
// sets for a command: llm-agent's own, or ssh-agent's when invoked under
// that name.
type names struct {
	sock, pid string
}

var (
	llmNames = names{sock: "LLM_AUTH_SOCK", pid: "LLM_AGENT_PID"}
	sshNames = names{sock: "SSH_AUTH_SOCK", pid: "SSH_AGENT_PID"}
)

// usageError is a command line ssh-agent answers with its usage text.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// fatalError is a command line ssh-agent refuses with fatal(), exit 255.
// Like OpenSSH's log lines at start, its message ends with CR LF; so do
// the messages of ssh-agent's getopt.
type fatalError struct{ msg string }

func (e *fatalError) Error() string { return e.msg }

// agentOptions are the -O options of OpenSSH 9.2's ssh-agent.
var agentOptions = map[string]bool{"allow-remote-pkcs11": true, "no-restrict-websafe": true}

// fingerprintHashes are the names ssh-agent -E accepts (ssh_digest_alg_by_name,
// case-insensitive).
var fingerprintHashes = map[string]bool{"md5": true, "sha1": true, "sha256": true, "sha384": true, "sha512": true}

// parseSSH parses an ssh-agent command line as OpenSSH 9.2 does (getopt
// "cDdksE:a:O:P:t:", options before the command), so that llm-agent under
// the name ssh-agent accepts exactly what ssh-agent accepts.
func parseSSH(args []string) (*options, error) {
	o := &options{names: sshNames}
	usage := func(msg string) error { return &usageError{msg} }
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		if len(a) < 2 || a[0] != '-' {
			break
		}
		for j := 1; j < len(a); j++ {
			c := a[j]
			if strings.IndexByte("EaOPt", c) >= 0 {
				val := a[j+1:]
				if val == "" {
					if i+1 >= len(args) {
						return nil, usage(fmt.Sprintf("option requires an argument -- %c\r", c))
					}
					i++
					val = args[i]
				}
				if err := o.setSSHValue(c, val); err != nil {
					return nil, err
				}
				break
			}
			switch c {
			case 'c':
				if o.sh {
					return nil, usage("")
				}
				o.csh = true
			case 's':
				if o.csh {
					return nil, usage("")
				}
				o.sh = true
			case 'D':
				if o.debug || o.fg {
					return nil, usage("")
				}
				o.fg = true
			case 'd':
				if o.debug || o.fg {
					return nil, usage("")
				}
				o.debug = true
			case 'k':
				o.kill = true
			default:
				return nil, usage(fmt.Sprintf("unknown option -- %c\r", c))
			}
		}
	}
	if i < len(args) {
		o.command = args[i:]
	}
	if len(o.command) > 0 && (o.csh || o.sh || o.kill || o.fg || o.debug) {
		return nil, usage("")
	}
	return o, nil
}

// setSSHValue sets the option c of ssh-agent to val, checked as ssh-agent
// checks it.
func (o *options) setSSHValue(c byte, val string) error {
	switch c {
	case 'a':
		o.bind = val
	case 't':
		if _, err := protocol.ParseLifetime(val); err != nil {
			return &usageError{"Invalid lifetime"}
		}
		o.life = val
	case 'E':
		if !fingerprintHashes[strings.ToLower(val)] {
			return &fatalError{fmt.Sprintf("Invalid hash algorithm %q", val)}
		}
		o.hash = val
	case 'O':
		if !agentOptions[val] {
			return &fatalError{"Unknown -O option"}
		}
		o.agentOpts = append(o.agentOpts, val)
	case 'P':
		if o.providers != "" {
			return &fatalError{"-P option already specified"}
		}
		o.providers = val
	}
	return nil
}

// sshParseFailure reports a bad ssh-agent command line as ssh-agent does
// and returns its exit status: 1 after the usage text, 255 for a fatal.
func sshParseFailure(err error, stderr io.Writer) int {
	var fatal *fatalError
	if errors.As(err, &fatal) {
		fmt.Fprintf(stderr, "%s\r\n", fatal.msg)
		return 255
	}
	if msg := err.Error(); msg != "" {
		fmt.Fprintln(stderr, msg)
	}
	fmt.Fprint(stderr, sshUsage)
	return 1
}

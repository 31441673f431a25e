package clientcmd

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/llm-agent/llm-agent/internal/authfile"
	"github.com/llm-agent/llm-agent/internal/completion"
	"github.com/llm-agent/llm-agent/internal/peercred"
	"github.com/llm-agent/llm-agent/internal/providers"
	"github.com/llm-agent/llm-agent/internal/proxy"
	"github.com/llm-agent/llm-agent/protocol"
)

// ownerNotConnected says in plain words what an unreachable agent means on
// a server, keeping the reason: exit 2, one line.
func ownerNotConnected(err error) error {
	var na *noAgentError
	var owe *peercred.OwnerError
	if errors.As(err, &na) && !errors.As(err, &owe) {
		return &noAgentError{fmt.Errorf("the owner is not connected: %v", na.err)}
	}
	return err
}

// execFlags defines exec's flags: -p's values go to provs.
func execFlags(e *env, provs *[]string) *pflag.FlagSet {
	fs := flagSet(e, "exec", "[-p PROVIDER]... -- CMD [ARG...]")
	fs.StringArrayVarP(provs, "provider", "p", nil, "set the variables for `PROVIDER`'s credential (repeatable; default: every credential the agent lists)")
	fs.SetInterspersed(false)
	completion.SetKind(fs, "provider", completion.Providers)
	return fs
}

// runExec runs a command with the credentials in the variables its tools
// read. The command replaces this process (execve), so signals and the
// exit status are its own.
func runExec(e *env, args []string) error {
	var provs []string
	fs := execFlags(e, &provs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	argv := fs.Args()
	if len(argv) == 0 {
		return errors.New("want a command: exec [-p PROVIDER]... -- CMD [ARG...]")
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return fmt.Errorf("%s: %v", argv[0], unwrapExecErr(err))
	}
	c, err := connect(e)
	if err != nil {
		return ownerNotConnected(err)
	}
	defer c.Close()
	names, explicit := provs, len(provs) > 0
	if !explicit {
		entries, err := c.List()
		if err != nil {
			return err
		}
		for _, x := range entries {
			names = append(names, x.Provider)
		}
		if len(names) == 0 {
			return errors.New("the agent holds no credentials (add one on the laptop: llm-agent-client add PROVIDER)")
		}
	}
	vars, err := credentialVars(e, c, names, explicit)
	if err != nil {
		return err
	}
	c.Close()
	env := withVars(os.Environ(), nil, vars)
	for i := range vars {
		vars[i] = proxy.Var{}
	}
	err = syscall.Exec(path, argv, env)
	return fmt.Errorf("%s: %v", argv[0], err)
}

func unwrapExecErr(err error) error {
	var ee *exec.Error
	if errors.As(err, &ee) {
		return ee.Err
	}
	return err
}

// credentialVars gets each provider's credential and returns the variables
// that carry it: the provider's key or token variables (providers.ExecVars),
// for a wellknown credential the variable its "key" names, and
// OPENCODE_AUTH_CONTENT with every credential as an opencode auth.json
// entry (OAuth ones without their refresh token, which the agent never
// hands out). A provider that was not asked for by name is skipped, with
// a warning, when the agent refuses it.
func credentialVars(e *env, c *protocol.Client, names []string, explicit bool) ([]proxy.Var, error) {
	var vars []proxy.Var
	var entries [][]byte
	defer func() {
		for _, b := range entries {
			clear(b)
		}
	}()
	seen := map[string]bool{}
	for _, name := range names {
		if seen[name] {
			continue
		}
		seen[name] = true
		cred, err := c.Get(name, requester())
		if err != nil {
			var f *protocol.Failure
			if !explicit && errors.As(err, &f) {
				fmt.Fprintf(e.stderr, "llm-agent-client: exec: skipping %s: %s\n", name, oneLine(err))
				continue
			}
			return nil, ownerNotConnected(fmt.Errorf("%s: %w", name, err))
		}
		v, varsErr := varsFor(cred)
		entry, jsonErr := authfile.MarshalHandout(toEntry(cred))
		cred.Wipe()
		if varsErr != nil {
			return nil, varsErr
		}
		vars = append(vars, v...)
		if jsonErr == nil {
			entries = append(entries, wrapNamed(name, entry))
			clear(entry)
		}
	}
	if len(entries) > 0 {
		var b strings.Builder
		b.WriteByte('{')
		for i, ent := range entries {
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(ent)
		}
		b.WriteByte('}')
		vars = append(vars, proxy.Var{Name: "OPENCODE_AUTH_CONTENT", Value: b.String()})
	}
	if len(vars) == 0 {
		return nil, errors.New("none of the credentials could be had")
	}
	return vars, nil
}

// varsFor returns the variables for one credential.
func varsFor(cred *protocol.Credential) ([]proxy.Var, error) {
	var vars []proxy.Var
	switch cred.Kind {
	case protocol.KindWellKnown:
		name := string(cred.Value(protocol.FieldKey))
		if err := checkCredentialVar(name); err != nil {
			return nil, fmt.Errorf("%s: %w", cred.Provider, err)
		}
		return []proxy.Var{{Name: name, Value: string(cred.Value(protocol.FieldToken))}}, nil
	case protocol.KindOAuth:
		tok := cred.Value(protocol.FieldAccess)
		if len(tok) == 0 {
			return nil, nil
		}
		for _, n := range providers.ExecVars(cred.Provider, cred.Kind) {
			vars = append(vars, proxy.Var{Name: n, Value: string(tok)})
		}
	case protocol.KindAPI:
		for _, n := range providers.ExecVars(cred.Provider, cred.Kind) {
			vars = append(vars, proxy.Var{Name: n, Value: string(cred.Value(protocol.FieldKey))})
		}
	}
	return vars, nil
}

// wrapNamed returns "name":entry, a member of an opencode auth.json.
func wrapNamed(name string, entry []byte) []byte {
	key := strconv.Quote(name)
	out := make([]byte, 0, len(key)+1+len(entry))
	out = append(out, key...)
	out = append(out, ':')
	return append(out, entry...)
}

// withVars returns environ without the variables named in drop or set by
// vars, then vars.
func withVars(environ, drop []string, vars []proxy.Var) []string {
	gone := map[string]bool{}
	for _, n := range drop {
		gone[n] = true
	}
	for _, v := range vars {
		gone[v.Name] = true
	}
	out := make([]string, 0, len(environ)+len(vars))
	for _, kv := range environ {
		if k, _, _ := strings.Cut(kv, "="); !gone[k] {
			out = append(out, kv)
		}
	}
	for _, v := range vars {
		out = append(out, v.Name+"="+v.Value)
	}
	return out
}

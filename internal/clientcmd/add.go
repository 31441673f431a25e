package clientcmd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/llm-agent/llm-agent/internal/authfile"
	"github.com/llm-agent/llm-agent/internal/hostkeys"
	"github.com/llm-agent/llm-agent/protocol"
)

// constraintFlags are the options add and import share.
type constraintFlags struct {
	life       string
	confirm    bool
	localOnly  bool
	hosts      []string
	knownHosts []string
	perDay     uint64
}

func (c *constraintFlags) register(fsAdd interface {
	StringVarP(p *string, name, shorthand, value, usage string)
	BoolVarP(p *bool, name, shorthand string, value bool, usage string)
	BoolVar(p *bool, name string, value bool, usage string)
	Uint64Var(p *uint64, name string, value uint64, usage string)
	StringArrayVarP(p *[]string, name, shorthand string, value []string, usage string)
}) {
	fsAdd.StringVarP(&c.life, "lifetime", "t", "", "drop the credential after `life` (90, 30m, 8h, 1h30m)")
	fsAdd.BoolVarP(&c.confirm, "confirm", "c", false, "ask the owner (askpass) before each use")
	fsAdd.BoolVar(&c.localOnly, "local-only", false, "never show or hand out the credential on a forwarded connection")
	fsAdd.Uint64Var(&c.perDay, "max-tokens-per-day", 0, "relayed requests only (proxy --relay), at most `N` tokens a day, as the provider counts them; no get hands the credential out")
	fsAdd.StringArrayVarP(&c.hosts, "host", "h", nil, "only usable through `host` (repeatable; 'a>b' for a hop chain); keys from known_hosts")
	fsAdd.StringArrayVarP(&c.knownHosts, "known-hosts", "H", nil, "read host keys from `file` instead of ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts")
}

func (c *constraintFlags) constraints() (protocol.Constraints, error) {
	var out protocol.Constraints
	if c.life != "" {
		d, err := protocol.ParseLifetime(c.life)
		if err != nil {
			return out, err
		}
		out.Lifetime = uint32(d.Seconds())
	}
	out.Confirm = c.confirm
	out.LocalOnly = c.localOnly
	out.TokensPerDay = c.perDay
	if len(c.hosts) == 0 {
		return out, nil
	}
	files := c.knownHosts
	if len(files) == 0 {
		files = hostkeys.DefaultFiles()
	}
	entries, err := hostkeys.ReadFiles(files)
	if err != nil {
		return out, err
	}
	for _, spec := range c.hosts {
		var chain protocol.Chain
		for _, h := range strings.Split(spec, ">") {
			h = strings.TrimSpace(h)
			if h == "" {
				return out, fmt.Errorf("-h %q: empty host in chain", spec)
			}
			keys := hostkeys.Lookup(entries, h)
			if len(keys) == 0 {
				return out, fmt.Errorf("-h %q: no host key for %q in %s", spec, h, strings.Join(files, ", "))
			}
			chain = append(chain, protocol.Hop{Host: h, Keys: keys})
		}
		out.Destinations = append(out.Destinations, chain)
	}
	return out, nil
}

// addOptions are add's flags.
type addOptions struct {
	cf                     constraintFlags
	asJSON                 bool
	wellknown, fromCommand string
}

// addFlags defines add's flags into o.
func addFlags(e *env, o *addOptions) *pflag.FlagSet {
	fs := flagSet(e, "add", "[-c] [-t life] [-h host]... [--local-only] [--max-tokens-per-day N] [--json | --wellknown NAME] [--from-command COMMAND] PROVIDER")
	o.cf.register(fs)
	fs.BoolVar(&o.asJSON, "json", false, "read an opencode auth.json entry ({\"type\":...}) from stdin instead of a bare secret")
	fs.StringVar(&o.wellknown, "wellknown", "", "add a wellknown credential whose variable is `NAME`; the token is the secret")
	fs.StringVar(&o.fromCommand, "from-command", "", "the agent runs `COMMAND` (sh -c, on the laptop) for the secret when a get needs it, and again after -t; stdin is not read")
	return fs
}

func runAdd(e *env, args []string) error {
	var o addOptions
	fs := addFlags(e, &o)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("want exactly one PROVIDER (the secret is read from stdin or a prompt, or printed by --from-command's COMMAND; never from the command line)")
	}
	provider := fs.Arg(0)
	if err := protocol.ValidName(provider); err != nil {
		return err
	}
	if o.asJSON && o.wellknown != "" {
		return errors.New("--json and --wellknown are mutually exclusive")
	}
	if fs.Changed("from-command") && o.asJSON {
		return errors.New("--json and --from-command are mutually exclusive (the command prints the secret alone)")
	}
	if fs.Changed("from-command") && strings.TrimSpace(o.fromCommand) == "" {
		return errors.New("--from-command: empty command")
	}
	if o.wellknown != "" {
		// exec would refuse it on the server; say so now.
		if err := checkCredentialVar(o.wellknown); err != nil {
			return fmt.Errorf("--wellknown: %w", err)
		}
	}
	cons, err := o.cf.constraints()
	if err != nil {
		return err
	}
	var cred protocol.Credential
	switch {
	case fs.Changed("from-command"):
		// No secret here: the agent runs the command when a get needs it.
		cons.Command = o.fromCommand
		cred = protocol.Credential{Provider: provider, Kind: protocol.KindAPI}
		if o.wellknown != "" {
			cred = protocol.Credential{Provider: provider, Kind: protocol.KindWellKnown,
				Fields: []protocol.Field{{Name: protocol.FieldKey, Value: []byte(o.wellknown)}}}
		}
	case o.asJSON:
		data, err := readSecret(e, "")
		if err != nil {
			return err
		}
		ent, err := parseEntry(provider, data)
		clear(data)
		if err != nil {
			return err
		}
		cred = fromEntry(ent)
	default:
		what := "API key"
		if o.wellknown != "" {
			what = "token"
		}
		secret, err := readSecret(e, fmt.Sprintf("Enter %s for %s: ", what, provider))
		if err != nil {
			return err
		}
		if len(secret) == 0 {
			return errors.New("empty secret")
		}
		if o.wellknown != "" {
			cred = protocol.Credential{Provider: provider, Kind: protocol.KindWellKnown, Fields: []protocol.Field{
				{Name: protocol.FieldKey, Value: []byte(o.wellknown)}, {Name: protocol.FieldToken, Value: secret}}}
		} else {
			cred = protocol.Credential{Provider: provider, Kind: protocol.KindAPI, Fields: []protocol.Field{{Name: protocol.FieldKey, Value: secret}}}
		}
	}
	defer cred.Wipe()
	req := &protocol.AddRequest{Credential: cred, Constraints: cons}
	if err := req.Validate(); err != nil {
		return err
	}
	c, err := connect(e)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Add(req); err != nil {
		return err
	}
	source := ""
	if cons.Command != "" {
		source = fmt.Sprintf(", from command %q", cons.Command)
	}
	fmt.Fprintf(e.stderr, "Credential added: %s (%s%s)%s\n", provider, cred.Kind, source, describeConstraints(cons))
	return nil
}

func describeConstraints(c protocol.Constraints) string {
	var parts []string
	if c.Lifetime != 0 {
		parts = append(parts, fmt.Sprintf("lifetime %ds", c.Lifetime))
	}
	if c.Confirm {
		parts = append(parts, "confirm")
	}
	if c.LocalOnly {
		parts = append(parts, "local-only")
	}
	for _, ch := range c.Destinations {
		parts = append(parts, "host "+ch.String())
	}
	if c.TokensPerDay != 0 {
		parts = append(parts, fmt.Sprintf("relay only, %d tokens a day", c.TokensPerDay))
	}
	if len(parts) == 0 {
		return ""
	}
	return ": " + strings.Join(parts, ", ")
}

// readSecret reads a secret from the terminal without echo, or from stdin
// when it is not a terminal (one value; trailing newlines are dropped).
func readSecret(e *env, prompt string) ([]byte, error) {
	if f, ok := e.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		if prompt == "" {
			return nil, errors.New("--json wants the entry on stdin, not a terminal")
		}
		fmt.Fprint(e.stderr, prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return nil, fmt.Errorf("reading secret: %w", err)
		}
		return b, nil
	}
	b, err := io.ReadAll(io.LimitReader(e.stdin, protocol.MaxValueLen+1))
	if err != nil {
		clear(b)
		return nil, fmt.Errorf("reading stdin: %w", err)
	}
	if len(b) > protocol.MaxValueLen {
		clear(b)
		return nil, fmt.Errorf("stdin holds more than %d bytes", protocol.MaxValueLen)
	}
	return bytes.TrimRight(b, "\r\n"), nil
}

// fromEntry converts an auth-file entry into a wire credential; the values
// are shared, so wiping either wipes both.
func fromEntry(ent authfile.Entry) protocol.Credential {
	c := protocol.Credential{Provider: ent.Provider, Kind: ent.Kind}
	for _, name := range []string{protocol.FieldKey, protocol.FieldRefresh, protocol.FieldAccess, protocol.FieldExpires,
		protocol.FieldAccountID, protocol.FieldEnterpriseURL, protocol.FieldToken} {
		if v, ok := ent.Fields[name]; ok {
			c.Fields = append(c.Fields, protocol.Field{Name: name, Value: v})
		}
	}
	if len(ent.Extra) > 0 {
		c.Fields = append(c.Fields, protocol.Field{Name: protocol.FieldExtra, Value: ent.Extra})
	}
	return c
}

// toEntry converts a wire credential into an auth-file entry (sharing
// values).
func toEntry(c *protocol.Credential) authfile.Entry {
	ent := authfile.Entry{Provider: c.Provider, Kind: c.Kind, Fields: map[string][]byte{}}
	for _, f := range c.Fields {
		if f.Name == protocol.FieldExtra {
			ent.Extra = f.Value
			continue
		}
		ent.Fields[f.Name] = f.Value
	}
	return ent
}

// wrapEntry returns {"provider": entry}, the shape of an auth.json file
// and of OPENCODE_AUTH_CONTENT, in one fresh buffer for the caller to wipe.
func wrapEntry(provider string, entry []byte) []byte {
	key := strconv.Quote(provider)
	out := make([]byte, 0, len(entry)+len(key)+3)
	out = append(out, '{')
	out = append(out, key...)
	out = append(out, ':')
	out = append(out, entry...)
	return append(out, '}')
}

// parseEntry reads one opencode auth.json entry by wrapping it in a file
// of one provider.
func parseEntry(provider string, data []byte) (authfile.Entry, error) {
	wrapped := wrapEntry(provider, data)
	defer clear(wrapped)
	format, entries, err := authfile.Parse("stdin", wrapped)
	if err != nil {
		return authfile.Entry{}, err
	}
	if format != authfile.FormatOpencode || len(entries) != 1 {
		for i := range entries {
			entries[i].Wipe()
		}
		return authfile.Entry{}, errors.New("stdin: want one opencode auth.json entry such as {\"type\":\"api\",\"key\":\"...\"}")
	}
	return entries[0], nil
}

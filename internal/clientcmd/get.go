package clientcmd

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/llm-agent/llm-agent/internal/authfile"
	"github.com/llm-agent/llm-agent/internal/completion"
	"github.com/llm-agent/llm-agent/protocol"
)

// getFlags defines get's flags: --format's value goes to format.
func getFlags(e *env, format *string) *pflag.FlagSet {
	fs := flagSet(e, "get", "[--format raw|json|opencode|header] PROVIDER")
	fs.StringVarP(format, "format", "f", "raw", "output `format`: raw (the bare secret), json (the opencode auth.json entry), opencode ({provider: entry}), header (an HTTP header line)")
	completion.SetValues(fs, "format", getFormats()...)
	return fs
}

// getFormats are get --format's values.
func getFormats() []string { return []string{"raw", "json", "opencode", "header"} }

func runGet(e *env, args []string) error {
	var format string
	fs := getFlags(e, &format)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("want exactly one PROVIDER")
	}
	if !slices.Contains(getFormats(), format) {
		return fmt.Errorf("unknown format %q (want raw, json, opencode or header)", format)
	}
	provider := fs.Arg(0)
	c, err := connect(e)
	if err != nil {
		return ownerNotConnected(err)
	}
	defer c.Close()
	cred, err := c.Get(provider, requester())
	if err != nil {
		return err
	}
	defer cred.Wipe()
	out, err := render(cred, format)
	if err != nil {
		return err
	}
	defer clear(out)
	if f, ok := e.stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		out = append(out, '\n')
	}
	_, err = e.stdout.Write(out)
	return err
}

// secretOf returns the value a tool wants: the API key, the OAuth access
// token, or the wellknown token.
func secretOf(c *protocol.Credential) ([]byte, error) {
	var v []byte
	switch c.Kind {
	case protocol.KindAPI:
		v = c.Value(protocol.FieldKey)
	case protocol.KindOAuth:
		v = c.Value(protocol.FieldAccess)
	case protocol.KindWellKnown:
		v = c.Value(protocol.FieldToken)
	}
	if len(v) == 0 {
		return nil, fmt.Errorf("the %s credential for %s holds no usable secret", c.Kind, c.Provider)
	}
	return v, nil
}

// render formats a credential; the result is a fresh buffer for the caller
// to wipe.
func render(c *protocol.Credential, format string) ([]byte, error) {
	switch format {
	case "raw":
		v, err := secretOf(c)
		if err != nil {
			return nil, err
		}
		return append([]byte(nil), v...), nil
	case "header":
		v, err := secretOf(c)
		if err != nil {
			return nil, err
		}
		// The line goes into curl -H and the like: a secret with a
		// control character (CR, LF) would add header lines of its own.
		for _, b := range v {
			if b < 0x20 || b == 0x7f {
				return nil, fmt.Errorf("the %s credential for %s holds a control character; refusing to print it as a header line", c.Kind, c.Provider)
			}
		}
		name := "Authorization: Bearer "
		if c.Kind == protocol.KindAPI && strings.HasPrefix(c.Provider, "anthropic") {
			name = "x-api-key: "
		}
		return append([]byte(name), v...), nil
	case "json", "opencode":
		entry, err := authfile.MarshalHandout(toEntry(c))
		if err != nil {
			return nil, err
		}
		if format == "json" {
			return entry, nil
		}
		out := wrapEntry(c.Provider, entry)
		clear(entry)
		return out, nil
	}
	return nil, fmt.Errorf("unknown format %q", format)
}

// requester describes who is asking: the program that ran us (the tool
// that wants the credential), our working directory and host. The agent
// shows it, marked as reported by the requester.
func requester() *protocol.Requester { return requesterFor(os.Getppid()) }

// requesterFor describes process ppid as the requester.
func requesterFor(ppid int) *protocol.Requester {
	r := &protocol.Requester{UID: uint32(os.Getuid())}
	r.PID = uint32(ppid)
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", ppid)); err == nil {
		r.Exe = exe
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", ppid)); err == nil {
		if i := strings.IndexByte(string(b), 0); i >= 0 {
			b = b[:i]
		}
		r.Argv0 = string(b)
	}
	r.Cwd, _ = os.Getwd()
	r.Hostname, _ = os.Hostname()
	for _, s := range []*string{&r.Exe, &r.Argv0, &r.Cwd, &r.Hostname} {
		*s = printable(*s)
	}
	return r
}

// printable keeps a reported string within the protocol's text rules.
func printable(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) || r == utf8.RuneError {
			r = '?'
		}
		b.WriteRune(r)
		if b.Len() > protocol.MaxTextLen-4 {
			break
		}
	}
	return b.String()
}

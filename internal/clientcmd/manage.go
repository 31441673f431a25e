package clientcmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/llm-agent/llm-agent/protocol"
)

// listOptions are list's flags.
type listOptions struct {
	asJSON, names bool
}

// listFlags defines list's flags into o.
func listFlags(e *env, o *listOptions) *pflag.FlagSet {
	fs := flagSet(e, "list", "[--json | --names]")
	fs.BoolVar(&o.asJSON, "json", false, "print a JSON array")
	fs.BoolVar(&o.names, "names", false, "print only the providers' names, one a line (nothing when the agent holds none), for scripts and shell completion")
	return fs
}

func runList(e *env, args []string) error {
	var o listOptions
	fs := listFlags(e, &o)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return errors.New("list takes no arguments")
	}
	if o.asJSON && o.names {
		return errors.New("--json and --names are mutually exclusive")
	}
	entries, err := listEntries(e)
	if err != nil {
		return err
	}
	if o.asJSON {
		return listJSON(e.stdout, entries)
	}
	if o.names {
		return listNames(e.stdout, entries)
	}
	if len(entries) == 0 {
		fmt.Fprintln(e.stdout, "The agent holds no credentials.")
		return &reported{errors.New("no credentials")}
	}
	return listTable(e.stdout, entries, time.Now())
}

// listEntries asks the agent for its credentials' entries.
func listEntries(e *env) ([]protocol.Entry, error) {
	c, err := connect(e)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.List()
}

// listNames prints one provider name a line. Names are checked by the
// agent (protocol.ValidName); a line with anything else is left out, so
// that a script or a shell never reads a control character.
func listNames(w io.Writer, entries []protocol.Entry) error {
	var b strings.Builder
	for _, x := range entries {
		if protocol.ValidName(x.Provider) == nil {
			b.WriteString(x.Provider + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// listJSON prints entries as list --json does: an array, empty when the
// agent holds nothing, with times in RFC 3339 UTC.
func listJSON(w io.Writer, entries []protocol.Entry) error {
	type jsonEntry struct {
		Provider      string   `json:"provider"`
		Kind          string   `json:"kind"`
		Added         string   `json:"added"`
		Expires       string   `json:"expires,omitempty"`
		Confirm       bool     `json:"confirm"`
		LocalOnly     bool     `json:"localOnly"`
		Destinations  []string `json:"destinations,omitempty"`
		AccessExpires string   `json:"accessExpires,omitempty"`
		HasRefresh    bool     `json:"hasRefresh,omitempty"`
		NeedsLogin    bool     `json:"needsLogin,omitempty"`
		Command       string   `json:"command,omitempty"`
		HasValue      bool     `json:"hasValue,omitempty"`
		ValueExpires  string   `json:"valueExpires,omitempty"`
		Attention     string   `json:"attention,omitempty"`
		TokensPerDay  uint64   `json:"maxTokensPerDay,omitempty"`
		TokensToday   uint64   `json:"tokensToday,omitempty"`
	}
	out := make([]jsonEntry, 0, len(entries))
	for _, x := range entries {
		j := jsonEntry{Provider: x.Provider, Kind: x.Kind, Added: time.Unix(x.Added, 0).UTC().Format(time.RFC3339),
			Confirm: x.Confirm, LocalOnly: x.LocalOnly, Destinations: x.Destinations, HasRefresh: x.HasRefresh, NeedsLogin: x.NeedsLogin,
			Command: x.Command, HasValue: x.HasValue, Attention: x.Attention, TokensPerDay: x.TokensPerDay, TokensToday: x.TokensToday}
		if x.Expires != 0 {
			j.Expires = time.Unix(x.Expires, 0).UTC().Format(time.RFC3339)
		}
		if x.AccessExpires != 0 {
			j.AccessExpires = time.UnixMilli(x.AccessExpires).UTC().Format(time.RFC3339)
		}
		if x.ValueExpires != 0 {
			j.ValueExpires = time.Unix(x.ValueExpires, 0).UTC().Format(time.RFC3339)
		}
		out = append(out, j)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// listTable prints one line an entry: provider, kind, the time left as of
// now, and its constraints and token state.
func listTable(w io.Writer, entries []protocol.Entry, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, x := range entries {
		life := "forever"
		if x.Expires != 0 {
			life = left(time.Unix(x.Expires, 0).Sub(now)) + " left"
		}
		var cons []string
		if x.Confirm {
			cons = append(cons, "confirm")
		}
		if x.LocalOnly {
			cons = append(cons, "local-only")
		}
		for _, d := range x.Destinations {
			cons = append(cons, "host "+d)
		}
		if x.AccessExpires != 0 {
			d := time.UnixMilli(x.AccessExpires).Sub(now)
			if d > 0 {
				cons = append(cons, "access token expires in "+left(d))
			} else {
				cons = append(cons, "access token expired")
			}
		}
		if x.HasRefresh {
			cons = append(cons, "refresh token held by the agent")
		}
		if x.NeedsLogin {
			cons = append(cons, "NEEDS A NEW LOGIN (see get)")
		}
		if x.Command != "" {
			cons = append(cons, fmt.Sprintf("from command %q", x.Command), commandState(x, now))
		}
		if x.TokensPerDay != 0 {
			cons = append(cons, fmt.Sprintf("relay only, %d of %d tokens used today", x.TokensToday, x.TokensPerDay))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", x.Provider, x.Kind, life, strings.Join(cons, ", "))
	}
	return tw.Flush()
}

// commandState says what the agent holds of a credential from a command.
func commandState(x protocol.Entry, now time.Time) string {
	switch {
	case x.Attention != "":
		return "needs attention: " + x.Attention + " (see get)"
	case x.HasValue && x.ValueExpires != 0:
		return "value held, forgotten in " + left(time.Unix(x.ValueExpires, 0).Sub(now))
	case x.HasValue:
		return "value held until removed"
	}
	return "no value held: the next get runs the command"
}

func left(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	return d.Round(time.Second).String()
}

// removeFlags defines remove's flags: --all goes to all.
func removeFlags(e *env, all *bool) *pflag.FlagSet {
	fs := flagSet(e, "remove", "PROVIDER... | --all")
	fs.BoolVarP(all, "all", "a", false, "remove every credential")
	return fs
}

func runRemove(e *env, args []string) error {
	var all bool
	fs := removeFlags(e, &all)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if all == (fs.NArg() > 0) {
		return errors.New("name the PROVIDERs to remove, or --all")
	}
	c, err := connect(e)
	if err != nil {
		return err
	}
	defer c.Close()
	if all {
		n, err := c.RemoveAll()
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "All credentials removed (%d).\n", n)
		return nil
	}
	var failed error
	for _, p := range fs.Args() {
		if err := c.Remove(p); err != nil {
			fmt.Fprintf(e.stderr, "llm-agent-client: remove: %s: %v\n", p, oneLine(err))
			if failed == nil || exitCode(err) > exitCode(failed) {
				failed = err
			}
			continue
		}
		fmt.Fprintf(e.stderr, "Credential removed: %s\n", p)
	}
	if failed != nil {
		return &reported{failed}
	}
	return nil
}

func runLock(e *env, args []string) error   { return lockCmd(e, args, true) }
func runUnlock(e *env, args []string) error { return lockCmd(e, args, false) }

func lockCmd(e *env, args []string, lock bool) error {
	name := "unlock"
	if lock {
		name = "lock"
	}
	fs := flagSet(e, name, "") // lock and unlock have no flags
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%s takes no arguments; the passphrase is read from a prompt or stdin", name)
	}
	c, err := connect(e)
	if err != nil {
		return err
	}
	defer c.Close()
	pass, err := readPassphrase(e, lock)
	if err != nil {
		return err
	}
	defer clear(pass)
	if lock {
		err = c.Lock(pass)
	} else {
		err = c.Unlock(pass)
	}
	if errors.Is(err, protocol.ErrLockFailed) {
		// SSH_AGENT_FAILURE says no more; the agent logged why. On a
		// use-only connection that is the reason, so say it.
		if st, serr := c.Status(); serr == nil && st.Forwarded {
			return &protocol.Failure{Code: protocol.CodeNotPermitted, Message: fmt.Sprintf(
				"%s is not permitted on LLM_AUTH_SOCK (use-only); %s the agent on the laptop, where llm-agent-client uses the admin socket beside it", name, name)}
		}
		return fmt.Errorf("failed to %s agent", name)
	}
	if err != nil {
		return err
	}
	if lock {
		fmt.Fprintln(e.stderr, "Agent locked.")
	} else {
		fmt.Fprintln(e.stderr, "Agent unlocked.")
	}
	return nil
}

// readPassphrase prompts (twice when locking) on a terminal, or reads one
// line from stdin.
func readPassphrase(e *env, confirm bool) ([]byte, error) {
	f, ok := e.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		b, err := io.ReadAll(io.LimitReader(e.stdin, 4097))
		if err != nil {
			return nil, fmt.Errorf("reading passphrase: %w", err)
		}
		if len(b) > 4096 {
			clear(b)
			return nil, errors.New("passphrase longer than 4096 bytes")
		}
		if i := strings.IndexAny(string(b), "\r\n"); i >= 0 {
			clear(b[i:])
			b = b[:i]
		}
		return b, nil
	}
	prompt := "Enter lock password: "
	if !confirm {
		prompt = "Enter lock password: "
	}
	fmt.Fprint(e.stderr, prompt)
	p1, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(e.stderr)
	if err != nil {
		return nil, fmt.Errorf("reading passphrase: %w", err)
	}
	if !confirm {
		return p1, nil
	}
	fmt.Fprint(e.stderr, "Again: ")
	p2, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(e.stderr)
	defer clear(p2)
	if err != nil {
		clear(p1)
		return nil, fmt.Errorf("reading passphrase: %w", err)
	}
	if string(p1) != string(p2) {
		clear(p1)
		return nil, errors.New("passwords do not match")
	}
	return p1, nil
}

func runStatus(e *env, args []string) error {
	fs := flagSet(e, "status", "") // no flags
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := connect(e)
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := c.Status()
	if err != nil {
		return err
	}
	yes := map[bool]string{true: "yes", false: "no"}
	sock := e.getenv("LLM_AUTH_SOCK")
	if sock == "" {
		sock = e.getenv("SSH_AUTH_SOCK")
	}
	fmt.Fprintf(e.stdout, "agent: %s (llm-agent %s)\nlocked: %s\nuse-only: %s\ncredentials: %d\n",
		sock, st.Version, yes[st.Locked], yes[st.Forwarded], st.Count)
	return nil
}

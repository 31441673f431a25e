package clientcmd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/llm-agent/llm-agent/internal/authfile"
	"github.com/llm-agent/llm-agent/internal/completion"
	"github.com/llm-agent/llm-agent/internal/keychain"
	"github.com/llm-agent/llm-agent/protocol"
)

const importArgs = "[-c] [-t life] [-h host]... [--local-only] [--write-back] [--provider P]... FILE | --keychain [--keychain-service NAME]"

// keychainReadTimeout bounds reading the Keychain item; a Mac may ask the
// user first whether security may read it.
const keychainReadTimeout = 2 * time.Minute

// importSource is where import found its credentials.
type importSource struct {
	name    string // for errors: the file as given, or the Keychain item
	from    string // for the report: "claude file x.json", `macOS Keychain item "..."`
	format  authfile.Format
	entries []authfile.Entry
	file    string                 // the file's path; "" for the Keychain
	item    *protocol.KeychainItem // the Keychain item; nil for a file
}

// importOptions are import's flags.
type importOptions struct {
	cf                      constraintFlags
	providers               []string
	writeBack, fromKeychain bool
	service                 string
}

// importFlags defines import's flags into o.
func importFlags(e *env, o *importOptions) *pflag.FlagSet {
	fset := flagSet(e, "import", importArgs)
	o.cf.register(fset)
	fset.StringArrayVar(&o.providers, "provider", nil, "import only `P` (repeatable)")
	fset.BoolVar(&o.writeBack, "write-back", false, "when the agent refreshes an OAuth login and gets a new refresh token, write it back to FILE (or the Keychain item)")
	fset.BoolVar(&o.fromKeychain, "keychain", false, "read Claude Code's login from the macOS Keychain instead of a FILE")
	fset.StringVar(&o.service, "keychain-service", "", "the Keychain item's service `NAME` (implies --keychain; default: Claude Code's, from CLAUDE_CONFIG_DIR)")
	completion.SetKind(fset, "provider", completion.Known)
	return fset
}

func runImport(e *env, args []string) error {
	var o importOptions
	fset := importFlags(e, &o)
	if err := fset.Parse(args); err != nil {
		return err
	}
	o.fromKeychain = o.fromKeychain || o.service != ""
	cons, err := o.cf.constraints()
	if err != nil {
		return err
	}
	var src *importSource
	switch {
	case o.fromKeychain && fset.NArg() != 0:
		return errors.New("--keychain reads Claude Code's login from the macOS Keychain: give no FILE")
	case o.fromKeychain:
		src, err = keychainSource(e, o.service, o.writeBack)
	case fset.NArg() != 1:
		return errors.New("want exactly one FILE (opencode auth.json, ~/.claude/.credentials.json or ~/.codex/auth.json), or --keychain")
	default:
		src, err = fileSource(e, fset.Arg(0), o.writeBack)
	}
	if err != nil {
		return err
	}
	entries := src.entries
	defer func() {
		for i := range entries {
			entries[i].Wipe()
		}
	}()
	entries, err = authfile.Filter(entries, o.providers)
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		if src.item != nil {
			return fmt.Errorf("%s holds no credentials (logged out? log in with claude, then /login)", src.name)
		}
		return fmt.Errorf("%s holds no credentials", src.name)
	}
	creds := make([]protocol.Credential, len(entries))
	for i := range entries {
		creds[i] = fromEntry(entries[i])
		if err := creds[i].Validate(); err != nil {
			return fmt.Errorf("%s: %s: %v", src.name, entries[i].Provider, err)
		}
	}
	c, err := connect(e)
	if err != nil {
		return err
	}
	defer c.Close()
	// Nothing half-imported: if the agent refuses one, take back the
	// ones this import added that were not there before.
	before := map[string]bool{}
	if list, err := c.List(); err == nil {
		for _, x := range list {
			before[x.Provider] = true
		}
	}
	var wb *protocol.WriteBack
	if o.writeBack && src.file != "" {
		abs, err := filepath.Abs(src.file)
		if err != nil {
			return err
		}
		wb = &protocol.WriteBack{Path: abs, Format: string(src.format)}
	}
	var added []string
	for i := range creds {
		cons := cons
		if creds[i].Kind == protocol.KindOAuth && o.writeBack { // nothing to rotate in the others
			cons.WriteBack = wb
			cons.Keychain = src.item
		}
		if err := c.Add(&protocol.AddRequest{Credential: creds[i], Constraints: cons}); err != nil {
			for _, p := range added {
				if !before[p] {
					c.Remove(p)
				}
			}
			return fmt.Errorf("%s: %s: %w", src.name, creds[i].Provider, err)
		}
		added = append(added, creds[i].Provider)
	}
	for i, p := range added {
		more := ""
		if o.writeBack && creds[i].Kind == protocol.KindOAuth {
			more = ", rotated tokens written back"
		}
		fmt.Fprintf(e.stderr, "Credential added: %s (from %s%s)%s\n", p, src.from, more, describeConstraints(cons))
	}
	return nil
}

// fileSource reads a credential file. A Claude Code file that does not
// exist, on a machine with the security tool (a Mac, where Claude Code
// keeps its login in the Keychain), is read from the Keychain instead.
func fileSource(e *env, path string, writeBack bool) (*importSource, error) {
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) && filepath.Base(path) == ".credentials.json" && keychain.Available() {
		fmt.Fprintf(e.stderr, "llm-agent-client: import: %s does not exist; reading Claude Code's login from the macOS Keychain instead\n", path)
		return keychainSource(e, "", writeBack)
	}
	format, entries, err := authfile.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return &importSource{name: path, from: fmt.Sprintf("%s file %s", format, path), format: format, entries: entries, file: path}, nil
}

// keychainSource reads Claude Code's login from its Keychain item: the
// service given, else the one Claude Code uses with the client's
// CLAUDE_CONFIG_DIR; the account Claude Code files it under for this user.
func keychainSource(e *env, service string, writeBack bool) (*importSource, error) {
	if service == "" {
		service = keychain.ServiceName(keychain.ConfigDir(e.getenv))
	}
	name := e.getenv("USER")
	if name == "" {
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
	}
	item := protocol.KeychainItem{Service: service, Account: keychain.AccountName(name)}
	if writeBack {
		// The agent will write it through security -i: refuse now what it
		// would refuse then.
		if err := item.Check(); err != nil {
			return nil, fmt.Errorf("--write-back: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), keychainReadTimeout)
	defer cancel()
	data, err := keychain.Read(ctx, item)
	if err != nil {
		return nil, err
	}
	defer clear(data)
	entries, err := keychain.ParseLogin(item, data)
	if err != nil {
		return nil, err
	}
	return &importSource{
		name:    fmt.Sprintf("the macOS Keychain item %q (account %q)", item.Service, item.Account),
		from:    fmt.Sprintf("macOS Keychain item %q", item.Service),
		format:  authfile.FormatClaude,
		entries: entries,
		item:    &item,
	}, nil
}

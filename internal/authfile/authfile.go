package authfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/llm-agent/llm-agent/internal/jsonread"
	"github.com/llm-agent/llm-agent/protocol"
)

// Format is the kind of file Parse found.
type Format string

const (
	FormatOpencode Format = "opencode" // ~/.local/share/opencode/auth.json
	FormatClaude   Format = "claude"   // ~/.claude/.credentials.json
	FormatCodex    Format = "codex"    // ~/.codex/auth.json
)

// CodexAPIKeyProvider is the provider of the API key entry of a Codex file
// that also holds OAuth tokens (which get provider "openai").
const CodexAPIKeyProvider = "openai-api-key"

// ExtraTopLevelKey is the Extra member holding the top-level members of a
// Claude or Codex file that are not part of any credential, so that writing
// the file back can put them where they came from.
const ExtraTopLevelKey = "x-llm-agent-top-level"

// MaxFileSize is the largest file ReadFile accepts; real files are a few KiB.
const MaxFileSize = 1 << 20

var (
	// ErrTooLarge is wrapped by ReadFile errors for files over MaxFileSize.
	ErrTooLarge = errors.New("file too large")
	// ErrNotRegular is wrapped by ReadFile errors for directories, devices,
	// FIFOs, sockets, ...
	ErrNotRegular = errors.New("not a regular file")
)

// Entry is one credential read from a file. Secret values are []byte so
// callers can wipe them.
type Entry struct {
	Provider string // "anthropic", "openai", "openrouter", "github-copilot", ...
	Kind     string // protocol.KindAPI, protocol.KindOAuth or protocol.KindWellKnown
	// Fields holds the known fields by their opencode auth.json names:
	// "key", "refresh", "access", "expires" (decimal epoch ms as ASCII; "0"
	// means unknown), "accountId", "enterpriseUrl", "token".
	Fields map[string][]byte
	// Extra is a compact JSON object holding every member of the entry that
	// is not understood, so nothing is dropped silently; nil when none.
	Extra []byte
}

// Wipe zeroes every secret byte slice (all Fields values and Extra) and
// drops them from e. Copies of e share the zeroed slices.
func (e *Entry) Wipe() {
	for _, v := range e.Fields {
		clear(v)
	}
	clear(e.Extra)
	e.Fields = nil
	e.Extra = nil
}

func wipeAll(es []Entry) {
	for i := range es {
		es[i].Wipe()
	}
}

// fieldSpec describes one known field of a kind, and where a file keeps it.
type fieldSpec struct {
	name     string
	number   bool   // a JSON number (expires); otherwise a string
	optional bool   // may be absent or null
	key      string // the member's name in the file when it is not name
}

func (f fieldSpec) member() string {
	if f.key != "" {
		return f.key
	}
	return f.name
}

// kindFields lists the fields of kind in opencode's order. It is a function,
// not a table, so there is no package-level mutable state.
func kindFields(kind string) ([]fieldSpec, bool) {
	switch kind {
	case protocol.KindAPI:
		return []fieldSpec{{name: protocol.FieldKey}}, true
	case protocol.KindOAuth:
		return []fieldSpec{
			{name: protocol.FieldRefresh},
			{name: protocol.FieldAccess},
			{name: protocol.FieldExpires, number: true},
			{name: protocol.FieldAccountID, optional: true},
			{name: protocol.FieldEnterpriseURL, optional: true},
		}, true
	case protocol.KindWellKnown:
		return []fieldSpec{{name: protocol.FieldKey}, {name: protocol.FieldToken}}, true
	}
	return nil, false
}

// Parse detects the format of data and returns its entries sorted by
// provider. name is used in errors only (normally the file path). Errors
// are one line, start with name, give the position or JSON path of the
// problem and never contain a value from data. On error the format is ""
// and no entries are returned.
func Parse(name string, data []byte) (Format, []Entry, error) {
	d := &decoder{name: displayName(name), data: data}
	root, err := jsonread.Parse(data)
	if err != nil {
		return "", nil, d.syntaxErr(err)
	}
	if root.Kind != jsonread.Object {
		return "", nil, fmt.Errorf("%s: want a JSON object at the top level, got %s", d.name, root.Kind)
	}
	format := detect(root)
	var entries []Entry
	switch format {
	case FormatClaude:
		entries, err = d.claude(root)
	case FormatCodex:
		entries, err = d.codex(root)
	default:
		entries, err = d.opencode(root)
	}
	if err != nil {
		wipeAll(entries)
		return "", nil, err
	}
	slices.SortFunc(entries, func(a, b Entry) int { return strings.Compare(a.Provider, b.Provider) })
	return format, entries, nil
}

// detect picks the format from the top-level keys.
func detect(root jsonread.Value) Format {
	if _, ok := root.Get("claudeAiOauth"); ok {
		return FormatClaude
	}
	_, tokens := root.Get("tokens")
	_, key := root.Get("OPENAI_API_KEY")
	if !tokens && !key {
		return FormatOpencode
	}
	// An opencode provider could be called "tokens"; its value has "type".
	for _, m := range root.Members {
		if _, ok := m.Val.Get("type"); ok && m.Val.Kind == jsonread.Object {
			return FormatOpencode
		}
	}
	return FormatCodex
}

// ReadFile reads the file at path and parses it. It refuses anything that is
// not a regular file and files larger than MaxFileSize.
func ReadFile(path string) (Format, []Entry, error) {
	data, err := readCapped(path, MaxFileSize)
	if err != nil {
		return "", nil, err
	}
	defer clear(data)
	return Parse(path, data)
}

// readCapped reads a regular file of at most max bytes, reading no more than
// max+1 bytes whatever the file is.
func readCapped(path string, max int64) ([]byte, error) {
	name := displayName(path)
	// Stat first so devices are never opened (opening some has side effects).
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, unwrapPathError(err))
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w (%s)", name, ErrNotRegular, describeMode(st.Mode()))
	}
	// openFlags makes open return at once even if path was swapped for a FIFO.
	f, err := os.OpenFile(path, os.O_RDONLY|openFlags, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, unwrapPathError(err))
	}
	defer f.Close()
	// Check again on the open file: path may have changed since the Stat.
	st, err = f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, unwrapPathError(err))
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w (%s)", name, ErrNotRegular, describeMode(st.Mode()))
	}
	if st.Size() > max {
		return nil, fmt.Errorf("%s: %w (%d bytes, the limit is %d)", name, ErrTooLarge, st.Size(), max)
	}
	buf := make([]byte, st.Size()+1) // +1 to see EOF, or growth past the size
	n := 0
	for {
		if n == len(buf) {
			if int64(n) > max {
				break
			}
			nb := make([]byte, min(2*int64(len(buf)), max+1))
			copy(nb, buf)
			clear(buf)
			buf = nb
		}
		m, err := f.Read(buf[n:])
		n += m
		if err == io.EOF {
			break
		}
		if err != nil {
			clear(buf)
			return nil, fmt.Errorf("%s: %w", name, unwrapPathError(err))
		}
	}
	if int64(n) > max {
		clear(buf)
		return nil, fmt.Errorf("%s: %w (more than %d bytes)", name, ErrTooLarge, max)
	}
	return buf[:n], nil
}

// unwrapPathError drops the *fs.PathError layer, whose message repeats the
// path we already put in front, keeping the operation and the cause.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

func describeMode(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	}
	return "irregular file"
}

// Filter keeps the entries whose Provider is in providers, in their order;
// all of them when providers is empty. It fails naming the first requested
// provider that has no entry. The result shares the entries' slices.
func Filter(entries []Entry, providers []string) ([]Entry, error) {
	if len(providers) == 0 {
		return slices.Clone(entries), nil
	}
	have := make(map[string]bool, len(entries))
	for _, e := range entries {
		have[e.Provider] = true
	}
	for _, p := range providers {
		if !have[p] {
			if len(entries) == 0 {
				return nil, fmt.Errorf("authfile: no credential for provider %q: the file has no credentials", p)
			}
			names := make([]string, 0, len(entries))
			for _, e := range entries {
				names = append(names, strconv.Quote(e.Provider))
			}
			return nil, fmt.Errorf("authfile: no credential for provider %q (the file has %s)", p, strings.Join(names, ", "))
		}
	}
	want := make(map[string]bool, len(providers))
	for _, p := range providers {
		want[p] = true
	}
	var out []Entry
	for _, e := range entries {
		if want[e.Provider] {
			out = append(out, e)
		}
	}
	return out, nil
}

// displayName makes name safe to start a one-line error with.
func displayName(name string) string {
	if name == "" {
		return "<input>"
	}
	for _, r := range name {
		if !strconv.IsPrint(r) {
			return strconv.Quote(name)
		}
	}
	return name
}

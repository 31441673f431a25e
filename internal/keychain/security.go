package keychain

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/llm-agent/llm-agent/internal/authfile"
	"github.com/llm-agent/llm-agent/internal/jsonread"
	"github.com/llm-agent/llm-agent/protocol"
)

// DefaultTimeout bounds one WriteBack (three runs of the tool) when the
// caller's context has no earlier deadline.
const DefaultTimeout = 10 * time.Second

// MaxLine is the longest line, newline excluded, that security -i runs
// as one command (see the package comment).
const MaxLine = 4094

// maxOutput bounds what Read accepts from the tool: the item's password,
// maybe as hex, and a newline.
const maxOutput = authfile.MaxFileSize

// maxStderr is how much of the tool's stderr is kept.
const maxStderr = 4096

// Exit statuses of the tool: OSStatus codes as a process status (& 0xff).
const (
	exitNotFound       = 44 // errSecItemNotFound, -25300
	exitNoInteraction  = 36 // errSecInteractionNotAllowed, -25308: locked, no prompt possible
	exitNoDefault      = 37 // errSecNoDefaultKeychain, -25307
	exitNoSuchKeychain = 50 // errSecNoSuchKeychain, -25294
)

// ErrNotFound is matched (errors.Is) by the error of Read for an item that
// does not exist: Claude Code is not logged in there.
var ErrNotFound = errors.New("no such Keychain item")

// NotFoundError says which item was not found and what to do.
type NotFoundError struct{ Item protocol.KeychainItem }

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("no Claude Code login in the macOS Keychain (item %q, account %q): log in with claude, then /login",
		e.Item.Service, e.Item.Account)
}

// Is makes errors.Is(err, ErrNotFound) true.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// describe names item in errors and logs.
func describe(item protocol.KeychainItem) string {
	return fmt.Sprintf("Keychain item %q (account %q)", item.Service, item.Account)
}

// Available reports whether the security tool is on PATH (a Mac).
func Available() bool {
	_, err := tool()
	return err == nil
}

// tool finds the security tool on PATH now.
func tool() (string, error) {
	path, err := exec.LookPath("security")
	if err != nil {
		return "", errors.New("the macOS security tool is not on PATH (it is /usr/bin/security on a Mac)")
	}
	return path, nil
}

// Read returns the JSON that item holds, in a buffer the caller must wipe.
// A missing item gives a *NotFoundError.
func Read(ctx context.Context, item protocol.KeychainItem) ([]byte, error) {
	out, status, stderr, err := runTool(ctx, nil, maxOutput, "find-generic-password", "-a", item.Account, "-s", item.Service, "-w")
	if err != nil {
		return nil, fmt.Errorf("reading the %s: %w", describe(item), err)
	}
	if status != 0 {
		clear(out)
		if status == exitNotFound {
			return nil, &NotFoundError{Item: item}
		}
		return nil, fmt.Errorf("reading the %s: %s", describe(item), failure("find-generic-password", status, stderr))
	}
	data, err := decode(out)
	if err != nil {
		clear(out)
		return nil, fmt.Errorf("the %s %v", describe(item), err)
	}
	return data, nil
}

// runTool runs the security tool with args, input (if not nil) written
// on its stdin through a pipe of our own, and returns up to maxOut bytes
// of its stdout (none when maxOut is 0) in one buffer sized in advance,
// its exit status and a first line of its stderr that is safe to show.
// The pipes are ours (*os.File), so the child reads and writes them
// directly, with no copying goroutine and no buffer left unwiped; reads
// stop at ctx's deadline even if something else holds a pipe open.
func runTool(ctx context.Context, input []byte, maxOut int, args ...string) (out []byte, status int, stderr string, err error) {
	path, err := tool()
	if err != nil {
		return nil, 0, "", err
	}
	var parent, child []*os.File // our ends, and the child's
	defer func() {
		for _, f := range append(parent, child...) {
			f.Close()
		}
	}()
	pipe := func() (r, w *os.File, err error) {
		if r, w, err = os.Pipe(); err == nil {
			deadline, _ := ctx.Deadline()
			r.SetReadDeadline(deadline) // zero: none
		}
		return r, w, err
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.WaitDelay = time.Second
	var inW, outR *os.File
	if input != nil {
		r, w, err := pipe()
		if err != nil {
			return nil, 0, "", err
		}
		parent, child, inW, cmd.Stdin = append(parent, w), append(child, r), w, r
	}
	if maxOut > 0 {
		r, w, err := pipe()
		if err != nil {
			return nil, 0, "", err
		}
		parent, child, outR, cmd.Stdout = append(parent, r), append(child, w), r, w
	}
	errR, errW, err := pipe()
	if err != nil {
		return nil, 0, "", err
	}
	parent, child, cmd.Stderr = append(parent, errR), append(child, errW), errW
	if err := cmd.Start(); err != nil {
		return nil, 0, "", err
	}
	for _, f := range child {
		f.Close()
	}
	child = nil

	errBuf := make([]byte, maxStderr)
	defer clear(errBuf)
	errN := make(chan int, 1)
	go func() { errN <- drain(errR, errBuf) }()
	var werr error
	if inW != nil {
		// The input is far smaller than a pipe's buffer: this write does
		// not wait for the tool. Closing the pipe ends its input.
		_, werr = inW.Write(input)
		inW.Close()
	}
	var buf []byte
	var n int
	if outR != nil {
		buf = make([]byte, maxOut+1)
		n = drain(outR, buf)
	}
	en := <-errN
	waitErr := cmd.Wait()
	switch {
	case ctx.Err() != nil:
		clear(buf)
		return nil, 0, "", errors.New("security did not answer in time")
	case n > maxOut:
		clear(buf)
		return nil, 0, "", fmt.Errorf("security printed more than %d bytes", maxOut)
	}
	if status, err = exitStatus(waitErr); err != nil {
		clear(buf)
		return nil, 0, "", err
	}
	if werr != nil && status == 0 {
		clear(buf)
		return nil, 0, "", fmt.Errorf("writing to security: %w", werr)
	}
	return buf[:n:n], status, firstLine(errBuf[:min(en, len(errBuf))]), nil
}

// drain reads r to its end (or its read deadline) and keeps the first
// len(keep) bytes in keep; it returns how many bytes it read, or
// len(keep)+1 when there were more.
func drain(r *os.File, keep []byte) int {
	n := 0
	for n < len(keep) {
		m, err := r.Read(keep[n:])
		n += m
		if err != nil {
			return n
		}
	}
	var scratch [512]byte
	defer clear(scratch[:])
	for more := false; ; more = true {
		if _, err := r.Read(scratch[:]); err != nil {
			if more {
				return len(keep) + 1
			}
			return n
		}
	}
}

// decode turns the tool's output into the item's JSON, in place: the
// trailing newline goes, and hex (what the tool prints when some byte is
// not printable ASCII) is decoded, the rest of the buffer wiped.
func decode(out []byte) ([]byte, error) {
	if len(out) > 0 && out[len(out)-1] == '\n' {
		out = out[:len(out)-1]
	}
	if len(out) == 0 {
		return nil, errors.New("is empty")
	}
	if isHex(out) {
		n, err := hex.Decode(out, out) // each byte is written behind the two it is read from
		if err != nil {
			return nil, errors.New("holds malformed hex")
		}
		clear(out[n:])
		out = out[:n]
	}
	if i := firstNonSpace(out); i < 0 || out[i] != '{' {
		return nil, errors.New("does not hold a JSON object (not a Claude Code login)")
	}
	return out, nil
}

func isHex(b []byte) bool {
	if len(b)%2 != 0 {
		return false
	}
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func firstNonSpace(b []byte) int {
	for i, c := range b {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return i
		}
	}
	return -1
}

// Write makes item hold data (a new item, or the existing one updated)
// through security -i, then reads the item back: it must hold data.
func Write(ctx context.Context, item protocol.KeychainItem, data []byte) error {
	if err := item.Check(); err != nil {
		return err
	}
	line := commandLine(item, data)
	defer clear(line)
	if len(line)-1 > MaxLine {
		return fmt.Errorf("not written to the %s: its new content of %d bytes makes a command line of %d characters, and security -i reads at most %d",
			describe(item), len(data), len(line)-1, MaxLine)
	}
	_, status, stderr, err := runTool(ctx, line, 0, "-i")
	if err != nil {
		return fmt.Errorf("writing the %s: %w", describe(item), err)
	}
	back, err := Read(ctx, item)
	if err != nil {
		if status != 0 {
			return fmt.Errorf("writing the %s: %s", describe(item), failure("add-generic-password", status, stderr))
		}
		return fmt.Errorf("reading back what was written: %w", err)
	}
	same := subtle.ConstantTimeCompare(back, data) == 1
	clear(back)
	if !same {
		if status != 0 {
			return fmt.Errorf("writing the %s: %s", describe(item), failure("add-generic-password", status, stderr))
		}
		return fmt.Errorf("the %s does not hold what was written to it (security -i exited with status 0)", describe(item))
	}
	return nil
}

// commandLine returns the line that security -i runs to write data into
// item, newline included, in one buffer of its exact size.
func commandLine(item protocol.KeychainItem, data []byte) []byte {
	head := `add-generic-password -U -a "` + item.Account + `" -s "` + item.Service + `" -X "`
	line := make([]byte, len(head)+hex.EncodedLen(len(data))+2)
	n := copy(line, head)
	n += hex.Encode(line[n:], data)
	copy(line[n:], "\"\n")
	return line
}

// safeLine reports whether l holds no run of 16 or more hex digits, the
// form in which an item's content reaches security -i, whose stderr
// echoes a command it could not parse.
func safeLine(l []byte) bool {
	run := 0
	for _, c := range l {
		if '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' {
			if run++; run >= 16 {
				return false
			}
		} else {
			run = 0
		}
	}
	return true
}

// exitStatus returns the status of a tool that ran and exited; err when
// it could not run or was killed.
func exitStatus(err error) (int, error) {
	if err == nil {
		return 0, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.Exited() {
		return ee.ExitCode(), nil
	}
	return 0, fmt.Errorf("security: %w", err)
}

// failure describes a failed run of command in one line: exit status,
// what it usually means, and the tool's own first line of stderr.
func failure(command string, status int, stderr string) string {
	msg := fmt.Sprintf("security %s exited with status %d", command, status)
	switch status {
	case exitNoInteraction:
		msg += " (the login Keychain is locked or cannot ask now: unlock it, e.g. security unlock-keychain, and try again)"
	case exitNoDefault, exitNoSuchKeychain:
		msg += " (this user has no login Keychain)"
	}
	if stderr != "" {
		msg += ": " + stderr
	}
	return msg
}

// WriteBack puts the tokens of u into Claude Code's login in item, as
// authfile.WriteBack does for a file: the item is read, its claudeAiOauth
// tokens replaced (every other byte, e.g. mcpOAuth, kept), written and
// read back. It writes only while the item holds u.Previous as refresh
// token (authfile.ErrEntryChanged otherwise). Errors name the item,
// never a value.
func WriteBack(ctx context.Context, item protocol.KeychainItem, u authfile.Update) error {
	if err := item.Check(); err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	data, err := Read(ctx, item)
	if err != nil {
		return err
	}
	defer clear(data)
	if !hasLogin(data) {
		return fmt.Errorf("the %s: %w", describe(item), authfile.ErrNoEntry)
	}
	out, err := authfile.ReplaceOAuth(authfile.FormatClaude, data, "anthropic", u)
	if err != nil {
		return fmt.Errorf("the %s: %w", describe(item), err)
	}
	defer clear(out)
	return Write(ctx, item, out)
}

// firstLine returns the first non-empty line of b, cut short and with
// control characters replaced, unless safeLine refuses it. Only that line
// becomes a string.
func firstLine(b []byte) string {
	for len(b) > 0 {
		l := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			l, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if l = bytes.TrimSpace(l); len(l) == 0 {
			continue
		}
		if !safeLine(l) {
			return "(its message is not shown: it may quote the item's content)"
		}
		cut := ""
		if len(l) > 200 {
			l, cut = l[:200], "..."
		}
		return strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return '?'
			}
			return r
		}, string(l)) + cut
	}
	return ""
}

// hasLogin reports whether data is a JSON object with a claudeAiOauth
// member. Claude Code's logout leaves the item with other members only
// (mcpOAuth), which authfile would read as an opencode file and refuse.
func hasLogin(data []byte) bool {
	root, err := jsonread.Parse(data)
	if err != nil || root.Kind != jsonread.Object {
		return false
	}
	_, ok := root.Get("claudeAiOauth")
	return ok
}

// ParseLogin reads the login that item's content data holds: the
// anthropic OAuth entry, or none when the item holds no claudeAiOauth
// (logged out, mcpOAuth left). The entries are the caller's to wipe.
func ParseLogin(item protocol.KeychainItem, data []byte) ([]authfile.Entry, error) {
	if !hasLogin(data) {
		if _, err := jsonread.Parse(data); err != nil {
			return nil, fmt.Errorf("the %s does not hold valid JSON", describe(item))
		}
		return nil, nil
	}
	format, entries, err := authfile.Parse(fmt.Sprintf("the %s", describe(item)), data)
	if err != nil {
		return nil, err
	}
	if format != authfile.FormatClaude {
		for i := range entries {
			entries[i].Wipe()
		}
		return nil, fmt.Errorf("the %s does not hold a Claude Code login", describe(item))
	}
	return entries, nil
}

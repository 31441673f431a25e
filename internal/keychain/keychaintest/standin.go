package keychaintest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// EnvDir names the directory that holds the stand-in's items and argv log.
const EnvDir = "LLM_AGENT_TEST_KEYCHAIN"

// Test hooks (see the package comment).
const (
	EnvDelay = "LLM_AGENT_TEST_KEYCHAIN_DELAY"
	EnvFault = "LLM_AGENT_TEST_KEYCHAIN_FAULT"
)

// Files in the EnvDir directory.
const (
	itemsFile = "items.json"
	lockFile  = "items.lock"
	// ArgvLog gets each invocation's argv as a JSON array, one a line.
	ArgvLog = "argv.log"
)

// OSStatus codes the stand-in returns.
const (
	errSecItemNotFound          = -25300
	errSecDuplicateItem         = -25299
	errSecInteractionNotAllowed = -25308
)

// The real tool's limits in interactive mode (security.c).
const (
	maxLineLen = 4096
	maxArgs    = 32
)

// Main runs the stand-in with the process's argv, stdio and environment
// and returns its exit status.
func Main() int {
	return run(os.Args, os.Stdin, os.Stdout, os.Stderr, os.Getenv)
}

// tool is one invocation of the stand-in.
type tool struct {
	dir            string
	stdin          io.Reader
	stdout, stderr io.Writer
	verbose, quiet bool
	fault          string
}

func run(argv []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	dir := getenv(EnvDir)
	if dir == "" {
		fmt.Fprintf(stderr, "security (test stand-in): $%s is not set\n", EnvDir)
		return 1
	}
	if err := logArgv(dir, argv); err != nil {
		fmt.Fprintf(stderr, "security (test stand-in): %v\n", err)
		return 1
	}
	if d, err := time.ParseDuration(getenv(EnvDelay)); err == nil && d > 0 {
		defer time.Sleep(d)
	}
	t := &tool{dir: dir, stdin: stdin, stdout: stdout, stderr: stderr, fault: getenv(EnvFault)}
	g := &getopt{args: argv, stderr: stderr}
	interactive, help := false, false
	bad := g.options("hilp:qvR", func(c byte, _ string) int {
		switch c {
		case 'h':
			help = true
		case 'i', 'p':
			interactive = true
		case 'q':
			t.quiet = true
		case 'v':
			t.verbose = true
		case 'l', 'R':
		default:
			return 2
		}
		return 0
	})
	if bad != 0 {
		return t.usage()
	}
	rest := argv[g.ind:]
	switch {
	case help:
		for _, c := range commands {
			fmt.Fprintf(stdout, "    %-36s %s\n", c.name, c.help)
		}
		return 0
	case len(rest) > 0:
		return exitStatus(t.execute(rest))
	case interactive:
		return exitStatus(t.interactive())
	}
	return t.usage()
}

// exitStatus is what exit(3) makes of a command's status.
func exitStatus(result int) int { return result & 0xff }

func (t *tool) usage() int {
	fmt.Fprintln(t.stdout, "Usage: security [-h] [-i] [-l] [-p prompt] [-q] [-v] [command] [opt ...]")
	return 2
}

// interactive runs the commands of stdin, one a line, as security -i.
func (t *tool) interactive() int {
	in := bufio.NewReader(t.stdin)
	result := 0
	for {
		line, ok := readLine(in)
		if !ok {
			return result
		}
		av := splitLine(line)
		result = t.execute(av)
		if result != 0 && !t.quiet {
			fmt.Fprintf(t.stderr, "%s: returned %d\n", av[0], result)
		}
	}
}

// readLine reads a line as the real readline does into its 4096-byte
// buffer: at most 4095 characters, the rest of a longer line left for the
// next call; false at end of input, a last unterminated line included.
func readLine(in *bufio.Reader) ([]byte, bool) {
	var line []byte
	for len(line) < maxLineLen-1 {
		c, err := in.ReadByte()
		if err != nil {
			return nil, false
		}
		if c == '\n' {
			break
		}
		line = append(line, c)
	}
	return line, true
}

// Parser states of split_line.
const (
	skipWS = iota
	readArg
	readArgEscaped
	quotedArg
	quotedArgEscaped
)

// splitLine splits a command line into arguments with split_line's rules.
func splitLine(line []byte) []string {
	if i := bytes.IndexByte(line, 0); i >= 0 {
		line = line[:i] // the C string ends there
	}
	var args []string
	var cur []byte
	state, quote := skipWS, byte(0)
	for _, c := range line {
		if state == skipWS {
			if isSpace(c) {
				continue
			}
			cur = cur[:0]
			if c == '"' || c == '\'' {
				quote, state = c, quotedArg
				continue
			}
			state = readArg // and this character is read as part of it
		}
		switch state {
		case readArg, quotedArg:
			switch {
			case c == '\\':
				state++ // to the escaped form of the state
			case state == readArg && isSpace(c), state == quotedArg && c == quote:
				args = append(args, string(cur))
				state = skipWS
				if len(args) >= maxArgs {
					return args
				}
			default:
				cur = append(cur, c)
			}
		case readArgEscaped, quotedArgEscaped:
			cur = append(cur, c)
			state--
		}
	}
	if state != skipWS {
		args = append(args, string(cur))
	}
	return args
}

// isSpace is isspace in the C locale; bytes over 0x7f are no space.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// command is a command of the stand-in.
type command struct {
	name, usage, help string
	run               func(t *tool, av []string) int
}

var commands = []command{
	{"add-generic-password", "[-h] [-a account] [-s service] [-w password] [options...] [-A|-T appPath] [keychain]",
		"Add a generic password item.", (*tool).add},
	{"find-generic-password", "[-h] [-a account] [-s service] [options...] [-g] [keychain...]",
		"Find a generic password item.", (*tool).find},
}

// execute runs one command line; a name matches the first command it is a
// prefix of.
func (t *tool) execute(av []string) int {
	if len(av) == 0 {
		return 0
	}
	for _, c := range commands {
		if !strings.HasPrefix(c.name, av[0]) {
			continue
		}
		if t.verbose {
			fmt.Fprint(t.stderr, c.name)
			for _, a := range av[1:] {
				fmt.Fprintf(t.stderr, " %q", a)
			}
			fmt.Fprintln(t.stderr)
		}
		result := c.run(t, av)
		if result == 2 {
			fmt.Fprintf(t.stderr, "Usage: %s %s\n        %s\n", c.name, c.usage, c.help)
		}
		return result
	}
	t.errorf("unknown command %q", av[0])
	return 1
}

func (t *tool) errorf(format string, args ...any) {
	fmt.Fprintf(t.stderr, "security: "+format+"\n", args...)
}

// find is find-generic-password.
func (t *tool) find(av []string) int {
	g := &getopt{args: av, stderr: t.stderr}
	var service, account *string
	password, show := false, false
	if r := g.options("ha:c:C:D:G:j:l:s:wg", func(c byte, arg string) int {
		switch c {
		case 'a':
			account = &arg
		case 's':
			service = &arg
		case 'w':
			password, show = true, true
		case 'g':
			show = true
		case 'c', 'C', 'D', 'G', 'j', 'l':
		default:
			return 2
		}
		return 0
	}); r != 0 {
		return r
	}
	var found *item
	err := t.withItems(func(items *[]item) bool {
		found = lookup(*items, service, account)
		return false
	})
	if err != nil {
		t.errorf("%v", err)
		return 1
	}
	if found == nil {
		t.errorf("SecKeychainSearchCopyNext: The specified item could not be found in the keychain.")
		return errSecItemNotFound
	}
	if show && t.fault == "locked" {
		return errSecInteractionNotAllowed // SecKeychainItemCopyContent fails; nothing printed
	}
	if password {
		if printable(found.Password) {
			t.stdout.Write(found.Password)
		} else {
			fmt.Fprintf(t.stdout, "%x", found.Password)
		}
		fmt.Fprintln(t.stdout)
		return 0
	}
	fmt.Fprintf(t.stdout, "keychain: %q\nversion: 512\nclass: \"genp\"\nattributes:\n", filepath.Join(t.dir, "login.keychain-db"))
	fmt.Fprintf(t.stdout, "    \"acct\"<blob>=%s\n    \"svce\"<blob>=%s\n", printBuffer([]byte(found.Account)), printBuffer([]byte(found.Service)))
	if show {
		fmt.Fprintf(t.stderr, "password: %s\n", printBuffer(found.Password))
	}
	return 0
}

// printable reports whether every byte is isprint in the C locale.
func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// printBuffer renders b as print_buffer does: 0x and uppercase hex when
// some byte is not printable (or is a backslash), then the bytes quoted
// with the others as \ooo, when some byte is printable.
func printBuffer(b []byte) string {
	var hex, ascii bool
	for _, c := range b {
		if c >= ' ' && c <= '~' && c != '\\' {
			ascii = true
		} else {
			hex = true
		}
	}
	var s strings.Builder
	if hex {
		fmt.Fprintf(&s, "0x%X", b)
		if ascii {
			s.WriteByte(' ')
		}
		s.WriteByte(' ')
	}
	if ascii {
		s.WriteByte('"')
		for _, c := range b {
			if c >= ' ' && c <= '~' && c != '\\' {
				s.WriteByte(c)
			} else {
				fmt.Fprintf(&s, "\\%03o", c)
			}
		}
		s.WriteByte('"')
	}
	return s.String()
}

// add is add-generic-password.
func (t *tool) add(av []string) int {
	g := &getopt{args: av, stderr: t.stderr}
	var service, account *string
	var password []byte
	update := false
	if r := g.options(":a:c:C:D:G:j:l:s:p:w:X:UAT:h", func(c byte, arg string) int {
		switch c {
		case 'a':
			account = &arg
		case 's':
			service = &arg
		case 'p', 'w':
			password = []byte(arg)
		case 'X':
			b, ok := convertHex(arg)
			if !ok {
				t.errorf("Unable to convert password data (-X must specify valid hex digits)")
				return 2
			}
			password = b
		case 'U':
			update = true
		case 'c', 'C', 'D', 'G', 'j', 'l', 'A', 'T':
		case ':', '?':
			if g.optopt == 'p' || g.optopt == 'w' {
				t.errorf("the test stand-in cannot prompt for a password")
				return 1
			}
			return 2
		default:
			return 2
		}
		return 0
	}); r != 0 {
		return r
	}
	rest := av[g.ind:]
	if account == nil || service == nil || len(rest) > 1 || len(rest) == 1 && rest[0] == "" {
		return 2
	}
	if t.fault == "locked" {
		t.errorf("SecKeychainItemCreateFromContent (<default>): User interaction is not allowed.")
		return errSecInteractionNotAllowed
	}
	if t.fault == "drop" {
		return 0 // a lying tool: success, nothing written
	}
	if t.fault == "mangle" && len(password) > 0 {
		password[len(password)-1] ^= 1
	}
	result := 0
	err := t.withItems(func(items *[]item) bool {
		if !update && lookup(*items, service, account) != nil {
			result = errSecDuplicateItem
			return false
		}
		upsert(items, *service, *account, password)
		return true
	})
	if err != nil {
		t.errorf("%v", err)
		return 1
	}
	if result == errSecDuplicateItem {
		t.errorf("SecKeychainItemCreateFromContent (<default>): The specified item already exists in the keychain.")
	}
	return result
}

// convertHex decodes hex digits as the real convertHex does: an odd count
// is zero-padded in front.
func convertHex(s string) ([]byte, bool) {
	if len(s)%2 != 0 {
		s = "0" + s
	}
	out := make([]byte, len(s)/2)
	for i := range out {
		hi, ok1 := hexValue(s[2*i])
		lo, ok2 := hexValue(s[2*i+1])
		if !ok1 || !ok2 {
			return nil, false
		}
		out[i] = hi<<4 | lo
	}
	return out, true
}

func hexValue(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// item is a generic-password item of the stand-in's keychain.
type item struct {
	Service  string `json:"service"`
	Account  string `json:"account"`
	Password []byte `json:"password"`
}

// lookup returns the first item with the given service and account; nil
// matches any.
func lookup(items []item, service, account *string) *item {
	for i := range items {
		if it := &items[i]; (service == nil || it.Service == *service) && (account == nil || it.Account == *account) {
			return it
		}
	}
	return nil
}

// upsert sets the password of the item of service and account, adding
// the item when there is none.
func upsert(items *[]item, service, account string, password []byte) {
	if it := lookup(*items, &service, &account); it != nil {
		it.Password = password
		return
	}
	*items = append(*items, item{Service: service, Account: account, Password: password})
}

// withItems runs fn on the items, under an exclusive lock, and saves them
// when fn reports a change.
func (t *tool) withItems(fn func(items *[]item) bool) error {
	return withItems(t.dir, fn)
}

func withItems(dir string, fn func(items *[]item) bool) error {
	lock, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return err
	}
	path := filepath.Join(dir, itemsFile)
	var items []item
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return err
	default:
		if err := json.Unmarshal(data, &items); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	if !fn(&items) {
		return nil
	}
	data, err = json.Marshal(items)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// logArgv appends argv to the argv log.
func logArgv(dir string, argv []string) error {
	line, err := json.Marshal(argv)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, ArgvLog), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.Write(append(line, '\n'))
	return err
}

// getopt parses options as POSIX getopt(3) does: clustered flags, an
// argument attached or in the next word, "--" ending the options, a
// leading ':' in the spec making a missing argument ':' and silent.
type getopt struct {
	args   []string
	ind    int // the next word; starts after the command name
	pos    int // position in args[ind], 0 between words
	optopt byte
	stderr io.Writer
}

// options calls fn with each option and its argument, and stops at the
// first non-zero result of fn, which it returns.
func (g *getopt) options(spec string, fn func(c byte, arg string) int) int {
	for {
		c, arg, done := g.next(spec)
		if done {
			return 0
		}
		if r := fn(c, arg); r != 0 {
			return r
		}
	}
}

// next returns the next option and its argument; done when the options
// end. An unknown option gives '?', a missing argument '?' or ':'.
func (g *getopt) next(spec string) (c byte, arg string, done bool) {
	if g.ind == 0 {
		g.ind = 1
	}
	if g.pos == 0 {
		if g.ind >= len(g.args) {
			return 0, "", true
		}
		w := g.args[g.ind]
		if len(w) < 2 || w[0] != '-' {
			return 0, "", true
		}
		if w == "--" {
			g.ind++
			return 0, "", true
		}
		g.pos = 1
	}
	w := g.args[g.ind]
	c = w[g.pos]
	g.pos++
	silent := strings.HasPrefix(spec, ":")
	i := strings.IndexByte(strings.TrimPrefix(spec, ":"), c)
	if c == ':' || i < 0 {
		g.optopt = c
		g.endWord(w)
		if !silent {
			fmt.Fprintf(g.stderr, "security: illegal option -- %c\n", c)
		}
		return '?', "", false
	}
	spec = strings.TrimPrefix(spec, ":")
	if i+1 >= len(spec) || spec[i+1] != ':' {
		g.endWord(w)
		return c, "", false
	}
	switch {
	case g.pos < len(w):
		arg = w[g.pos:]
	case g.ind+1 < len(g.args):
		g.ind++
		arg = g.args[g.ind]
	default:
		g.optopt = c
		g.ind, g.pos = g.ind+1, 0
		if silent {
			return ':', "", false
		}
		fmt.Fprintf(g.stderr, "security: option requires an argument -- %c\n", c)
		return '?', "", false
	}
	g.ind, g.pos = g.ind+1, 0
	return c, arg, false
}

func (g *getopt) endWord(w string) {
	if g.pos >= len(w) {
		g.ind, g.pos = g.ind+1, 0
	}
}

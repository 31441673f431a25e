package completion

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode"

	"github.com/spf13/pflag"
)

// Kind is what a flag's value or a command's operand is.
type Kind string

// The kinds; None offers nothing (or an Operands' Values).
const (
	None        Kind = ""
	Files       Kind = "files"
	Dirs        Kind = "dirs"
	Providers   Kind = "providers" // the names the running agent lists
	Known       Kind = "known"     // the provider table's names
	CommandLine Kind = "command"   // a command and its arguments: the rest of the line
)

// Annotation keys on a pflag.Flag (see SetKind, SetValues).
const (
	kindKey   = "llm-agent/completion-kind"
	valuesKey = "llm-agent/completion-values"
)

// SetKind says what the value of fs's flag name is. Unannotated flags are
// judged by their placeholder (`file`, `PATH`, `directory`, `PROVIDER`).
func SetKind(fs *pflag.FlagSet, name string, k Kind) {
	if err := fs.SetAnnotation(name, kindKey, []string{string(k)}); err != nil {
		panic(err) // a flag renamed without its annotation: a bug
	}
}

// SetValues gives the only values of fs's flag name.
func SetValues(fs *pflag.FlagSet, name string, values ...string) {
	if err := fs.SetAnnotation(name, valuesKey, values); err != nil {
		panic(err)
	}
}

// Operands say what follows a command's flags.
type Operands struct {
	Kind   Kind
	Values []string // the words to offer when Kind is None
	Many   bool     // more than one operand
}

// Command is a command line's grammar: its flags, its operands, or its
// subcommands (whose Flags and Operands are used instead).
type Command struct {
	Name        string
	Summary     string
	Flags       *pflag.FlagSet
	Operands    Operands
	Subcommands []Command
}

// Candidate is a word to offer, with what it is (shown by zsh and fish).
type Candidate struct {
	Word, Desc string
}

// Sources give the names that are not in the flag sets.
type Sources struct {
	Providers func() []Candidate // the running agent's credentials; called only when needed
	Known     []string           // the provider table's names
}

// Directive tells the shell what to do.
type Directive string

// The directives: offer the candidates, or do the shell's own completion.
const (
	Words     Directive = "words"
	Filenames Directive = "files"
	Dirnames  Directive = "dirs"
	Commands  Directive = "command"
)

// Result is what to complete.
type Result struct {
	Directive  Directive
	Prefix     string // Filenames, Dirnames: the current word's part before the value ("--log=")
	At         int    // Commands: the index in args of the command's first word
	Candidates []Candidate
}

// Complete completes the last of args, the words after the program's
// name; the last is the word under the cursor ("" for a new one).
func Complete(root Command, args []string, src Sources) Result {
	if len(args) == 0 {
		args = []string{""}
	}
	cur := args[len(args)-1]
	before := args[:len(args)-1]
	cmd, base := root, 0
	if len(root.Subcommands) > 0 {
		if len(before) == 0 {
			if strings.HasPrefix(cur, "-") {
				return words(cur, []Candidate{{"--help", "show the commands"}})
			}
			var cs []Candidate
			for _, s := range root.Subcommands {
				cs = append(cs, Candidate{s.Name, s.Summary})
			}
			return words(cur, cs)
		}
		i := slices.IndexFunc(root.Subcommands, func(c Command) bool { return c.Name == before[0] })
		if i < 0 {
			return Result{Directive: Words}
		}
		cmd, base = root.Subcommands[i], 1
	}
	fs := cmd.Flags
	if fs == nil {
		fs = pflag.NewFlagSet(cmd.Name, pflag.ContinueOnError)
	}
	st := walk(cmd, fs, before[base:], base)
	switch {
	case st.commandAt >= 0:
		return Result{Directive: Commands, At: st.commandAt}
	case st.pending != nil:
		return flagValue(st.pending, "", cur, src)
	case !st.dashdash && strings.HasPrefix(cur, "--") && strings.Contains(cur, "="):
		name, val, _ := strings.Cut(cur[2:], "=")
		if f := fs.Lookup(name); f != nil && takesValue(f) {
			return flagValue(f, "--"+name+"=", val, src)
		}
		return Result{Directive: Words}
	case !st.dashdash && strings.HasPrefix(cur, "-"):
		return words(cur, flagCandidates(fs, st.seen))
	}
	return operand(cmd.Operands, st.operands, cur, len(args)-1, src)
}

// state is what the words before the cursor said.
type state struct {
	pending   *pflag.Flag // the word under the cursor is this flag's value
	dashdash  bool
	operands  []string
	commandAt int
	seen      map[string]bool // flags given, by name
}

// walk reads ws (args[base:] before the cursor) as pflag would.
func walk(cmd Command, fs *pflag.FlagSet, ws []string, base int) state {
	st := state{commandAt: -1, seen: map[string]bool{}}
	var expect *pflag.Flag
	for j, w := range ws {
		switch {
		case expect != nil:
			expect = nil
		case st.dashdash || w == "-" || !strings.HasPrefix(w, "-"):
			st.operands = append(st.operands, w)
			if cmd.Operands.Kind == CommandLine {
				// Interspersed flags off: the command starts here.
				st.commandAt = base + j
				return st
			}
		case w == "--":
			st.dashdash = true
		case strings.HasPrefix(w, "--"):
			name, _, hasValue := strings.Cut(w[2:], "=")
			if f := fs.Lookup(name); f != nil {
				st.seen[f.Name] = true
				if takesValue(f) && !hasValue {
					expect = f
				}
			}
		default: // -abc: bool shorthands, the last maybe taking the next word
			for k := 1; k < len(w); k++ {
				f := fs.ShorthandLookup(w[k : k+1])
				if f == nil {
					break
				}
				st.seen[f.Name] = true
				if takesValue(f) {
					if k == len(w)-1 {
						expect = f
					}
					break
				}
			}
		}
	}
	st.pending = expect
	return st
}

func takesValue(f *pflag.Flag) bool { return f.NoOptDefVal == "" }

// repeatable flags may be given again.
func repeatable(f *pflag.Flag) bool {
	t := f.Value.Type()
	return strings.Contains(t, "Array") || strings.Contains(t, "Slice")
}

// flagCandidates are fs's visible flags, long and short, but those given
// that cannot be given twice.
func flagCandidates(fs *pflag.FlagSet, seen map[string]bool) []Candidate {
	var cs []Candidate
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden || seen[f.Name] && !repeatable(f) {
			return
		}
		_, usage := pflag.UnquoteUsage(f)
		cs = append(cs, Candidate{"--" + f.Name, usage})
		if f.Shorthand != "" {
			cs = append(cs, Candidate{"-" + f.Shorthand, usage})
		}
	})
	if fs.Lookup("help") == nil {
		cs = append(cs, Candidate{"--help", "show the options"})
	}
	return cs
}

// flagValue completes val, the value of f after prefix in the word.
func flagValue(f *pflag.Flag, prefix, val string, src Sources) Result {
	if vs, ok := f.Annotations[valuesKey]; ok {
		return words(prefix+val, withPrefix(prefix, plain(vs)))
	}
	k := kindOf(f)
	switch k {
	case Files:
		return Result{Directive: Filenames, Prefix: prefix}
	case Dirs:
		return Result{Directive: Dirnames, Prefix: prefix}
	case Providers, Known:
		return words(prefix+val, withPrefix(prefix, names(k, src)))
	}
	return Result{Directive: Words}
}

// kindOf is f's annotated kind, else the one its placeholder suggests.
func kindOf(f *pflag.Flag) Kind {
	if k, ok := f.Annotations[kindKey]; ok && len(k) == 1 {
		return Kind(k[0])
	}
	name, _ := pflag.UnquoteUsage(f)
	switch strings.ToLower(name) {
	case "file", "path", "files", "paths":
		return Files
	case "dir", "directory":
		return Dirs
	case "provider":
		return Providers
	}
	return None
}

// operand completes the operand cur, at index at of the words, after
// those given.
func operand(o Operands, given []string, cur string, at int, src Sources) Result {
	if len(given) > 0 && !o.Many {
		return Result{Directive: Words}
	}
	switch o.Kind {
	case CommandLine:
		return Result{Directive: Commands, At: at}
	case Files:
		return Result{Directive: Filenames}
	case Dirs:
		return Result{Directive: Dirnames}
	case Providers, Known:
		cs := slices.DeleteFunc(names(o.Kind, src), func(c Candidate) bool { return slices.Contains(given, c.Word) })
		return words(cur, cs)
	}
	return words(cur, plain(o.Values))
}

func names(k Kind, src Sources) []Candidate {
	if k == Known {
		return plain(src.Known)
	}
	if src.Providers == nil {
		return nil
	}
	return src.Providers()
}

func plain(ws []string) []Candidate {
	cs := make([]Candidate, len(ws))
	for i, w := range ws {
		cs[i] = Candidate{Word: w}
	}
	return cs
}

func withPrefix(prefix string, cs []Candidate) []Candidate {
	for i := range cs {
		cs[i].Word = prefix + cs[i].Word
	}
	return cs
}

// words offers the candidates that start with cur.
func words(cur string, cs []Candidate) Result {
	r := Result{Directive: Words}
	for _, c := range cs {
		if strings.HasPrefix(c.Word, cur) {
			r.Candidates = append(r.Candidates, c)
		}
	}
	return r
}

// Write prints r for the scripts: a first line, the directive (files and
// dirs followed by a tab and the prefix, command by a tab and the index),
// then one candidate a line, its description after a tab. A word with a
// control character or a space (from an agent that should never send
// one) is left out; a description's control characters become spaces.
func (r Result) Write(w io.Writer) error {
	var b strings.Builder
	switch r.Directive {
	case Filenames, Dirnames:
		fmt.Fprintf(&b, "%s\t%s\n", r.Directive, oneLine(r.Prefix))
	case Commands:
		fmt.Fprintf(&b, "%s\t%d\n", r.Directive, r.At)
	default:
		b.WriteString(string(Words) + "\n")
	}
	for _, c := range r.Candidates {
		if c.Word == "" || strings.IndexFunc(c.Word, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }) >= 0 {
			continue
		}
		b.WriteString(c.Word)
		if d := strings.TrimSpace(oneLine(c.Desc)); d != "" {
			b.WriteString("\t" + d)
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

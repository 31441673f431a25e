package completion

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// grammar is a small llm-agent-client: enough of each kind of flag and
// operand.
func grammar() Command {
	get := pflag.NewFlagSet("get", pflag.ContinueOnError)
	get.StringP("format", "f", "raw", "output `format`")
	SetValues(get, "format", "raw", "json")
	exec := pflag.NewFlagSet("exec", pflag.ContinueOnError)
	exec.StringArrayP("provider", "p", nil, "use `PROVIDER`")
	add := pflag.NewFlagSet("add", pflag.ContinueOnError)
	add.BoolP("confirm", "c", false, "ask first")
	add.StringArrayP("host", "h", nil, "only through `host`")
	add.StringP("lifetime", "t", "", "drop after `life`")
	guard := pflag.NewFlagSet("guard", pflag.ContinueOnError)
	guard.String("log", "", "log to `file`")
	guard.String("dir", "", "sockets in `directory`")
	guard.String("secret", "", "")
	guard.MarkHidden("secret")
	imp := pflag.NewFlagSet("import", pflag.ContinueOnError)
	imp.StringArray("provider", nil, "only `P`")
	SetKind(imp, "provider", Known)
	return Command{Name: "llm-agent-client", Subcommands: []Command{
		{Name: "get", Summary: "print one", Flags: get, Operands: Operands{Kind: Providers}},
		{Name: "guard", Summary: "guard it", Flags: guard},
		{Name: "exec", Summary: "run", Flags: exec, Operands: Operands{Kind: CommandLine}},
		{Name: "add", Summary: "add one", Flags: add, Operands: Operands{Kind: Known}},
		{Name: "remove", Summary: "remove", Operands: Operands{Kind: Providers, Many: true}},
		{Name: "import", Flags: imp, Operands: Operands{Kind: Files}},
		{Name: "completion", Operands: Operands{Values: []string{"bash", "zsh", "fish"}}},
	}}
}

func sources() Sources {
	return Sources{
		Providers: func() []Candidate { return []Candidate{{"anthropic", "api"}, {"openai", "oauth"}} },
		Known:     []string{"anthropic", "google", "openai"},
	}
}

func TestComplete(t *testing.T) {
	tests := []struct {
		line string // the words, the last ("" after a trailing space) under the cursor
		want string // Result as Write prints it, lines joined by |, descriptions dropped
	}{
		{"", "words|get|guard|exec|add|remove|import|completion"},
		{"g", "words|get|guard"},
		{"-", "words|--help"},
		{"nope ", "words"},
		{"get ", "words|anthropic|openai"},
		{"get o", "words|openai"},
		{"get openai ", "words"},
		{"get -", "words|--format|-f|--help"},
		{"get --format ", "words|raw|json"},
		{"get --format j", "words|json"},
		{"get -f ", "words|raw|json"},
		{"get --format=", "words|--format=raw|--format=json"},
		{"get --format=j", "words|--format=json"},
		{"get --format raw ", "words|anthropic|openai"},
		{"get --nope=x", "words"},
		{"get -- ", "words|anthropic|openai"},
		{"get -- -", "words"},
		{"remove openai ", "words|anthropic"},
		{"remove anthropic openai ", "words"},
		{"add ", "words|anthropic|google|openai"},
		{"add -c -", "words|--host|-h|--lifetime|-t|--help"},
		{"add -h a -", "words|--confirm|-c|--host|-h|--lifetime|-t|--help"},
		{"add -ct ", "words"},
		{"add -ch x ", "words|anthropic|google|openai"},
		{"add -t 1h g", "words|google"},
		{"exec -p ", "words|anthropic|openai"},
		{"exec -p=o", "words"},
		{"exec --provider=o", "words|--provider=openai"},
		{"exec ", "command\t1"},
		{"exec -p openai ls", "command\t3"},
		{"exec -p openai -- ls -l", "command\t4"},
		{"exec -- ls ", "command\t2"},
		{"import ", "files\t"},
		{"import a.json ", "words"},
		{"import --provider ", "words|anthropic|google|openai"},
		{"guard --log ", "files\t"},
		{"guard --log=/tm", "files\t--log="},
		{"guard --dir ", "dirs\t"},
		{"guard -", "words|--dir|--log|--help"},
		{"guard --log x ", "words"},
		{"completion ", "words|bash|zsh|fish"},
		{"completion z", "words|zsh"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			var b bytes.Buffer
			if err := Complete(grammar(), strings.Split(tt.line, " "), sources()).Write(&b); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
				if len(got) > 0 {
					l, _, _ = strings.Cut(l, "\t")
				}
				got = append(got, l)
			}
			if g := strings.Join(got, "|"); g != tt.want {
				t.Errorf("%q: got %q, want %q", tt.line, g, tt.want)
			}
		})
	}
}

// The agent's names reach the shell only as plain words; descriptions
// stay on one line.
func TestWriteDropsControl(t *testing.T) {
	r := Result{Directive: Words, Candidates: []Candidate{
		{"ok", "a\tb\nc"}, {"bad\x1b[2J", ""}, {"two words", ""}, {"", "empty"}, {"fine", ""},
	}}
	var b bytes.Buffer
	if err := r.Write(&b); err != nil {
		t.Fatal(err)
	}
	if want := "words\nok\ta b c\nfine\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

// No agent: no names, no error.
func TestNoProviders(t *testing.T) {
	r := Complete(grammar(), []string{"get", ""}, Sources{})
	if r.Directive != Words || len(r.Candidates) != 0 {
		t.Errorf("got %+v, want no words", r)
	}
}

func TestScript(t *testing.T) {
	for _, sh := range Shells() {
		var b bytes.Buffer
		if err := Script(&b, sh); err != nil || !strings.Contains(b.String(), "llm-agent-client __complete") {
			t.Errorf("%s: err %v, script without __complete", sh, err)
		}
	}
	if err := Script(&bytes.Buffer{}, "tcsh"); err == nil || !strings.Contains(err.Error(), "bash, zsh, fish") {
		t.Errorf("tcsh: got %v, want an error naming the shells", err)
	}
}

// FuzzComplete: any words (NUL-separated), no panic, and what the shell
// reads is a directive line, then words without control characters.
func FuzzComplete(f *testing.F) {
	for _, s := range []string{"", "get\x00", "get\x00--format=", "add\x00-ch\x00x\x00", "exec\x00--\x00ls\x00-l",
		"guard\x00--log=/x", "-", "--", "remove\x00a\x00b\x00", "add\x00-\x00", "get\x00-f", "exec\x00-p"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		var b bytes.Buffer
		if err := Complete(grammar(), strings.Split(line, "\x00"), sources()).Write(&b); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
		head, _, _ := strings.Cut(lines[0], "\t")
		if !slices.Contains([]string{"words", "files", "dirs", "command"}, head) {
			t.Fatalf("directive %q", lines[0])
		}
		for _, l := range lines[1:] {
			w, _, _ := strings.Cut(l, "\t")
			if w == "" || strings.ContainsAny(w, " \r\x1b") {
				t.Fatalf("word %q", w)
			}
		}
	})
}

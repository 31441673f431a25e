package clientcmd

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/llm-agent/llm-agent/internal/agentcmd"
	"github.com/llm-agent/llm-agent/internal/agenttest"
)

// The completion tests run the real scripts in the real shells. This test
// binary is llm-agent and llm-agent-client on PATH (TestMain), so a TAB
// runs it as `llm-agent-client __complete`, and it serves as the agent.

// needShell returns the path of shell, or skips; under CI (CI=true, as
// internal/lint) a missing shell fails: .ci/run installs them all.
func needShell(t *testing.T, shell string) string {
	t.Helper()
	p, err := exec.LookPath(shell)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (.ci/run installs it)", shell)
		}
		t.Skipf("SKIPPED: %s is not installed; apt-get install %s", shell, shell)
	}
	return p
}

// shellFixture is what the shells run in: an agent holding openai and
// anthropic, and a directory with a file and a subdirectory.
type shellFixture struct {
	env []string
	dir string
}

func newShellFixture(t *testing.T) shellFixture {
	t.Helper()
	var bins agenttest.Bins
	for _, p := range []*string{&bins.Agent, &bins.Client} {
		name := map[*string]string{&bins.Agent: "llm-agent", &bins.Client: "llm-agent-client"}[p]
		path, err := exec.LookPath(name)
		if err != nil {
			t.Fatalf("TestMain should have put %s on PATH: %v", name, err)
		}
		*p = path
	}
	a := agenttest.Start(t, bins, agenttest.Options{})
	for _, p := range []string{"openai", "anthropic"} {
		if r := a.Client(t, "FAKE-KEY-0000\n", "add", p); r.Code != 0 {
			t.Fatalf("add %s: status %d, stderr %q", p, r.Code, r.Stderr)
		}
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	return shellFixture{env: a.Env("GORACE=atexit_sleep_ms=0"), dir: dir}
}

// script writes the completion script for shell into the fixture's
// directory under name.
func (f shellFixture) script(t *testing.T, shell, name string) string {
	t.Helper()
	var b bytes.Buffer
	e := &env{stdout: &b, stderr: &b, getenv: func(string) string { return "" }}
	if code := run(e, []string{"completion", shell}); code != 0 {
		t.Fatalf("completion %s: status %d: %s", shell, code, b.String())
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// run runs a shell in the fixture's directory; a hang fails the test.
func (f shellFixture) run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env, cmd.Dir = f.env, f.dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %q: %v; stdout %q stderr %q", name, args, err, out.String(), errb.String())
	}
	return out.String()
}

// visibleFlags are the words that complete fs's flags, and those of its
// hidden flags, which must not show.
func visibleFlags(fs *pflag.FlagSet) (shown, hidden []string) {
	fs.VisitAll(func(fl *pflag.Flag) {
		ws := []string{"--" + fl.Name}
		if fl.Shorthand != "" {
			ws = append(ws, "-"+fl.Shorthand)
		}
		if fl.Hidden {
			hidden = append(hidden, ws...)
		} else {
			shown = append(shown, ws...)
		}
	})
	return shown, hidden
}

// everyFlag calls check for each program and subcommand, with the line
// that completes its flags and the words that must and must not show.
func everyFlag(t *testing.T, check func(t *testing.T, line string, shown, hidden []string)) {
	quiet := &env{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, getenv: func(string) string { return "" }}
	for _, c := range commands() {
		if c.hidden {
			continue
		}
		shown, hidden := visibleFlags(c.flags(quiet))
		t.Run(c.name, func(t *testing.T) { check(t, "llm-agent-client "+c.name+" -", shown, hidden) })
	}
	shown, hidden := visibleFlags(agentcmd.Flags())
	if len(hidden) == 0 {
		t.Fatal("llm-agent has hidden flags; Flags lost them")
	}
	t.Run("llm-agent", func(t *testing.T) { check(t, "llm-agent -", shown, hidden) })
}

func checkWords(t *testing.T, line string, got, shown, hidden []string) {
	t.Helper()
	for _, w := range shown {
		if !slices.Contains(got, w) {
			t.Errorf("%q does not offer %s; got %q", line, w, got)
		}
	}
	for _, w := range hidden {
		if slices.Contains(got, w) {
			t.Errorf("%q offers the hidden %s", line, w)
		}
	}
}

// bashDriver completes the line "$2", which bash splits into the words
// "$3"..., with the script "$1" loaded twice, as bash does on a TAB.
const bashDriver = `source "$1"; source "$1"
COMP_LINE=$2; COMP_POINT=${#2}; shift 2
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=()
_llm_agent_complete
printf '%s\n' "${COMPREPLY[@]}"`

// bashWords splits line as bash's COMP_WORDS does: at blanks, and around
// the = and : of COMP_WORDBREAKS.
func bashWords(line string) []string {
	var ws []string
	for i, f := range strings.Split(line, " ") {
		if i > 0 && f == "" && i < len(strings.Split(line, " "))-1 {
			continue
		}
		for f != "" {
			j := strings.IndexAny(f, "=:")
			if j < 0 {
				break
			}
			if j > 0 {
				ws = append(ws, f[:j])
			}
			ws = append(ws, f[j:j+1])
			f = f[j+1:]
		}
		if f != "" || len(ws) == 0 || !strings.ContainsAny(ws[len(ws)-1], "=:") {
			ws = append(ws, f)
		}
	}
	return ws
}

func TestBashWords(t *testing.T) {
	for line, want := range map[string]string{
		"a b ":             "a|b|",
		"a --f=":           "a|--f|=",
		"a --f=x":          "a|--f|=|x",
		"a --l 1.2:0 b":    "a|--l|1.2|:|0|b",
		"llm-agent-client": "llm-agent-client",
	} {
		if got := strings.Join(bashWords(line), "|"); got != want {
			t.Errorf("bashWords(%q) = %q, want %q", line, got, want)
		}
	}
}

func bashComplete(t *testing.T, f shellFixture, bash, script, line string) []string {
	t.Helper()
	out := f.run(t, bash, append([]string{"--norc", "--noprofile", "-c", bashDriver, "bash", script, line}, bashWords(line)...)...)
	return strings.Fields(out)
}

func TestCompletionBash(t *testing.T) {
	bash := needShell(t, "bash")
	f := newShellFixture(t)
	script := f.script(t, "bash", "llm-agent-client")

	out := f.run(t, bash, "--norc", "--noprofile", "-c", `source "$1"; source "$1"; complete -p llm-agent-client llm-agent`, "bash", script)
	if want := "complete -F _llm_agent_complete llm-agent-client\ncomplete -F _llm_agent_complete llm-agent\n"; out != want {
		t.Errorf("complete -p: got %q, want %q", out, want)
	}

	var names []string
	for _, c := range commands() {
		if !c.hidden {
			names = append(names, c.name)
		}
	}
	slices.Sort(names)
	tests := []struct {
		line  string
		want  []string // exactly these, in any order; nil: see has
		has   string   // one of the words, among others
		empty bool
	}{
		{line: "llm-agent-client ", want: names},
		{line: "llm-agent-client gu", want: []string{"guard"}},
		{line: "llm-agent-client get ", want: []string{"anthropic", "openai"}},
		{line: "llm-agent-client get o", want: []string{"openai"}},
		{line: "llm-agent-client get openai ", empty: true},
		{line: "llm-agent-client remove openai ", want: []string{"anthropic"}},
		{line: "llm-agent-client exec -p ", want: []string{"anthropic", "openai"}},
		{line: "llm-agent-client exec --provider=a", want: []string{"anthropic"}},
		{line: "llm-agent-client get --format=", want: []string{"header", "json", "opencode", "raw"}},
		{line: "llm-agent-client get --format=j", want: []string{"json"}},
		{line: "llm-agent-client get -f ", want: []string{"header", "json", "opencode", "raw"}},
		{line: "llm-agent-client completion ", want: []string{"bash", "fish", "zsh"}},
		{line: "llm-agent-client add ", has: "anthropic"},
		{line: "llm-agent-client import no", want: []string{"notes.txt"}},
		{line: "llm-agent-client usage notes.txt ", has: "notes.txt"},
		{line: "llm-agent-client guard --dir s", want: []string{"sub"}},
		{line: "llm-agent-client guard --log=no", want: []string{"notes.txt"}},
		{line: "llm-agent-client exec -p openai -- bas", has: "bash"},
		{line: "llm-agent-client exec -- ls no", want: []string{"notes.txt"}},
		{line: "llm-agent-client proxy --listen 127.0.0.1:0 bas", has: "bash"},
		{line: "llm-agent-client list ", empty: true},
		{line: "llm-agent-client nope ", empty: true},
		{line: "llm-agent -a no", want: []string{"notes.txt"}},
		{line: "llm-agent -t ", empty: true},
		{line: "llm-agent --print-service ", want: []string{"launchd", "systemd", "systemd-socket"}},
		{line: "llm-agent --service-program no", want: []string{"notes.txt"}},
		{line: "llm-agent -D bas", has: "bash"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			got := bashComplete(t, f, bash, script, tt.line)
			slices.Sort(got)
			got = slices.Compact(got)
			switch {
			case tt.empty && len(got) != 0:
				t.Errorf("got %q, want nothing", got)
			case tt.want != nil && !slices.Equal(got, tt.want):
				t.Errorf("got %q, want %q", got, tt.want)
			case tt.has != "" && !slices.Contains(got, tt.has):
				t.Errorf("got %q, want %q among them", got, tt.has)
			}
		})
	}

	t.Run("flags", func(t *testing.T) {
		everyFlag(t, func(t *testing.T, line string, shown, hidden []string) {
			checkWords(t, line, bashComplete(t, f, bash, script, line), shown, hidden)
		})
	})
}

// fishDriver loads the script "$argv[1]" twice, checks that each program
// has one completion rule, and completes "$argv[2]".
const fishDriver = `source $argv[1]; source $argv[1]
for c in llm-agent-client llm-agent
	set -l n (count (complete -c $c))
	test $n -eq 1; or echo "RULES $c $n"
end
complete -C "$argv[2]"`

func fishComplete(t *testing.T, f shellFixture, fish, script, line string) (words, descs []string) {
	t.Helper()
	out := f.run(t, fish, "--no-config", "-c", fishDriver, script, line)
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if strings.HasPrefix(l, "RULES ") {
			t.Fatalf("loaded twice, %s completion rules (want 1)", l)
		}
		w, d, _ := strings.Cut(l, "\t")
		words, descs = append(words, w), append(descs, d)
	}
	return words, descs
}

func TestCompletionFish(t *testing.T) {
	fish := needShell(t, "fish")
	f := newShellFixture(t)
	script := f.script(t, "fish", "llm-agent.fish")
	if out := f.run(t, fish, "--no-config", "-n", script); out != "" {
		t.Errorf("fish -n: %s", out)
	}
	tests := []struct {
		line string
		want string // words|descriptions
	}{
		{"llm-agent-client get ", "anthropic openai|api credential api credential"},
		{"llm-agent-client gu", "guard|on a shared server account: serve the forwarded agent to the owner's processes only"},
		{"llm-agent-client get --format=j", "--format=json|"},
		{"llm-agent-client remove anthropic ", "openai|api credential"},
		{"llm-agent-client guard --log=no", "--log=notes.txt|"},
		{"llm-agent-client import no", "notes.txt|"},
		{"llm-agent -a no", "notes.txt|"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			w, d := fishComplete(t, f, fish, script, tt.line)
			if got := strings.Join(w, " ") + "|" + strings.TrimSpace(strings.Join(d, " ")); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("command", func(t *testing.T) {
		w, _ := fishComplete(t, f, fish, script, "llm-agent-client exec -p openai -- bas")
		if !slices.Contains(w, "bash") {
			t.Errorf("got %q, want bash among them", w)
		}
	})
	t.Run("flags", func(t *testing.T) {
		everyFlag(t, func(t *testing.T, line string, shown, hidden []string) {
			w, _ := fishComplete(t, f, fish, script, line)
			checkWords(t, line, w, shown, hidden)
		})
	})
}

// zshDriver runs an interactive zsh in a pseudo-terminal (zpty), sets it
// up with "$1", and types each line of "$2" followed by a TAB; then it
// clears the line and prints a marker. zsh lists ambiguous completions
// below the line and inserts a unique one.
const zshDriver = `zmodload zsh/zpty || exit 1
zpty z zsh -f -i
zpty -w z "PS1='%% '; $1; print RE''ADY"
# Type only once zle reads the terminal (it turns bracketed paste on):
# before, the terminal's own line editing would eat the TAB and ^U.
zpty -r z out '*READY*2004h*' || exit 1
i=0
for line in "${(@f)2}"; do
	((i++))
	zpty -w -n z "$line"$'\t'
	zpty -w z $'\C-u'"print END''$i"
	zpty -r z out "*END$i*2004h*" || exit 1
	print -r -- "CASE $i $out"
done
zpty -d z`

// termCodes are the terminal's escape sequences in what zsh prints.
var termCodes = regexp.MustCompile("\x1b\\[[0-9;?]*[a-zA-Z]")

func TestCompletionZsh(t *testing.T) {
	zsh := needShell(t, "zsh")
	f := newShellFixture(t)
	script := f.script(t, "zsh", "_llm-agent")
	if out := f.run(t, zsh, "-n", script); out != "" {
		t.Errorf("zsh -n: %s", out)
	}
	lines := []struct {
		line string
		want []string // all in what zsh printed
	}{
		{"llm-agent-client get ", []string{"anthropic", "openai", "api credential"}},
		{"llm-agent-client get --format=", []string{"--format=json", "--format=opencode", "--format=header", "--format=raw"}},
		{"llm-agent-client gu", []string{"guard"}},
		{"llm-agent-client import no", []string{"notes.txt"}},
		{"llm-agent --audit-l", []string{"--audit-log"}},
		{"llm-agent-client exec -p openai -- echo no", []string{"notes.txt"}},
	}
	var typed []string
	for _, l := range lines {
		typed = append(typed, l.line)
	}
	setups := map[string]string{
		// source after compinit, twice (a second load is harmless)
		"sourced": fmt.Sprintf("autoload -U compinit; compinit -u -D; source %s; source %s", script, script),
		// _llm-agent in fpath, found by compinit
		"fpath": fmt.Sprintf("fpath=(%s $fpath); autoload -U compinit; compinit -u -D", filepath.Dir(script)),
	}
	for name, setup := range setups {
		t.Run(name, func(t *testing.T) {
			out := f.run(t, zsh, "-f", "-c", zshDriver, "zsh", setup, strings.Join(typed, "\n"))
			out = termCodes.ReplaceAllString(out, "")
			cases := strings.Split(out, "CASE ")
			if len(cases) != len(lines)+1 {
				t.Fatalf("zsh printed %d cases, want %d: %q", len(cases)-1, len(lines), out)
			}
			for i, l := range lines {
				for _, w := range l.want {
					if !strings.Contains(cases[i+1], w) {
						t.Errorf("%q: %q is not in %q", l.line, w, cases[i+1])
					}
				}
			}
		})
	}
}

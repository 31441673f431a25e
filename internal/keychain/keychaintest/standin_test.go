package keychaintest

import (
	"bufio"
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func TestSplitLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		want []string
	}{
		{"", nil},
		{"   \t ", nil},
		{"a b\tc", []string{"a", "b", "c"}},
		{`add -s "Claude Code-credentials" -a alice`, []string{"add", "-s", "Claude Code-credentials", "-a", "alice"}},
		{`'single quoted' "double 'inner'"`, []string{"single quoted", "double 'inner'"}},
		{`a\ b "c\"d" 'e\'f' g\\h`, []string{"a b", `c"d`, "e'f", `g\h`}},
		{`"abc"def`, []string{"abc", "def"}},    // a closing quote ends the argument
		{`ab"cd ef"`, []string{`ab"cd`, `ef"`}}, // a quote inside a word is literal
		{`"unterminated arg`, []string{"unterminated arg"}},
		{`trailing\`, []string{"trailing"}},
		{"a\x00b c", []string{"a"}}, // the C string ends at NUL
		{"\v\f\r x", []string{"x"}},
		{strings.Repeat("x ", 40), strings.Fields(strings.Repeat("x ", 32))}, // at most 32
	} {
		if got := splitLine([]byte(tc.line)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("splitLine(%q) = %q, want %q", tc.line, got, tc.want)
		}
	}
}

func TestReadLine(t *testing.T) {
	long := strings.Repeat("a", 5000)
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"lines", "one\ntwo\n", []string{"one", "two"}},
		{"last line without newline is dropped", "one\ntwo", []string{"one"}},
		{"4094 characters", strings.Repeat("b", 4094) + "\nx\n", []string{strings.Repeat("b", 4094), "x"}},
		// The newline is left behind and reads as an empty line.
		{"4095 characters", strings.Repeat("b", 4095) + "\nx\n", []string{strings.Repeat("b", 4095), "", "x"}},
		{"longer lines are cut", long + "\n", []string{long[:4095], long[4095:]}},
	} {
		in := bufio.NewReader(strings.NewReader(tc.in))
		var got []string
		for {
			l, ok := readLine(in)
			if !ok {
				break
			}
			got = append(got, string(l))
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %d lines, want %d", tc.name, len(got), len(tc.want))
		}
	}
}

// TestStandIn runs the stand-in in-process, one scenario a row, each on
// a fresh keychain.
func TestStandIn(t *testing.T) {
	type step struct {
		argv       string // split on spaces; '_' stands for a space inside a word
		stdin      string
		status     int
		stdout     string // exact, unless "*" (any)
		stderrHas  string
		stderrNone bool
	}
	const svc = "Claude_Code-credentials"
	notFound := "security: SecKeychainSearchCopyNext: The specified item could not be found in the keychain.\n"
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"missing item", []step{
			{argv: "find-generic-password -a alice -s " + svc + " -w", status: 44, stderrHas: notFound},
		}},
		{"printable password printed raw", []step{
			{argv: "add-generic-password -a alice -s " + svc + ` -w {"a":1}`},
			{argv: "find-generic-password -a alice -s " + svc + " -w", stdout: "{\"a\":1}\n", stderrNone: true},
			{argv: "find-generic-password -s " + svc + " -gw", stdout: "{\"a\":1}\n"}, // clustered, any account
			{argv: "find-generic-password -a bob -s " + svc + " -w", status: 44},
		}},
		{"password with a newline printed as lowercase hex", []step{
			{argv: "add-generic-password -a alice -s " + svc + " -X 7B0A7D"},
			{argv: "find-generic-password -a alice -s " + svc + " -w", stdout: "7b0a7d\n"},
			{argv: "find-generic-password -a alice -s " + svc + " -g", stdout: "*", stderrHas: `password: 0x7B0A7D  "{\012}"`},
		}},
		{"odd hex is zero-padded, bad hex refused", []step{
			{argv: "add-generic-password -a alice -s " + svc + " -X 141"},
			{argv: "find-generic-password -a alice -s " + svc + " -w", stdout: "0141\n"},
			{argv: "add-generic-password -U -a alice -s " + svc + " -X 4g", status: 2, stderrHas: "Unable to convert password data"},
		}},
		{"duplicate without -U", []step{
			{argv: "add-generic-password -a alice -s " + svc + " -w one"},
			{argv: "add-generic-password -a alice -s " + svc + " -w two", status: 45, stderrHas: "The specified item already exists in the keychain."},
			{argv: "add-generic-password -U -a alice -s " + svc + " -w two"},
			{argv: "find-generic-password -a alice -s " + svc + " -w", stdout: "two\n"},
		}},
		{"usage", []step{
			{argv: "add-generic-password -s " + svc + " -w x", status: 2, stderrHas: "Usage: add-generic-password"},
			{argv: "find-generic-password -z", status: 2, stderrHas: "illegal option -- z"},
			{argv: "add-generic-password -a alice -s " + svc + " -w", status: 1},
			{argv: "frobnicate", status: 1, stderrHas: `unknown command "frobnicate"`},
		}},
		{"prefix names a command", []step{
			{argv: "add-gen -a alice -s " + svc + " -w x"},
			{argv: "find -a alice -s " + svc + " -w", stdout: "x\n"},
		}},
		{"interactive", []step{
			{argv: "-i", stdin: `add-generic-password -U -a "alice" -s "Claude Code-credentials" -X "7b7d"` + "\n"},
			{argv: "find-generic-password -a alice -s " + svc + " -w", stdout: "{}\n"},
			{argv: "-i", stdin: "find-generic-password -a nobody -w\n", status: 44, stderrHas: "find-generic-password: returned -25300"},
			{argv: "-q -i", stdin: "find-generic-password -a nobody -w\n", status: 44, stderrHas: notFound},
			// An empty line's status 0 is the last one.
			{argv: "-i", stdin: "find-generic-password -a nobody -w\n\n", status: 0},
			// A last line without a newline is not run.
			{argv: "-i", stdin: "find-generic-password -a nobody -w", status: 0, stderrNone: true},
			{argv: "-v -i", stdin: "find -a alice -w\n", stdout: "{}\n", stderrHas: `find-generic-password "-a" "alice" "-w"`},
		}},
		{"interactive line too long", []step{
			{argv: "-i", stdin: `add-generic-password -U -a alice -s x -X ` + strings.Repeat("ab", 2100) + "\n",
				status: 1, stderrHas: `unknown command "` + strings.Repeat("ab", 20)},
		}},
		{"locked", []step{
			{argv: "add-generic-password -a alice -s " + svc + " -w x"},
			{argv: "LOCKED find-generic-password -a alice -s " + svc + " -w", status: 36, stderrNone: true},
			{argv: "LOCKED add-generic-password -U -a alice -s " + svc + " -w y", status: 36, stderrHas: "User interaction is not allowed."},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for i, st := range tc.steps {
				fault := ""
				argv := strings.Fields(st.argv)
				if argv[0] == "LOCKED" {
					fault, argv = "locked", argv[1:]
				}
				for j := range argv {
					argv[j] = strings.ReplaceAll(argv[j], "_", " ")
				}
				argv = append([]string{"security"}, argv...)
				var stdout, stderr bytes.Buffer
				env := map[string]string{EnvDir: dir, EnvFault: fault}
				status := run(argv, strings.NewReader(st.stdin), &stdout, &stderr, func(k string) string { return env[k] })
				if status != st.status {
					t.Errorf("step %d %q: status %d, want %d; stderr %q", i, st.argv, status, st.status, stderr.String())
				}
				if st.stdout != "*" && stdout.String() != st.stdout {
					t.Errorf("step %d %q: stdout %q, want %q", i, st.argv, stdout.String(), st.stdout)
				}
				if st.stderrHas != "" && !strings.Contains(stderr.String(), st.stderrHas) {
					t.Errorf("step %d %q: stderr %q, want it to hold %q", i, st.argv, stderr.String(), st.stderrHas)
				}
				if st.stderrNone && stderr.Len() > 0 {
					t.Errorf("step %d %q: stderr %q, want none", i, st.argv, stderr.String())
				}
			}
		})
	}
}

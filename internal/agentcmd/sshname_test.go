package agentcmd

import (
	"reflect"
	"strings"
	"testing"
)

// TestParseSSH: ssh-agent's command line, as OpenSSH 9.2's getopt
// ("cDdksE:a:O:P:t:") and checks take it.
func TestParseSSH(t *testing.T) {
	for _, c := range []struct {
		args   []string
		want   options // the fields compared below
		status int     // 0: parses; else sshParseFailure's exit status
		msg    string  // start of the message on standard error
	}{
		{args: []string{"-s"}, want: options{sh: true}},
		{args: []string{"-c", "-a", "/s", "-t", "1h"}, want: options{csh: true, bind: "/s", life: "1h"}},
		{args: []string{"-Da/s"}, want: options{fg: true, bind: "/s"}},
		{args: []string{"-E", "MD5", "-O", "no-restrict-websafe", "-P", "/usr/lib/*"}, want: options{hash: "MD5", agentOpts: []string{"no-restrict-websafe"}, providers: "/usr/lib/*"}},
		{args: []string{"-k", "-c"}, want: options{kill: true, csh: true}},
		{args: []string{"-t", "30", "sh", "-c", "x"}, want: options{life: "30", command: []string{"sh", "-c", "x"}}},
		{args: []string{"--", "-s"}, want: options{command: []string{"-s"}}},
		{args: []string{"-c", "-s"}, status: 1, msg: "usage: ssh-agent"},
		{args: []string{"-dd"}, status: 1, msg: "usage: ssh-agent"},
		{args: []string{"-D", "-d"}, status: 1, msg: "usage: ssh-agent"},
		{args: []string{"-k", "true"}, status: 1, msg: "usage: ssh-agent"},
		{args: []string{"-x"}, status: 1, msg: "unknown option -- x\r\nusage"},
		{args: []string{"-t"}, status: 1, msg: "option requires an argument -- t\r\nusage"},
		{args: []string{"-t", "0x"}, status: 1, msg: "Invalid lifetime\nusage"},
		{args: []string{"-E", "crc32"}, status: 255, msg: "Invalid hash algorithm \"crc32\"\r\n"},
		{args: []string{"-O", "x"}, status: 255, msg: "Unknown -O option\r\n"},
		{args: []string{"-P", "a", "-P", "b"}, status: 255, msg: "-P option already specified\r\n"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			o, err := parseSSH(c.args)
			if c.status == 0 {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				c.want.names = sshNames
				if !reflect.DeepEqual(*o, c.want) {
					t.Errorf("got %+v, want %+v", *o, c.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("parsed as %+v, want exit %d", *o, c.status)
			}
			var stderr strings.Builder
			if got := sshParseFailure(err, &stderr); got != c.status || !strings.HasPrefix(stderr.String(), c.msg) {
				t.Errorf("exit %d, stderr %q; want %d, %q...", got, stderr.String(), c.status, c.msg)
			}
		})
	}
}

// TestPrintEnv: the eval lines in ssh-agent's exact forms, under both names.
func TestPrintEnv(t *testing.T) {
	for _, c := range []struct {
		name            string
		csh             bool
		n               names
		sshSock, pidVar bool
		want            string
	}{
		{"ssh-agent -s", false, sshNames, false, true, "SSH_AUTH_SOCK=/s; export SSH_AUTH_SOCK;\nSSH_AGENT_PID=7; export SSH_AGENT_PID;\necho Agent pid 7;\n"},
		{"ssh-agent -c", true, sshNames, false, true, "setenv SSH_AUTH_SOCK /s;\nsetenv SSH_AGENT_PID 7;\necho Agent pid 7;\n"},
		{"ssh-agent -D", false, sshNames, false, false, "SSH_AUTH_SOCK=/s; export SSH_AUTH_SOCK;\necho Agent pid 7;\n"},
		{"llm-agent, no ssh-agent", false, llmNames, true, true, "LLM_AUTH_SOCK=/s; export LLM_AUTH_SOCK;\nSSH_AUTH_SOCK=/s; export SSH_AUTH_SOCK;\nLLM_AGENT_PID=7; export LLM_AGENT_PID;\necho Agent pid 7;\n"},
		{"llm-agent -c", true, llmNames, false, true, "setenv LLM_AUTH_SOCK /s;\nsetenv LLM_AGENT_PID 7;\necho Agent pid 7;\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var b strings.Builder
			printEnv(&b, c.csh, c.n, "/s", 7, c.sshSock, c.pidVar)
			if b.String() != c.want {
				t.Errorf("got %q, want %q", b.String(), c.want)
			}
		})
	}
}

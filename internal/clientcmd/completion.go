package clientcmd

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/llm-agent/llm-agent/internal/agentcmd"
	"github.com/llm-agent/llm-agent/internal/completion"
	"github.com/llm-agent/llm-agent/internal/providers"
	"github.com/llm-agent/llm-agent/protocol"
)

const completionArgs = "bash|zsh|fish"

// completeCommand is the hidden subcommand the completion scripts run on
// each TAB: __complete PROGRAM WORD..., the last word the one to complete.
const completeCommand = "__complete"

// completionTimeout bounds asking the agent for names on a TAB: a laptop
// asleep must not freeze the shell for LLM_AGENT_TIMEOUT.
const completionTimeout = 2 * time.Second

// completionFlags is completion's flag set: none but --help.
func completionFlags(e *env) *pflag.FlagSet { return flagSet(e, "completion", completionArgs) }

func runCompletion(e *env, args []string) error {
	fs := completionFlags(e)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("name one shell: bash, zsh or fish")
	}
	return completion.Script(e.stdout, fs.Arg(0))
}

// runComplete prints the completions of a command line of PROGRAM
// (llm-agent or llm-agent-client) for the scripts. It never fails
// loudly: a shell shows nothing rather than an error.
func runComplete(e *env, args []string) error {
	if len(args) == 0 {
		return errors.New("want PROGRAM WORD... (the shell completion scripts run this)")
	}
	quiet := &env{stdin: e.stdin, stdout: io.Discard, stderr: io.Discard, getenv: e.getenv}
	root := clientGrammar(quiet)
	if filepath.Base(args[0]) == "llm-agent" {
		root = agentGrammar()
	}
	src := completion.Sources{Providers: func() []completion.Candidate { return agentNames(quiet) }}
	for _, p := range providers.All() {
		src.Known = append(src.Known, p.Name)
	}
	return completion.Complete(root, args[1:], src).Write(e.stdout)
}

// clientGrammar is llm-agent-client's command line: each subcommand with
// the flag set its run function parses.
func clientGrammar(e *env) completion.Command {
	root := completion.Command{Name: "llm-agent-client"}
	for _, c := range commands() {
		if c.hidden {
			continue
		}
		root.Subcommands = append(root.Subcommands, completion.Command{
			Name: c.name, Summary: c.summary, Flags: c.flags(e), Operands: c.operands})
	}
	return root
}

// agentGrammar is llm-agent's command line: its flags, then a command.
func agentGrammar() completion.Command {
	return completion.Command{Name: "llm-agent", Flags: agentcmd.Flags(),
		Operands: completion.Operands{Kind: completion.CommandLine}}
}

// agentNames are the providers the agent lists, with their kinds; none
// when no agent answers within completionTimeout.
func agentNames(e *env) []completion.Candidate {
	short := *e
	short.getenv = func(k string) string {
		if k == "LLM_AGENT_TIMEOUT" {
			if t, err := agentTimeout(e); err != nil || t > completionTimeout {
				return completionTimeout.String()
			}
		}
		return e.getenv(k)
	}
	entries, err := listEntries(&short)
	if err != nil {
		return nil
	}
	var cs []completion.Candidate
	for _, x := range entries {
		if protocol.ValidName(x.Provider) == nil {
			cs = append(cs, completion.Candidate{Word: x.Provider, Desc: fmt.Sprintf("%s credential", x.Kind)})
		}
	}
	return cs
}

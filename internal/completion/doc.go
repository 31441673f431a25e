// Package completion completes llm-agent's and llm-agent-client's command
// lines from their real pflag sets, so that completions cannot drift from
// the flags. The shell scripts (Script) are thin: on each TAB they run
// `llm-agent-client __complete PROGRAM WORD...`, which calls Complete and
// prints its Result, one candidate a line; provider names come from the
// running agent at that moment.
package completion

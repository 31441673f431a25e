// Package child waits for the command that a command line was given to run
// (llm-agent CMD, llm-agent-client proxy -- CMD) and reports its end as a
// shell does, so that the wrapper exits as the command did. The proxy also
// passes its signals on to the command here.
package child

// Package credcmd runs the commands that print credentials on the laptop
// (llm-agent-client add --from-command: op read, pass, vault, gcloud...),
// for the agent, and reads what they print.
//
// A command runs as /bin/sh -c COMMAND in its own process group, with
// stdin on /dev/null, for a bounded time; when it exits, when it overruns
// and when its caller gives up, whatever is left of its process group is
// killed. Its stdout is read straight into locked memory (memsafe) and
// never into a Go buffer; Parse takes the value from it: the first line,
// or a member of a JSON object, with an optional expiry. Its stderr is
// not secret: the first line of it is kept, cut and cleaned, for the
// audit log. Why a run gave no value is a Failure, one line that never
// holds a byte of the command's output.
package credcmd

package e2e

import (
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/llm-agent/llm-agent/internal/agenttest"
)

// bins are the binaries built once for the whole run.
var bins agenttest.Bins

func TestMain(m *testing.M) {
	// The tests stand for a user at a terminal: a session whose leader is
	// alive, as a login has. CI may run them in a session whose leader has
	// exited; without audit session ids the proxy's and guard's rule
	// (descent from the session leader) would then rightly refuse every
	// process. Lead a session of our own (fails harmlessly if we already do).
	syscall.Setsid()
	b, err := agenttest.Build("../..")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins = b
	code := m.Run()
	os.RemoveAll(b.Dir)
	os.Exit(code)
}

// The harness lives in agenttest; these names keep the tests short.
type (
	Agent        = agenttest.Agent
	AgentOptions = agenttest.Options
	Result       = agenttest.Result
)

// StartAgent starts llm-agent -D (or -d); see agenttest.Start.
func StartAgent(t testing.TB, o AgentOptions) *Agent { return agenttest.Start(t, bins, o) }

// Run runs a command; see agenttest.Run.
func Run(t testing.TB, env []string, stdin string, name string, args ...string) Result {
	t.Helper()
	return agenttest.Run(t, env, stdin, name, args...)
}

func cleanEnv() []string { return agenttest.CleanEnv() }

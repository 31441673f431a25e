// Command llm-agent holds LLM provider credentials in memory, as ssh-agent
// holds SSH keys. See llm-agent(1).
package main

import (
	"os"

	"github.com/llm-agent/llm-agent/internal/agentcmd"
)

func main() { os.Exit(agentcmd.Main(os.Args[1:])) }

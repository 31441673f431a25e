// Command llm-agent-client manages an llm-agent and fetches credentials
// from it. See llm-agent-client(1).
package main

import (
	"os"

	"github.com/llm-agent/llm-agent/internal/clientcmd"
)

func main() { os.Exit(clientcmd.Main(os.Args[1:])) }

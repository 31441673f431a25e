// Command dialonly is the floor of a whole-process agent request in Go:
// it dials $LLM_AUTH_SOCK, asks for the SSH identities (one exchange, as
// ssh-add -l does) and reads the answer. bench/run times llm-agent-client
// get against it, both built the same way.
package main

import (
	"net"
	"os"
)

func main() {
	c, err := net.Dial("unix", os.Getenv("LLM_AUTH_SOCK"))
	if err != nil {
		os.Exit(2)
	}
	defer c.Close()
	if _, err := c.Write([]byte{0, 0, 0, 1, 11}); err != nil {
		os.Exit(2)
	}
	if _, err := c.Read(make([]byte, 4096)); err != nil {
		os.Exit(2)
	}
}

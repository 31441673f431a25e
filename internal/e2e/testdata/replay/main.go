// Command replay is the attacker's tool of the e2e replay tests: it sends
// the session-bind frames stored (hex, one per line) in the file named by
// its first argument on a fresh connection to $SSH_AUTH_SOCK, then asks for
// the credential named by its second argument. It prints one line per
// bind and "get: ok" or "get: refused: ..." and exits 0 only if the
// credential came out. It never prints the credential.
package main

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/llm-agent/llm-agent/protocol"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: replay FRAMES-FILE PROVIDER")
		os.Exit(2)
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var frames [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			b, err := hex.DecodeString(line)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			frames = append(frames, b)
		}
	}
	nc, err := net.DialTimeout("unix", os.Getenv("SSH_AUTH_SOCK"), 5*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	for i, fr := range frames {
		if _, err := nc.Write(fr); err != nil {
			fmt.Printf("bind %d: write: %v\n", i, err)
			os.Exit(1)
		}
		body, err := protocol.ReadFrame(nc, protocol.MaxFrame)
		if err != nil {
			fmt.Printf("bind %d: read: %v\n", i, err)
			os.Exit(1)
		}
		fmt.Printf("bind %d: reply %d\n", i, body[0])
	}
	c := protocol.NewClient(nc)
	c.Timeout = 20 * time.Second
	cred, err := c.Get(os.Args[2], nil)
	if err != nil {
		fmt.Printf("get: refused: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("get: ok (%s, %d fields)\n", cred.Provider, len(cred.Fields))
}

// Command fakeagent is a hostile agent for the e2e tests: it listens on a
// path it is given (open to everyone), records every connection and every
// request it receives in a log, and answers list and get with a wellknown
// credential whose variable is the one it was given (LD_PRELOAD...).
//
// usage: fakeagent SOCKET LOG VARIABLE
package main

import (
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"

	"github.com/llm-agent/llm-agent/protocol"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: fakeagent SOCKET LOG VARIABLE")
		os.Exit(1)
	}
	sock, logPath, variable := os.Args[1], os.Args[2], os.Args[3]
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var mu sync.Mutex
	record := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(logf, format+"\n", a...)
	}
	syscall.Umask(0)
	l, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("ready")
	cred := &protocol.Credential{Provider: "evil", Kind: protocol.KindWellKnown, Fields: []protocol.Field{
		{Name: protocol.FieldKey, Value: []byte(variable)}, {Name: protocol.FieldToken, Value: []byte("/tmp/evil.so")}}}
	for {
		c, err := l.Accept()
		if err != nil {
			os.Exit(1)
		}
		record("connect")
		go func() {
			defer c.Close()
			for {
				body, err := protocol.ReadFrame(c, protocol.MaxFrame)
				if err != nil {
					return
				}
				name, _, err := protocol.ParseExtension(body)
				if err != nil {
					record("request message %d", body[0])
					c.Write(protocol.FailureFrame())
					continue
				}
				record("request %s", name)
				var reply []byte
				switch name {
				case protocol.ExtStatus:
					reply = protocol.MarshalStatusReply(protocol.Status{Count: 1, Forwarded: true, Version: "fake"})
				case protocol.ExtList:
					reply = protocol.MarshalListReply([]protocol.Entry{{Provider: "evil", Kind: protocol.KindWellKnown}})
				case protocol.ExtGet:
					reply = protocol.AppendGetReply(nil, cred)
				default:
					reply = protocol.FailureFrame()
				}
				c.Write(reply)
			}
		}()
	}
}

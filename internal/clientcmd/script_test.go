package clientcmd_test

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/llm-agent/llm-agent/internal/agentcmd"
	"github.com/llm-agent/llm-agent/internal/clientcmd"
	"github.com/llm-agent/llm-agent/internal/keychain/keychaintest"
)

// TestMain makes this test binary double as llm-agent, llm-agent-client
// and macOS's security tool (the stand-in of package keychaintest):
// testscript puts links to it under those names on the scripts' PATH.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"llm-agent":        func() { os.Exit(agentcmd.Main(os.Args[1:])) },
		"llm-agent-client": func() { os.Exit(clientcmd.Main(os.Args[1:])) },
		"security":         func() { os.Exit(keychaintest.Main()) }, // macOS's, stood in for
	})
}

// TestScripts runs the user stories in testdata/scripts/*.txt.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/scripts",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			// Scripts decide where the agent is; nothing leaks in.
			env.Setenv("LLM_AUTH_SOCK", "")
			env.Setenv("SSH_AUTH_SOCK", "")
			env.Setenv("LLM_AGENT_PID", "")
			env.Setenv("LLM_AGENT_ASKPASS", "")
			env.Setenv("SSH_ASKPASS", "")
			env.Setenv("SHELL", "/bin/sh")
			// Under -race every program a script runs (this test binary)
			// would sleep 1 s at exit (the race runtime's default).
			env.Setenv("GORACE", "atexit_sleep_ms=0")
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"waitsock":  cmdWaitSock,
			"nonl":      cmdNonl,
			"evalagent": cmdEvalAgent,
			"exits":     cmdExits,
		},
	})
}

// waitsock [-gone] path: wait (up to 10 s) until an agent answers on the
// socket at path, or with -gone until the path no longer exists.
func cmdWaitSock(ts *testscript.TestScript, neg bool, args []string) {
	gone := len(args) == 2 && args[0] == "-gone"
	if gone {
		args = args[1:]
	}
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitsock [-gone] path")
	}
	path := ts.MkAbs(args[0])
	deadline := time.Now().Add(10 * time.Second)
	for {
		if gone {
			if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
				return
			}
		} else if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			if gone {
				ts.Fatalf("%s still exists after 10 s", args[0])
			}
			ts.Fatalf("nothing answers on %s after 10 s", args[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nonl file...: drop the final newline of each file. A txtar section
// always ends in one; get prints none (it feeds apiKeyHelper and friends).
func cmdNonl(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) == 0 {
		ts.Fatalf("usage: nonl file...")
	}
	for _, f := range args {
		p := ts.MkAbs(f)
		data, err := os.ReadFile(p)
		ts.Check(err)
		ts.Check(os.WriteFile(p, []byte(strings.TrimSuffix(string(data), "\n")), 0o644))
	}
}

var (
	shLine  = regexp.MustCompile(`^(LLM_AUTH_SOCK|SSH_AUTH_SOCK|LLM_AGENT_PID)=([^;]+); export (LLM_AUTH_SOCK|SSH_AUTH_SOCK|LLM_AGENT_PID);$`)
	cshLine = regexp.MustCompile(`^setenv (LLM_AUTH_SOCK|SSH_AUTH_SOCK|LLM_AGENT_PID) ([^;]+);$`)
	echoPID = regexp.MustCompile(`^echo Agent pid ([0-9]+);$`)
)

// evalagent: do what `eval "$(llm-agent)"` does with the last command's
// stdout, strictly: every line must be in ssh-agent's sh or csh form. A
// daemon it names is killed when the script ends, should the script not
// have stopped it.
func cmdEvalAgent(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: evalagent")
	}
	vars := map[string]string{}
	echoed := ""
	sc := bufio.NewScanner(strings.NewReader(ts.ReadFile("stdout")))
	for sc.Scan() {
		line := sc.Text()
		if m := shLine.FindStringSubmatch(line); m != nil && m[1] == m[3] {
			vars[m[1]] = m[2]
		} else if m := cshLine.FindStringSubmatch(line); m != nil {
			vars[m[1]] = m[2]
		} else if m := echoPID.FindStringSubmatch(line); m != nil {
			echoed = m[1]
		} else {
			ts.Fatalf("not an eval line: %q", line)
		}
	}
	sock, pidStr := vars["LLM_AUTH_SOCK"], vars["LLM_AGENT_PID"]
	if sock == "" || pidStr == "" || echoed != pidStr {
		ts.Fatalf("want LLM_AUTH_SOCK, LLM_AGENT_PID and a matching echo; got %q, echo pid %q", vars, echoed)
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid < 2 {
		ts.Fatalf("bad pid %q", pidStr)
	}
	// SSH_AUTH_SOCK, when printed, is the use socket (no live ssh-agent).
	if ssh, ok := vars["SSH_AUTH_SOCK"]; ok {
		if ssh != sock {
			ts.Fatalf("SSH_AUTH_SOCK=%s is not LLM_AUTH_SOCK=%s", ssh, sock)
		}
		ts.Setenv("SSH_AUTH_SOCK", ssh)
	}
	ts.Setenv("LLM_AUTH_SOCK", sock)
	ts.Setenv("LLM_AGENT_PID", pidStr)
	ts.Defer(func() { killDaemon(pid) })
}

// killDaemon stops a daemon the script started, if it still runs: only a
// process whose command line marks it as our daemon child.
func killDaemon(pid int) {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), "--daemon-child") {
		return
	}
	syscall.Kill(pid, syscall.SIGTERM)
}

// exits N program [args...]: run program like exec and check that it
// exits with status N (llm-agent-client's 0, 1 and 2 mean different things).
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits N program [args...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: bad status %q", args[0])
	}
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		ts.Fatalf("%s: %v", args[1], err)
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}

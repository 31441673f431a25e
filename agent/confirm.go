package agent

import (
	"context"
	"os"
	"os/exec"
	"sync"
	"time"
)

// confirmTimeout bounds how long the owner has to answer a prompt; no
// answer refuses. It is below protocol.DefaultTimeout so the client hears
// the refusal rather than timing out.
const confirmTimeout = 25 * time.Second

// confirmer asks the owner, through an askpass program, whether a use of a
// credential is allowed. It runs one prompt at a time.
type confirmer struct {
	askpass string // empty: no way to ask, so refuse
	once    sync.Once
	turn    chan struct{} // a token: who holds it may prompt
}

// confirm runs askpass with the prompt as its argument, as ssh-agent does
// for keys added with ssh-add -c, and allows the use only on exit status 0.
func (c *confirmer) confirm(prompt string) (bool, string) {
	if c.askpass == "" {
		return false, "confirmation required but no askpass program (set LLM_AGENT_ASKPASS or SSH_ASKPASS where the agent starts)"
	}
	c.once.Do(func() { c.turn = make(chan struct{}, 1) })
	// The timeout covers waiting for an earlier prompt too, so that the
	// client hears a refusal before its own timeout.
	ctx, cancel := context.WithTimeout(context.Background(), confirmTimeout)
	defer cancel()
	select {
	case c.turn <- struct{}{}:
		defer func() { <-c.turn }()
	case <-ctx.Done():
		return false, "another confirmation was pending; no answer in time"
	}
	cmd := exec.CommandContext(ctx, c.askpass, prompt)
	cmd.Env = append(os.Environ(), "SSH_ASKPASS_PROMPT=confirm")
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return false, "no answer from the askpass program"
		}
		return false, "refused by the owner"
	}
	return true, "confirmed by the owner"
}

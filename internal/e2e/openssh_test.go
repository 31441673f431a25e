package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeScript writes an executable shell script.
func writeScript(t testing.TB, path, body string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// genKeys makes unencrypted SSH keys of the given types (ssh-keygen -t
// names) in dir as id_TYPE and id_TYPE.pub, with the comment e2e-TYPE.
func genKeys(t testing.TB, dir string, types ...string) {
	t.Helper()
	for _, typ := range types {
		args := []string{"-q", "-N", "", "-t", typ, "-C", "e2e-" + typ, "-f", filepath.Join(dir, "id_"+typ)}
		if typ == "rsa" {
			args = append(args, "-b", "3072")
		}
		if out, err := exec.Command("ssh-keygen", args...).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen -t %s: %v: %s", typ, err, out)
		}
	}
}

// sshAddStep is one ssh-add invocation of the interop table. want and
// wantOut are what OpenSSH's own ssh-agent does (checked, so the table
// cannot drift from reality); llm-agent must then do exactly the same.
type sshAddStep struct {
	name    string
	prog    string   // default ssh-add
	args    []string // KEYS/ is replaced by the key directory, RUN/ by the run's own
	pass    string   // lock password the askpass prints; "" for the right one
	noAgent string   // "missing": SSH_AUTH_SOCK names no socket; "unset": no SSH_AUTH_SOCK
	want    int
	wantOut string // substring of stdout+stderr
}

var sshAddSteps = []sshAddStep{
	{name: "no_agent_unset", args: []string{"-l"}, noAgent: "unset", want: 2, wantOut: "Could not open a connection to your authentication agent."},
	{name: "no_agent_missing", args: []string{"-l"}, noAgent: "missing", want: 2, wantOut: "Error connecting to agent: No such file or directory"},
	{name: "no_agent_add", args: []string{"KEYS/id_ed25519"}, noAgent: "missing", want: 2, wantOut: "Error connecting to agent"},
	{name: "list_empty", args: []string{"-l"}, want: 1, wantOut: "The agent has no identities."},
	{name: "list_keys_empty", args: []string{"-L"}, want: 1, wantOut: "The agent has no identities."},
	{name: "add_ed25519", args: []string{"KEYS/id_ed25519"}, wantOut: "Identity added: KEYS/id_ed25519 (e2e-ed25519)"},
	{name: "add_rsa", args: []string{"KEYS/id_rsa"}, wantOut: "Identity added: KEYS/id_rsa (e2e-rsa)"},
	{name: "add_ecdsa", args: []string{"KEYS/id_ecdsa"}, wantOut: "Identity added"},
	{name: "list_three", args: []string{"-l"}, wantOut: "3072 SHA256:"},
	{name: "list_keys_three", args: []string{"-L"}, wantOut: "ssh-ed25519 AAAA"},
	{name: "remove_ecdsa", args: []string{"-d", "KEYS/id_ecdsa.pub"}, wantOut: "Identity removed"},
	{name: "remove_ecdsa_again", args: []string{"-d", "KEYS/id_ecdsa.pub"}, want: 1, wantOut: "Could not remove identity"},
	{name: "list_two", args: []string{"-l"}, wantOut: "(ED25519)"},
	{name: "lock", args: []string{"-x"}, wantOut: "Agent locked."},
	{name: "lock_again", args: []string{"-x"}, want: 1, wantOut: "Failed to lock agent"},
	{name: "list_locked", args: []string{"-l"}, want: 1, wantOut: "The agent has no identities."},
	{name: "list_keys_locked", args: []string{"-L"}, want: 1, wantOut: "The agent has no identities."},
	{name: "add_locked", args: []string{"KEYS/id_ecdsa"}, want: 1, wantOut: "Could not add identity"},
	{name: "remove_all_locked", args: []string{"-D"}, want: 1},
	{name: "unlock_wrong_password", args: []string{"-X"}, pass: "not-the-lock-password", want: 1, wantOut: "Failed to unlock agent"},
	{name: "unlock", args: []string{"-X"}, wantOut: "Agent unlocked."},
	{name: "unlock_not_locked", args: []string{"-X"}, want: 1, wantOut: "Failed to unlock agent"},
	{name: "list_after_unlock", args: []string{"-l"}, wantOut: "(RSA)"},
	{name: "add_lifetime", args: []string{"-t", "3", "KEYS/id_ecdsa"}, wantOut: "Lifetime set to 3 seconds"},
	{name: "list_with_lifetime_key", args: []string{"-l"}, wantOut: "(ECDSA)"},
	{name: "remove_all", args: []string{"-D"}, wantOut: "All identities removed."},
	{name: "list_after_remove_all", args: []string{"-l"}, want: 1, wantOut: "The agent has no identities."},
	// ssh-add -c: ssh-agent accepts the key and asks on each use.
	{name: "add_confirm", args: []string{"-c", "KEYS/id_ed25519"}, wantOut: "The user must confirm each use of the key"},
	{name: "list_confirm_key", args: []string{"-l"}, wantOut: "(ED25519)"},
	// Neither agent has an askpass program here: a use is refused.
	{name: "sign_confirm_key_no_askpass", prog: "ssh-keygen", args: []string{"-Y", "sign", "-n", "e2e", "-f", "KEYS/id_ed25519.pub", "RUN/msg1"},
		want: 255, wantOut: "agent refused operation"},
	{name: "remove_all_after_confirm", args: []string{"-D"}, wantOut: "All identities removed."},
	{name: "list_end", args: []string{"-l"}, want: 1, wantOut: "The agent has no identities."},
	{name: "remove_all_empty", args: []string{"-D"}, wantOut: "All identities removed."},
	{name: "add_plain", args: []string{"KEYS/id_ed25519"}, wantOut: "Identity added"},
	{name: "sign_plain_key", prog: "ssh-keygen", args: []string{"-Y", "sign", "-n", "e2e", "-f", "KEYS/id_ed25519.pub", "RUN/msg2"},
		wantOut: "Write signature to RUN/msg2.sig"},
}

const lockPassword = "e2e-lock-password"

// runSSHAddSteps runs the table against the agent on sock and returns the
// normalised results and the prompts the askpass program was shown.
func runSSHAddSteps(t *testing.T, sock, keyDir string) ([]Result, string) {
	dir := t.TempDir()
	askpassLog := filepath.Join(dir, "askpass.log")
	// ssh-add reads the lock password through askpass (twice for -x):
	// SSH_ASKPASS_REQUIRE=force makes it use askpass although stdin is not
	// a terminal.
	askpass := writeScript(t, filepath.Join(dir, "askpass"),
		`printf '%s\n' "$1" >> "$ASKPASS_LOG"`+"\n"+`printf '%s\n' "$LOCK_PASS"`+"\n")
	for _, m := range []string{"msg1", "msg2"} {
		os.WriteFile(filepath.Join(dir, m), []byte("message to sign\n"), 0o600)
	}
	var results []Result
	for _, st := range sshAddSteps {
		pass := st.pass
		if pass == "" {
			pass = lockPassword
		}
		env := append(cleanEnv(), "SSH_ASKPASS="+askpass, "SSH_ASKPASS_REQUIRE=force",
			"DISPLAY=:0", "LOCK_PASS="+pass, "ASKPASS_LOG="+askpassLog)
		switch st.noAgent {
		case "":
			env = append(env, "SSH_AUTH_SOCK="+sock)
		case "missing":
			env = append(env, "SSH_AUTH_SOCK="+filepath.Join(dir, "no-such-agent.sock"))
		}
		args := make([]string, len(st.args))
		for i, a := range st.args {
			a = strings.Replace(a, "KEYS/", keyDir+"/", 1)
			args[i] = strings.Replace(a, "RUN/", dir+"/", 1)
		}
		prog := st.prog
		if prog == "" {
			prog = "ssh-add"
		}
		r, _ := runAs(t, nil, env, "", 30*time.Second, prog, args...)
		norm := func(s string) string {
			s = strings.ReplaceAll(s, sock, "SOCK")
			s = strings.ReplaceAll(s, dir+"/", "RUN/")
			return strings.ReplaceAll(s, keyDir+"/", "KEYS/")
		}
		results = append(results, Result{Code: r.Code, Stdout: norm(r.Stdout), Stderr: norm(r.Stderr)})
	}
	prompts, _ := os.ReadFile(askpassLog)
	return results, string(prompts)
}

// TestOpenSSHAddInterop runs one table of ssh-add steps against the real
// ssh-agent and against llm-agent, and compares exit codes and output step
// by step.
func TestOpenSSHAddInterop(t *testing.T) {
	keyDir := t.TempDir()
	genKeys(t, keyDir, "ed25519", "rsa", "ecdsa")

	var ref, llm []Result
	var refPrompts, llmPrompts string
	t.Run("run", func(t *testing.T) {
		t.Run("ssh-agent", func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			sock := filepath.Join(dir, "ssh-agent.sock")
			startSSHAgent(t, sock)
			ref, refPrompts = runSSHAddSteps(t, sock, keyDir)
		})
		t.Run("llm-agent", func(t *testing.T) {
			t.Parallel()
			a := StartAgent(t, AgentOptions{})
			llm, llmPrompts = runSSHAddSteps(t, a.Admin, keyDir)
		})
	})
	if len(ref) != len(sshAddSteps) || len(llm) != len(sshAddSteps) {
		t.Fatalf("a run did not finish: %d and %d results for %d steps", len(ref), len(llm), len(sshAddSteps))
	}
	for i, st := range sshAddSteps {
		t.Run(fmt.Sprintf("%02d_%s", i, st.name), func(t *testing.T) {
			r, l := ref[i], llm[i]
			prog := st.prog
			if prog == "" {
				prog = "ssh-add"
			}
			cmd := prog + " " + strings.Join(st.args, " ")
			if r.Code != st.want || !strings.Contains(r.Stdout+r.Stderr, st.wantOut) {
				t.Errorf("the table is wrong about ssh-agent: %s: exit %d (table says %d), output %q (table expects %q)",
					cmd, r.Code, st.want, r.Stdout+r.Stderr, st.wantOut)
			}
			if l != r {
				t.Errorf("%s differs:\n  ssh-agent: exit %d stdout %q stderr %q\n  llm-agent: exit %d stdout %q stderr %q",
					cmd, r.Code, r.Stdout, r.Stderr, l.Code, l.Stdout, l.Stderr)
			}
		})
	}
	if refPrompts != llmPrompts {
		t.Errorf("askpass prompts differ:\n  ssh-agent run: %q\n  llm-agent run: %q", refPrompts, llmPrompts)
	} else {
		t.Logf("askpass prompts (both runs): %q", refPrompts)
	}
}

// TestOpenSSHConfirmSign compares what each agent does with a key added
// with ssh-add -c when the askpass program in its environment allows or
// refuses the use: a signature (ssh-keygen -Y sign through the agent)
// follows the owner's answer on both.
func TestOpenSSHConfirmSign(t *testing.T) {
	t.Parallel()
	keyDir := t.TempDir()
	genKeys(t, keyDir, "ed25519")
	for _, status := range []int{0, 1} {
		t.Run(fmt.Sprintf("askpass_exit_%d", status), func(t *testing.T) {
			t.Parallel()
			type outcome struct {
				add, sign Result
				prompt    string
			}
			run := func(t *testing.T, start func(env []string) string) outcome {
				dir := t.TempDir()
				prompt := filepath.Join(dir, "prompt")
				askpass := writeScript(t, filepath.Join(dir, "askpass"), fmt.Sprintf("printf '%%s' \"$1\" > %s\nexit %d\n", prompt, status))
				// ssh-agent uses askpass for confirmations only with a
				// display (or SSH_ASKPASS_REQUIRE=force).
				sock := start([]string{"SSH_ASKPASS=" + askpass, "DISPLAY=:0"})
				env := envWith("SSH_AUTH_SOCK=" + sock)
				msg := filepath.Join(dir, "msg")
				os.WriteFile(msg, []byte("message to sign\n"), 0o600)
				var o outcome
				o.add, _ = runAs(t, nil, env, "", 30*time.Second, "ssh-add", "-c", filepath.Join(keyDir, "id_ed25519"))
				o.sign, _ = runAs(t, nil, env, "", 30*time.Second, "ssh-keygen", "-Y", "sign", "-n", "e2e", "-f", filepath.Join(keyDir, "id_ed25519.pub"), msg)
				for _, r := range []*Result{&o.add, &o.sign} {
					r.Stdout = strings.ReplaceAll(strings.ReplaceAll(r.Stdout, dir, "RUN"), keyDir, "KEYS")
					r.Stderr = strings.ReplaceAll(strings.ReplaceAll(r.Stderr, dir, "RUN"), keyDir, "KEYS")
				}
				p, _ := os.ReadFile(prompt)
				o.prompt = string(p)
				return o
			}
			ref := run(t, func(env []string) string {
				sock := filepath.Join(t.TempDir(), "ssh-agent.sock")
				startSSHAgent(t, sock, env...)
				return sock
			})
			llm := run(t, func(env []string) string {
				return StartAgent(t, AgentOptions{Env: env}).Admin
			})
			t.Logf("ssh-agent prompt: %q", ref.prompt)
			t.Logf("llm-agent prompt: %q", llm.prompt)
			wantSign := 0
			if status != 0 {
				wantSign = 255
			}
			if ref.add.Code != 0 || ref.sign.Code != wantSign {
				t.Errorf("this test is wrong about ssh-agent: add exit %d, sign exit %d (want %d): %q", ref.add.Code, ref.sign.Code, wantSign, ref.sign.Stderr)
			}
			if llm.add != ref.add {
				t.Errorf("ssh-add -c differs:\n  ssh-agent: %+v\n  llm-agent: %+v", ref.add, llm.add)
			}
			if llm.sign != ref.sign {
				t.Errorf("signing with the -c key differs:\n  ssh-agent: %+v\n  llm-agent: %+v", ref.sign, llm.sign)
			}
			if llm.prompt == "" {
				t.Errorf("llm-agent did not ask the askpass program")
			}
		})
	}
}

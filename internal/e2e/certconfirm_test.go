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

// TestCertConfirm: a certificate signed by a real CA (ssh-keygen -s) and
// added with ssh-add -c through LLM_AUTH_SOCK asks the owner before each
// signature (ssh-keygen -Y sign through the agent). With its private
// OpenSSH ssh-agent (the default), llm-agent asks exactly when ssh-agent
// does: only under the entry that carries -c; stockAsked records that,
// checked against a real ssh-agent so the table cannot drift. Its
// in-process keyring (--ssh-agent none) is stricter: since a signature
// under the plain key serves a certificate login too (and the reverse), it
// asks under every blob of a private key any entry of which was added with
// -c, until that entry is removed (asked).
func TestCertConfirm(t *testing.T) {
	t.Parallel()
	keys := t.TempDir()
	full, plain, pub := filepath.Join(keys, "full"), filepath.Join(keys, "plain"), filepath.Join(keys, "pub")
	for _, d := range []string{full, plain, pub} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"-q", "-t", "ed25519", "-N", "", "-C", "e2e-ca", "-f", filepath.Join(keys, "ca")},
		{"-q", "-t", "ed25519", "-N", "", "-C", "e2e-user", "-f", filepath.Join(full, "id")},
		{"-q", "-s", filepath.Join(keys, "ca"), "-I", "e2e-cert", "-n", "e2e", filepath.Join(full, "id.pub")},
	} {
		if out, err := exec.Command("ssh-keygen", args...).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	// full/ holds the key and its certificate (ssh-add adds both), plain/
	// the key alone, pub/ only public halves: signing from pub/ must go
	// through the agent.
	copyFile := func(src, dst string, mode os.FileMode) {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, mode); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(filepath.Join(full, "id"), filepath.Join(plain, "id"), 0o600)
	copyFile(filepath.Join(full, "id.pub"), filepath.Join(plain, "id.pub"), 0o644)
	copyFile(filepath.Join(full, "id.pub"), filepath.Join(pub, "id.pub"), 0o644)
	copyFile(filepath.Join(full, "id-cert.pub"), filepath.Join(pub, "id-cert.pub"), 0o644)

	type sign struct {
		with              string // "key" or "cert"
		asked, stockAsked bool
	}
	tests := []struct {
		name  string
		adds  [][]string // ssh-add argument lists, FULL/ and PLAIN/ and PUB/ replaced
		signs []sign
	}{
		// ssh-add -c on the key file adds the certificate with -c too;
		// deleting plain/id.pub then leaves the certificate alone.
		{"cert_c", [][]string{{"-c", "FULL/id"}, {"-d", "PLAIN/id.pub"}}, []sign{{"cert", true, true}}},
		{"cert_c_key_plain", [][]string{{"-c", "FULL/id"}, {"PLAIN/id"}}, []sign{{"cert", true, true}, {"key", true, false}}},
		{"key_c_cert_plain", [][]string{{"FULL/id"}, {"-c", "PLAIN/id"}}, []sign{{"key", true, true}, {"cert", true, false}}},
		{"cert_c_removed", [][]string{{"-c", "FULL/id"}, {"PLAIN/id"}, {"-d", "PUB/id-cert.pub"}}, []sign{{"key", false, false}}},
	}
	for _, tt := range tests {
		for _, status := range []int{0, 1} {
			t.Run(fmt.Sprintf("%s/askpass_exit_%d", tt.name, status), func(t *testing.T) {
				t.Parallel()
				// run does the adds and signatures against the agent that
				// start returns the socket of, and reports for each
				// signature whether the owner was asked and its exit code.
				run := func(t *testing.T, start func(env []string) string) (asked []bool, codes []int) {
					dir := t.TempDir()
					prompts := filepath.Join(dir, "prompts")
					askpass := writeScript(t, filepath.Join(dir, "askpass"),
						fmt.Sprintf("printf '%%s\\n' \"$1\" >> %s\nexit %d\n", prompts, status))
					env := envWith("SSH_AUTH_SOCK=" + start([]string{"SSH_ASKPASS=" + askpass, "DISPLAY=:0"}))
					for _, a := range tt.adds {
						args := make([]string, len(a))
						for i, s := range a {
							s = strings.Replace(s, "FULL/", full+"/", 1)
							s = strings.Replace(s, "PLAIN/", plain+"/", 1)
							args[i] = strings.Replace(s, "PUB/", pub+"/", 1)
						}
						if r, _ := runAs(t, nil, env, "", 30*time.Second, "ssh-add", args...); r.Code != 0 {
							t.Fatalf("ssh-add %s: exit %d: %s", strings.Join(args, " "), r.Code, r.Stderr)
						}
					}
					n := 0
					for i, s := range tt.signs {
						msg := filepath.Join(dir, fmt.Sprintf("msg%d", i))
						os.WriteFile(msg, []byte("message to sign\n"), 0o600)
						f := filepath.Join(pub, "id.pub")
						if s.with == "cert" {
							f = filepath.Join(pub, "id-cert.pub")
						}
						r, _ := runAs(t, nil, env, "", 30*time.Second, "ssh-keygen", "-Y", "sign", "-n", "e2e", "-f", f, msg)
						b, _ := os.ReadFile(prompts)
						m := strings.Count(string(b), "\n")
						asked = append(asked, m > n)
						codes = append(codes, r.Code)
						n = m
						if r.Code != 0 && r.Code != 255 {
							t.Errorf("sign with the %s: exit %d: %s", s.with, r.Code, r.Stderr)
						}
					}
					return asked, codes
				}
				stockAsked, stockCodes := run(t, func(env []string) string {
					sock := filepath.Join(t.TempDir(), "ssh-agent.sock")
					startSSHAgent(t, sock, env...)
					return sock
				})
				asked, codes := run(t, func(env []string) string {
					return StartAgent(t, AgentOptions{Env: env, Args: []string{"--ssh-agent", "none"}}).Sock
				})
				childAsked, childCodes := run(t, func(env []string) string {
					return StartAgent(t, AgentOptions{Env: env}).Sock
				})
				for i, s := range tt.signs {
					want := func(wasAsked bool) int {
						if wasAsked && status != 0 {
							return 255
						}
						return 0
					}
					if stockAsked[i] != s.stockAsked || stockCodes[i] != want(s.stockAsked) {
						t.Errorf("the table is wrong about ssh-agent: sign with the %s: asked %v, exit %d", s.with, stockAsked[i], stockCodes[i])
					}
					if asked[i] != s.asked || codes[i] != want(s.asked) {
						t.Errorf("llm-agent --ssh-agent none: sign with the %s: owner asked %v (want %v), exit %d (want %d)", s.with, asked[i], s.asked, codes[i], want(s.asked))
					}
					if childAsked[i] != s.stockAsked || childCodes[i] != want(s.stockAsked) {
						t.Errorf("llm-agent: sign with the %s: owner asked %v (want %v, as ssh-agent), exit %d (want %d)", s.with, childAsked[i], s.stockAsked, childCodes[i], want(s.stockAsked))
					}
				}
			})
		}
	}
}

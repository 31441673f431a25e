package credcmd

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzParse: Parse never panics; it succeeds with a non-empty value that
// lies inside the output (a plain output's start), or fails with a
// one-line Failure that quotes nothing but the member names it looks for.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"sk-ant-FAKE\n",
		"hunter2\nlogin: alice\n",
		"\r\n",
		"",
		"\nlate\n",
		`{"key":"sk-json","expiresAt":"2030-01-02T03:04:05Z"}`,
		`{"access_token":"ya29.FAKE","expires_at":1893553445}`,
		`{"token":"a\u00e9\ud83d\ude00\n","Expiration":1893553445123}`,
		`{"Version":1,"AccessKeyId":"AKIA","SecretAccessKey":"s","Expiration":"2030-01-02T03:04:05Z"}`,
		`{"key":42}`, `{"key":"k","expiresAt":-1}`, `{"key":"k"`, `{"key":"k"} x`, `{"a":{"b":[1,2,{"c":null}]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		in := bytes.Clone(out)
		value, _, err := Parse(out)
		if err != nil {
			var fl *Failure
			if !errors.As(err, &fl) {
				t.Fatalf("not a Failure: %v", err)
			}
			if strings.ContainsAny(fl.Why, "\r\n") {
				t.Fatalf("failure of several lines: %q", fl.Why)
			}
			// Only the member names it looks for are quoted, never output.
			why := fl.Why
			for _, name := range append(append([]string(nil), ValueMembers...), ExpiryMembers...) {
				why = strings.ReplaceAll(why, `"`+name+`"`, "")
			}
			if strings.Contains(why, `"`) {
				t.Fatalf("failure quotes something: %q", fl.Why)
			}
			return
		}
		if len(value) == 0 {
			t.Fatal("success with an empty value")
		}
		if !within(value, out) {
			t.Fatal("the value is not inside the output")
		}
		if bytes.TrimLeft(in, " \t\r\n")[0] != '{' && !bytes.HasPrefix(in, value) {
			t.Fatalf("plain output %q: value %q is not its start", in, value)
		}
	})
}

package credcmd

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	tests := []struct {
		name, out string
		value     string
		expires   time.Time
		fail      string // the Failure's Why, if any
	}{
		{"plain", "sk-ant-FAKE\n", "sk-ant-FAKE", time.Time{}, ""},
		{"no line end", "sk-ant-FAKE", "sk-ant-FAKE", time.Time{}, ""},
		{"crlf", "sk-ant-FAKE\r\n", "sk-ant-FAKE", time.Time{}, ""},
		{"pass metadata", "hunter2\nlogin: alice\nurl: example.com\n", "hunter2", time.Time{}, ""},
		{"inner spaces kept", "a b \n", "a b ", time.Time{}, ""},
		{"empty", "", "", time.Time{}, "printed nothing"},
		{"blank", " \n\r\n\t", "", time.Time{}, "printed nothing"},
		{"blank first line", "\nsk-late\n", "", time.Time{}, "printed a blank first line (the value is the first line)"},
		{"json key", `{"key":"sk-json"}`, "sk-json", time.Time{}, ""},
		{"json after blanks", "\n  {\"token\":\"t\"}\n", "t", time.Time{}, ""},
		{"json value member", `{"id":"x","value":"v"}`, "v", time.Time{}, ""},
		{"json two value members", `{"accessToken":"a","apiKey":"b"}`, "", time.Time{},
			`printed JSON with more than one value member ("apiKey" and "accessToken"): make it print one, e.g. with jq -r`},
		{"json bws shape", `{"id":"1","key":"OPENAI_KEY","value":"sk-FAKE"}`, "", time.Time{},
			`printed JSON with more than one value member ("key" and "value"): make it print one, e.g. with jq -r`},
		{"json escapes", `{"access_token":"a\u00e9\"\\\/\n"}`, "a\u00e9\"\\/\n", time.Time{}, ""},
		{"json rfc3339", `{"key":"k","expiresAt":"2030-01-02T03:04:05Z"}`, "k", at("2030-01-02T03:04:05Z"), ""},
		{"json rfc3339 offset", `{"key":"k","Expiration":"2030-01-02T05:04:05.5+02:00"}`, "k", at("2030-01-02T03:04:05.5Z"), ""},
		{"json seconds", `{"key":"k","expires_at":1893553445}`, "k", time.Unix(1893553445, 0), ""},
		{"json milliseconds", `{"key":"k","expiresAt":1893553445123}`, "k", time.UnixMilli(1893553445123), ""},
		{"json fraction", `{"key":"k","expiresAt":1893553445.5}`, "k", time.UnixMilli(1893553445500), ""},
		{"json null expiry", `{"key":"k","expiresAt":null}`, "k", time.Time{}, ""},
		{"json first expiry member wins", `{"key":"k","Expiration":"x","expiresAt":1893553445}`, "k", time.Unix(1893553445, 0), ""},
		{"json no value", `{"Version":1,"SecretAccessKey":"s"}`, "", time.Time{},
			`printed JSON without a value: no "key", "token", "apiKey", "access_token", "accessToken" or "value" member`},
		{"json value not a string", `{"key":42}`, "", time.Time{}, `printed JSON whose "key" is number, not a string`},
		{"json value empty", `{"token":""}`, "", time.Time{}, `printed JSON whose "token" is empty`},
		{"json bad expiry", `{"key":"k","expiresAt":"tomorrow"}`, "", time.Time{}, `printed JSON whose "expiresAt" is not a time (want RFC 3339, or seconds or milliseconds since the epoch)`},
		{"json negative expiry", `{"key":"k","expiresAt":-1}`, "", time.Time{}, `printed JSON whose "expiresAt" is not a time (want RFC 3339, or seconds or milliseconds since the epoch)`},
		{"json boolean expiry", `{"key":"k","expiresAt":true}`, "", time.Time{}, `printed JSON whose "expiresAt" is not a time (want RFC 3339, or seconds or milliseconds since the epoch)`},
		{"json truncated", `{"key":"sk-SECRET`, "", time.Time{}, "printed JSON that does not parse (at byte 7: unterminated string)"},
		{"json trailing text", `{"key":"k"} sk-SECRET`, "", time.Time{}, "printed JSON that does not parse (at byte 12: unexpected data after the JSON value)"},
		{"json duplicate", `{"key":"a","key":"b"}`, "", time.Time{}, "printed JSON that does not parse (at byte 11: duplicate object key)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := []byte(tt.out)
			value, expires, err := Parse(out)
			if tt.fail != "" {
				var f *Failure
				if !errors.As(err, &f) || f.Why != tt.fail {
					t.Fatalf("got %q, %v; want the failure %q", value, err, tt.fail)
				}
				if strings.Contains(f.Error(), "SECRET") {
					t.Fatalf("the failure quotes the output: %v", f)
				}
				return
			}
			if err != nil || string(value) != tt.value || !expires.Equal(tt.expires) {
				t.Fatalf("got %q, %v, %v; want %q, %v", value, expires, err, tt.value, tt.expires)
			}
			if !within(value, out) {
				t.Fatalf("the value is not a subslice of the output")
			}
		})
	}
}

// within reports whether sub lies inside buf's memory.
func within(sub, buf []byte) bool {
	for i := range buf {
		if &buf[i] == &sub[0] {
			return i+len(sub) <= len(buf)
		}
	}
	return false
}

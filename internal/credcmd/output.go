package credcmd

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/llm-agent/llm-agent/internal/jsonread"
)

// Failure is why a run gave no value. Why completes "the command ...",
// is one line, and never holds a byte of what the command printed.
type Failure struct{ Why string }

func (f *Failure) Error() string { return "the command " + f.Why }

func failf(format string, a ...any) *Failure { return &Failure{Why: fmt.Sprintf(format, a...)} }

// ValueMembers are the members of a JSON answer that can hold the value.
// Exactly one may be present: Bitwarden's bws prints the secret's name as
// "key" beside its "value", and taking either silently could send a name
// to the provider as a key.
var ValueMembers = []string{"key", "token", "apiKey", "access_token", "accessToken", "value"}

// ExpiryMembers are the members of a JSON answer that can say when the
// value expires, in the order they are looked for: an RFC 3339 string,
// or a number of seconds or milliseconds since the epoch (see
// MillisFrom); null means no expiry.
var ExpiryMembers = []string{"expiresAt", "expires_at", "Expiration"}

// MillisFrom tells the two kinds of numeric expiry apart: a number below
// it is seconds since the epoch (it is the year 5138 in seconds), from it
// up milliseconds (1973 in milliseconds).
const MillisFrom = 1e11

// Parse takes the value, and its expiry (zero: none given), from what a
// command printed. Output whose first non-blank byte is '{' is a JSON
// object (ValueMembers, ExpiryMembers); any other output's first line is
// the value, without its line end, and what follows it is ignored (pass
// keeps metadata there). value is a subslice of out, which Parse may
// change: a JSON string is decoded over its own bytes, so that a value
// read into locked memory stays there. Errors are Failures.
func Parse(out []byte) (value []byte, expires time.Time, err error) {
	body := bytes.TrimLeft(out, " \t\r\n")
	if len(body) == 0 {
		return nil, time.Time{}, &Failure{Why: "printed nothing"}
	}
	if body[0] == '{' {
		return parseJSON(out)
	}
	line := out
	if i := bytes.IndexByte(out, '\n'); i >= 0 {
		line = out[:i]
	}
	line = bytes.TrimSuffix(line, []byte{'\r'})
	if len(bytes.Trim(line, " \t")) == 0 {
		return nil, time.Time{}, &Failure{Why: "printed a blank first line (the value is the first line)"}
	}
	return line, time.Time{}, nil
}

func parseJSON(out []byte) ([]byte, time.Time, error) {
	root, err := jsonread.Parse(out)
	if err != nil {
		var se *jsonread.SyntaxError
		if errors.As(err, &se) {
			// Keys are quoted in some messages; the output's bytes stay out.
			msg, _, _ := strings.Cut(se.Msg, `"`)
			return nil, time.Time{}, failf("printed JSON that does not parse (at byte %d: %s)", se.Off, strings.TrimSpace(msg))
		}
		return nil, time.Time{}, failf("printed JSON that does not parse (%v)", err)
	}
	if root.Kind != jsonread.Object {
		return nil, time.Time{}, failf("printed JSON that is not an object")
	}
	var expires time.Time
	for _, name := range ExpiryMembers {
		v, ok := root.Get(name)
		if !ok {
			continue
		}
		if expires, err = expiry(name, out, v); err != nil {
			return nil, time.Time{}, err
		}
		break
	}
	var present []string
	for _, name := range ValueMembers {
		if _, ok := root.Get(name); ok {
			present = append(present, name)
		}
	}
	if len(present) > 1 {
		return nil, time.Time{}, failf("printed JSON with more than one value member (%s): make it print one, e.g. with jq -r", andList(present))
	}
	for _, name := range present {
		v, _ := root.Get(name)
		if v.Kind != jsonread.String {
			return nil, time.Time{}, failf("printed JSON whose %q is %s, not a string", name, v.Kind)
		}
		value := jsonread.UnquoteInPlace(out[v.Start:v.End], v.Escaped)
		if len(value) == 0 {
			return nil, time.Time{}, failf("printed JSON whose %q is empty", name)
		}
		return value, expires, nil
	}
	return nil, time.Time{}, failf("printed JSON without a value: no %s member", orList(ValueMembers))
}

// expiry reads the expiry member name, whose value is v.
func expiry(name string, out []byte, v jsonread.Value) (time.Time, error) {
	bad := failf("printed JSON whose %q is not a time (want RFC 3339, or seconds or milliseconds since the epoch)", name)
	switch v.Kind {
	case jsonread.Null:
		return time.Time{}, nil
	case jsonread.String:
		t, err := time.Parse(time.RFC3339, string(jsonread.Unquote(out[v.Start:v.End], v.Escaped)))
		if err != nil {
			return time.Time{}, bad
		}
		return t, nil
	case jsonread.Number:
		n, err := strconv.ParseFloat(string(out[v.Start:v.End]), 64)
		// Beyond 1e15 ms (the year 33658) nothing is meant.
		if err != nil || !(n > 0 && n < 1e15) {
			return time.Time{}, bad
		}
		if n < MillisFrom {
			n *= 1000
		}
		return time.UnixMilli(int64(math.Round(n))), nil
	}
	return time.Time{}, bad
}

// orList renders names as "a", "b" or "c".
func orList(names []string) string { return joinList(names, " or ") }

// andList renders names as "a", "b" and "c".
func andList(names []string) string { return joinList(names, " and ") }

func joinList(names []string, last string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + last + q[len(q)-1]
}

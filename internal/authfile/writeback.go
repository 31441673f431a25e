package authfile

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/llm-agent/llm-agent/internal/jsonread"
	"github.com/llm-agent/llm-agent/protocol"
)

// Errors of ReplaceOAuth and WriteBack; their messages never hold a value
// from the file.
var (
	// ErrNoEntry: the file no longer holds an OAuth entry for the provider
	// (logged out, or the file was replaced by another format).
	ErrNoEntry = errors.New("the file holds no OAuth entry for that provider")
	// ErrEntryChanged: the entry's refresh token is not the one the caller
	// replaced, so someone else (a new login) wrote it; it is left alone.
	ErrEntryChanged = errors.New("the entry's refresh token has changed since it was imported (a new login?)")
)

// Update is what an OAuth refresh changed in an entry.
type Update struct {
	Access  []byte // the new access token
	Refresh []byte // the new refresh token; nil keeps the file's
	Expires int64  // expiry of Access in epoch milliseconds; 0 unknown
	// Previous, when not nil, is the refresh token the entry must hold
	// now; if it holds another, ReplaceOAuth fails with ErrEntryChanged.
	Previous []byte
	// Now stamps a Codex file's last_refresh.
	Now time.Time
}

// edit replaces data[start:end] with repl (an insertion when start == end).
type edit struct {
	start, end int
	repl       []byte
}

// ReplaceOAuth returns a copy of data, a credential file of the given
// format, in which the OAuth entry of provider holds the tokens of u:
//
//	opencode  the provider's "access", "refresh" and "expires"
//	claude    claudeAiOauth's "accessToken", "refreshToken", "expiresAt"
//	          (provider "anthropic")
//	codex     tokens' "access_token" and "refresh_token", and the
//	          top-level "last_refresh" (provider "openai")
//
// Only those values change: every other byte of data, other entries and
// members, whitespace and key order included, is kept. A member that is
// missing (expiresAt, last_refresh) is added after the object's last one.
// The result holds secrets and is a fresh buffer for the caller to wipe;
// data is not modified.
func ReplaceOAuth(format Format, data []byte, provider string, u Update) ([]byte, error) {
	// Only a file that reads as a credential file is rewritten.
	if _, entries, err := Parse("", data); err != nil {
		return nil, errors.New("the file is no longer a valid credential file")
	} else {
		wipeAll(entries)
	}
	root, _ := jsonread.Parse(data)
	if detect(root) != format {
		return nil, fmt.Errorf("the file is no longer a %s file", format)
	}
	var obj jsonread.Value // the object holding the tokens
	var accessKey, refreshKey, expiresKey string
	var edits []edit
	switch format {
	case FormatOpencode:
		v, ok := root.Get(provider)
		if !ok || v.Kind != jsonread.Object {
			return nil, ErrNoEntry
		}
		if t, ok := v.Get("type"); !ok || t.Kind != jsonread.String || string(data[t.Start:t.End]) != `"oauth"` {
			return nil, ErrNoEntry
		}
		obj, accessKey, refreshKey, expiresKey = v, protocol.FieldAccess, protocol.FieldRefresh, protocol.FieldExpires
	case FormatClaude:
		v, _ := root.Get("claudeAiOauth")
		if provider != "anthropic" || v.Kind != jsonread.Object {
			return nil, ErrNoEntry
		}
		obj, accessKey, refreshKey, expiresKey = v, "accessToken", "refreshToken", "expiresAt"
	case FormatCodex:
		v, _ := root.Get("tokens")
		if provider != "openai" || v.Kind != jsonread.Object {
			return nil, ErrNoEntry
		}
		obj, accessKey, refreshKey = v, "access_token", "refresh_token"
		// Codex keeps last_refresh at the top level; Parse also accepts it
		// inside tokens, where it is then updated.
		stamp := strconv.AppendQuote(nil, u.Now.UTC().Format("2006-01-02T15:04:05.000000Z"))
		where := root
		if _, top := root.Get("last_refresh"); !top {
			if _, in := v.Get("last_refresh"); in {
				where = v
			}
		}
		edits = append(edits, setMember(data, where, "last_refresh", stamp))
	default:
		return nil, fmt.Errorf("unknown file format %q", format)
	}

	refresh, ok := obj.Get(refreshKey)
	if !ok || refresh.Kind != jsonread.String {
		return nil, ErrNoEntry
	}
	if u.Previous != nil {
		cur := jsonread.Unquote(data[refresh.Start:refresh.End], refresh.Escaped)
		same := subtle.ConstantTimeCompare(cur, u.Previous) == 1
		clear(cur)
		if !same {
			return nil, ErrEntryChanged
		}
	}
	if u.Refresh != nil {
		edits = append(edits, edit{refresh.Start, refresh.End, jsonString(u.Refresh)})
	}
	edits = append(edits, setMember(data, obj, accessKey, jsonString(u.Access)))
	if expiresKey != "" {
		edits = append(edits, setMember(data, obj, expiresKey, strconv.AppendInt(nil, u.Expires, 10)))
	}
	out := apply(data, edits)
	for _, e := range edits {
		clear(e.repl)
	}
	// Never hand back something the parsers would not read the same way.
	if f, entries, err := Parse("", out); err != nil || f != format {
		clear(out)
		return nil, errors.New("internal error: the rewritten file does not parse")
	} else {
		wipeAll(entries)
	}
	return out, nil
}

// setMember returns the edit that sets obj's member key to the raw JSON
// val: its value replaced, or a new member after the last one, spaced as
// the last one is.
func setMember(data []byte, obj jsonread.Value, key string, val []byte) edit {
	if v, ok := obj.Get(key); ok {
		return edit{v.Start, v.End, val}
	}
	qkey := strconv.Quote(key)
	if len(obj.Members) == 0 {
		return edit{obj.Start + 1, obj.Start + 1, slices.Concat([]byte(qkey), []byte(":"), val)}
	}
	last := obj.Members[len(obj.Members)-1]
	// The whitespace before the last key (after its ',' or '{') and around
	// its ':' is reused, so a pretty-printed file stays pretty.
	lead := last.KeyStart
	for lead > obj.Start+1 && isSpace(data[lead-1]) {
		lead--
	}
	ins := slices.Concat([]byte(","), data[lead:last.KeyStart], []byte(qkey), data[last.KeyEnd:last.Val.Start], val)
	return edit{last.Val.End, last.Val.End, ins}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// jsonString renders b as a JSON string in a buffer of exactly its size.
func jsonString(b []byte) []byte {
	return buildJSON(func(w *jsonWriter) { w.str(b) })
}

// apply returns data with edits applied, in one buffer of the final size
// so that no partial copy of a secret is left behind by growth.
func apply(data []byte, edits []edit) []byte {
	slices.SortFunc(edits, func(a, b edit) int { return a.start - b.start })
	n := len(data)
	for _, e := range edits {
		n += len(e.repl) - (e.end - e.start)
	}
	out := make([]byte, 0, n)
	pos := 0
	for _, e := range edits {
		out = append(out, data[pos:e.start]...)
		out = append(out, e.repl...)
		pos = e.end
	}
	return append(out, data[pos:]...)
}

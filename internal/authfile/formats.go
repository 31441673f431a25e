package authfile

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/llm-agent/llm-agent/internal/jsonread"
	"github.com/llm-agent/llm-agent/protocol"
)

// decoder maps a parsed file to entries and words the errors.
type decoder struct {
	name string // display name for errors
	data []byte
}

func (d *decoder) syntaxErr(err error) error {
	var se *jsonread.SyntaxError
	if !errors.As(err, &se) {
		return fmt.Errorf("%s: %w", d.name, err)
	}
	line, col := jsonread.LineCol(d.data, se.Off)
	return fmt.Errorf("%s: invalid JSON at line %d, column %d: %w", d.name, line, col, se)
}

// fieldErr reports a problem with the member at path (a dotted JSON path).
func (d *decoder) fieldErr(path, msg string) error {
	return fmt.Errorf(`%s: "%s": %s`, d.name, path, msg)
}

func (d *decoder) typeErr(path, want string, got jsonread.Kind) error {
	return d.fieldErr(path, "want "+want+", got "+got.String())
}

func (d *decoder) missing(path string) error {
	return d.fieldErr(path, "required field is missing")
}

func joinPath(parent, key string) string {
	if parent == "" {
		return jsonread.SafeKey(key)
	}
	return parent + "." + jsonread.SafeKey(key)
}

func (d *decoder) raw(v jsonread.Value) []byte { return d.data[v.Start:v.End] }

func (d *decoder) rawMember(m jsonread.Member) rawMember {
	return rawMember{key: d.data[m.KeyStart:m.KeyEnd], val: d.data[m.Val.Start:m.Val.End]}
}

// str decodes a string value into a new slice owned by the caller.
func (d *decoder) str(path string, v jsonread.Value) ([]byte, error) {
	if v.Kind != jsonread.String {
		return nil, d.typeErr(path, "a string", v.Kind)
	}
	return jsonread.Unquote(d.raw(v), v.Escaped), nil
}

// millis converts a JSON number of epoch milliseconds to decimal ASCII.
// Any notation is accepted as long as the value is a whole number.
func (d *decoder) millis(path string, v jsonread.Value) ([]byte, error) {
	if v.Kind != jsonread.Number {
		return nil, d.typeErr(path, "a number (epoch milliseconds)", v.Kind)
	}
	raw := string(d.raw(v))
	if !bytes.ContainsAny(d.raw(v), ".eE") {
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return nil, d.fieldErr(path, "number out of range")
		}
		return strconv.AppendInt(nil, n, 10), nil
	}
	f, err := strconv.ParseFloat(raw, 64)
	if err != nil || f < -(1<<63) || f >= 1<<63 {
		return nil, d.fieldErr(path, "number out of range")
	}
	if f != math.Trunc(f) {
		return nil, d.fieldErr(path, "want a whole number of milliseconds")
	}
	return strconv.AppendInt(nil, int64(f), 10), nil
}

// buildExtra returns the Extra object for ms, or nil when there is nothing.
func buildExtra(ms []rawMember) []byte {
	if len(ms) == 0 {
		return nil
	}
	return buildJSON(func(w *jsonWriter) { w.object(ms) })
}

// opencode maps auth.json: provider id -> {"type": kind, fields...}.
func (d *decoder) opencode(root jsonread.Value) ([]Entry, error) {
	entries := make([]Entry, 0, len(root.Members))
	for _, m := range root.Members {
		if m.Key == "" {
			return entries, d.fieldErr(jsonread.SafeKey(m.Key), "empty provider id")
		}
		e, err := d.opencodeEntry(m.Key, m.Val)
		if err != nil {
			return entries, err
		}
		entries = append(entries, e)
	}
	return entries, nil
}

func (d *decoder) opencodeEntry(provider string, v jsonread.Value) (Entry, error) {
	path := jsonread.SafeKey(provider)
	if v.Kind != jsonread.Object {
		return Entry{}, d.typeErr(path, "an object", v.Kind)
	}
	typ, ok := v.Get("type")
	if !ok {
		return Entry{}, d.missing(path + ".type")
	}
	if typ.Kind != jsonread.String {
		return Entry{}, d.typeErr(path+".type", "a string", typ.Kind)
	}
	kind := string(jsonread.Unquote(d.raw(typ), typ.Escaped))
	specs, ok := kindFields(kind)
	if !ok {
		return Entry{}, d.fieldErr(path+".type", `unknown credential type (want "api", "oauth" or "wellknown")`)
	}
	e := Entry{Provider: provider, Kind: kind, Fields: make(map[string][]byte, len(specs))}
	extra, err := d.fields(path, v, specs, &e, func(key string) (bool, string) { return key != "type", "" })
	if err != nil {
		return Entry{}, err
	}
	e.Extra = buildExtra(extra)
	return e, nil
}

// claude maps ~/.claude/.credentials.json:
// {"claudeAiOauth": {"accessToken", "refreshToken", "expiresAt", ...}, ...}.
func (d *decoder) claude(root jsonread.Value) ([]Entry, error) {
	var oauth jsonread.Value
	var top []rawMember
	for _, m := range root.Members {
		if m.Key == "claudeAiOauth" {
			oauth = m.Val
		} else {
			top = append(top, d.rawMember(m))
		}
	}
	if oauth.Kind == jsonread.Null {
		return []Entry{}, nil // logged out
	}
	if oauth.Kind != jsonread.Object {
		return nil, d.typeErr("claudeAiOauth", "an object", oauth.Kind)
	}
	e := Entry{Provider: "anthropic", Kind: protocol.KindOAuth, Fields: make(map[string][]byte, 3)}
	extra, err := d.fields("claudeAiOauth", oauth, []fieldSpec{
		{name: protocol.FieldAccess, key: "accessToken"},
		{name: protocol.FieldRefresh, key: "refreshToken"},
		{name: protocol.FieldExpires, key: "expiresAt", number: true, optional: true},
	}, &e, func(key string) (bool, string) {
		if key == ExtraTopLevelKey {
			return false, "field name is reserved by llm-agent"
		}
		return true, ""
	})
	if err != nil {
		return nil, err
	}
	if _, ok := e.Fields[protocol.FieldExpires]; !ok {
		e.Fields[protocol.FieldExpires] = []byte("0") // unknown: refresh before use
	}
	if len(top) > 0 {
		extra = append(extra, rawMember{key: []byte(strconv.Quote(ExtraTopLevelKey)), sub: top})
	}
	e.Extra = buildExtra(extra)
	return []Entry{e}, nil
}

// codex maps ~/.codex/auth.json:
// {"OPENAI_API_KEY": null|"sk-...", "tokens": null|{...}, "last_refresh": "..."}.
func (d *decoder) codex(root jsonread.Value) ([]Entry, error) {
	var apiKey, tokens jsonread.Value // zero value is null: absent counts as null
	var lastRefresh *jsonread.Member
	var top []rawMember
	for i, m := range root.Members {
		switch m.Key {
		case "OPENAI_API_KEY":
			apiKey = m.Val
		case "tokens":
			tokens = m.Val
		case "last_refresh":
			lastRefresh = &root.Members[i]
		default:
			top = append(top, d.rawMember(m))
		}
	}
	if apiKey.Kind != jsonread.Null && apiKey.Kind != jsonread.String {
		return nil, d.typeErr("OPENAI_API_KEY", "a string or null", apiKey.Kind)
	}
	if tokens.Kind != jsonread.Null && tokens.Kind != jsonread.Object {
		return nil, d.typeErr("tokens", "an object or null", tokens.Kind)
	}
	var entries []Entry
	var extra []rawMember // for the first entry
	if tokens.Kind == jsonread.Object {
		e, tokExtra, err := d.codexTokens(tokens, lastRefresh != nil)
		if err != nil {
			return nil, err
		}
		entries = append(entries, e)
		extra = tokExtra
	}
	if apiKey.Kind == jsonread.String && apiKey.End-apiKey.Start > 2 { // "" means no key
		provider := "openai"
		if len(entries) > 0 {
			provider = CodexAPIKeyProvider
		}
		key := jsonread.Unquote(d.raw(apiKey), apiKey.Escaped)
		entries = append(entries, Entry{Provider: provider, Kind: protocol.KindAPI, Fields: map[string][]byte{protocol.FieldKey: key}})
	}
	if len(entries) == 0 {
		return []Entry{}, nil // logged out; nothing to carry the rest
	}
	// The first entry carries the rest of the file, for writing it back.
	if lastRefresh != nil {
		extra = append(extra, d.rawMember(*lastRefresh))
	}
	if len(top) > 0 {
		extra = append(extra, rawMember{key: []byte(strconv.Quote(ExtraTopLevelKey)), sub: top})
	}
	entries[0].Extra = buildExtra(extra)
	return entries, nil
}

// codexTokens maps the tokens object; it returns the members to keep in Extra.
func (d *decoder) codexTokens(tokens jsonread.Value, hasLastRefresh bool) (Entry, []rawMember, error) {
	e := Entry{Provider: "openai", Kind: protocol.KindOAuth, Fields: make(map[string][]byte, 4)}
	extra, err := d.fields("tokens", tokens, []fieldSpec{
		{name: protocol.FieldAccess, key: "access_token"},
		{name: protocol.FieldRefresh, key: "refresh_token"},
		{name: protocol.FieldAccountID, key: "account_id", optional: true},
	}, &e, func(key string) (bool, string) {
		switch {
		case key == ExtraTopLevelKey:
			return false, "field name is reserved by llm-agent"
		case key == "last_refresh" && hasLastRefresh:
			return false, "clashes with the top-level last_refresh"
		}
		return true, "" // id_token and anything new
	})
	if err != nil {
		return Entry{}, nil, err
	}
	e.Fields[protocol.FieldExpires] = strconv.AppendInt(nil, jsonread.JWTExpiry(e.Fields[protocol.FieldAccess]), 10)
	return e, extra, nil
}

// fields reads the members of obj (at path) that specs name into e.Fields
// and returns the others, for Extra, where other says to keep them; other
// may refuse a member instead, with a message. A missing required field is
// an error. On error e is wiped.
func (d *decoder) fields(path string, obj jsonread.Value, specs []fieldSpec, e *Entry, other func(key string) (keep bool, refuse string)) ([]rawMember, error) {
	var extra []rawMember
members:
	for _, m := range obj.Members {
		p := joinPath(path, m.Key)
		for _, f := range specs {
			if f.member() != m.Key {
				continue
			}
			if f.optional && m.Val.Kind == jsonread.Null {
				continue members // as if absent
			}
			read := d.str
			if f.number {
				read = d.millis
			}
			b, err := read(p, m.Val)
			if err != nil {
				e.Wipe()
				return nil, err
			}
			e.Fields[f.name] = b
			continue members
		}
		switch keep, refuse := other(m.Key); {
		case refuse != "":
			e.Wipe()
			return nil, d.fieldErr(p, refuse)
		case keep:
			extra = append(extra, d.rawMember(m))
		}
	}
	for _, f := range specs {
		if _, ok := e.Fields[f.name]; !ok && !f.optional {
			e.Wipe()
			return nil, d.missing(joinPath(path, f.member()))
		}
	}
	return extra, nil
}

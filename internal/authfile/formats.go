package authfile

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// decoder maps a parsed file to entries and words the errors.
type decoder struct {
	name string // display name for errors
	data []byte
}

func (d *decoder) syntaxErr(err error) error {
	var se *syntaxError
	if !errors.As(err, &se) {
		return fmt.Errorf("%s: %w", d.name, err)
	}
	line, col := lineCol(d.data, se.off)
	return fmt.Errorf("%s: invalid JSON at line %d, column %d: %w", d.name, line, col, se)
}

// fieldErr reports a problem with the member at path (a dotted JSON path).
func (d *decoder) fieldErr(path, msg string) error {
	return fmt.Errorf(`%s: "%s": %s`, d.name, path, msg)
}

func (d *decoder) typeErr(path, want string, got jsonKind) error {
	return d.fieldErr(path, "want "+want+", got "+got.String())
}

func (d *decoder) missing(path string) error {
	return d.fieldErr(path, "required field is missing")
}

func joinPath(parent, key string) string {
	if parent == "" {
		return pathKey(key)
	}
	return parent + "." + pathKey(key)
}

func (d *decoder) raw(v jsonValue) []byte { return d.data[v.start:v.end] }

func (d *decoder) rawMember(m jsonMember) rawMember {
	return rawMember{key: d.data[m.keyStart:m.keyEnd], val: d.data[m.val.start:m.val.end]}
}

// str decodes a string value into a new slice owned by the caller.
func (d *decoder) str(path string, v jsonValue) ([]byte, error) {
	if v.kind != jString {
		return nil, d.typeErr(path, "a string", v.kind)
	}
	return decodeString(d.raw(v), v.escaped), nil
}

// millis converts a JSON number of epoch milliseconds to decimal ASCII.
// Any notation is accepted as long as the value is a whole number.
func (d *decoder) millis(path string, v jsonValue) ([]byte, error) {
	if v.kind != jNumber {
		return nil, d.typeErr(path, "a number (epoch milliseconds)", v.kind)
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
func (d *decoder) opencode(root jsonValue) ([]Entry, error) {
	entries := make([]Entry, 0, len(root.members))
	for _, m := range root.members {
		if m.key == "" {
			return entries, d.fieldErr(pathKey(m.key), "empty provider id")
		}
		e, err := d.opencodeEntry(m.key, m.val)
		if err != nil {
			return entries, err
		}
		entries = append(entries, e)
	}
	return entries, nil
}

func (d *decoder) opencodeEntry(provider string, v jsonValue) (Entry, error) {
	path := pathKey(provider)
	if v.kind != jObject {
		return Entry{}, d.typeErr(path, "an object", v.kind)
	}
	typ, ok := v.get("type")
	if !ok {
		return Entry{}, d.missing(path + ".type")
	}
	if typ.kind != jString {
		return Entry{}, d.typeErr(path+".type", "a string", typ.kind)
	}
	kind := string(decodeString(d.raw(typ), typ.escaped))
	specs, ok := kindFields(kind)
	if !ok {
		return Entry{}, d.fieldErr(path+".type", `unknown credential type (want "api", "oauth" or "wellknown")`)
	}
	e := Entry{Provider: provider, Kind: kind, Fields: make(map[string][]byte, len(specs))}
	var extra []rawMember
members:
	for _, m := range v.members {
		if m.key == "type" {
			continue
		}
		for _, f := range specs {
			if f.name != m.key {
				continue
			}
			p := joinPath(path, m.key)
			var b []byte
			var err error
			switch {
			case f.optional && m.val.kind == jNull:
				continue members // opencode would drop it too
			case f.number:
				b, err = d.millis(p, m.val)
			default:
				b, err = d.str(p, m.val)
			}
			if err != nil {
				e.Wipe()
				return Entry{}, err
			}
			e.Fields[f.name] = b
			continue members
		}
		extra = append(extra, d.rawMember(m))
	}
	for _, f := range specs {
		if _, ok := e.Fields[f.name]; !ok && !f.optional {
			e.Wipe()
			return Entry{}, d.missing(path + "." + f.name)
		}
	}
	e.Extra = buildExtra(extra)
	return e, nil
}

// claude maps ~/.claude/.credentials.json:
// {"claudeAiOauth": {"accessToken", "refreshToken", "expiresAt", ...}, ...}.
func (d *decoder) claude(root jsonValue) ([]Entry, error) {
	var oauth jsonValue
	var top []rawMember
	for _, m := range root.members {
		if m.key == "claudeAiOauth" {
			oauth = m.val
		} else {
			top = append(top, d.rawMember(m))
		}
	}
	if oauth.kind == jNull {
		return []Entry{}, nil // logged out
	}
	if oauth.kind != jObject {
		return nil, d.typeErr("claudeAiOauth", "an object", oauth.kind)
	}
	e := Entry{Provider: "anthropic", Kind: KindOAuth, Fields: make(map[string][]byte, 3)}
	var extra []rawMember
	for _, m := range oauth.members {
		p := joinPath("claudeAiOauth", m.key)
		var b []byte
		var err error
		switch m.key {
		case "accessToken":
			b, err = d.str(p, m.val)
			e.Fields[FieldAccess] = b
		case "refreshToken":
			b, err = d.str(p, m.val)
			e.Fields[FieldRefresh] = b
		case "expiresAt":
			if m.val.kind != jNull {
				b, err = d.millis(p, m.val)
				e.Fields[FieldExpires] = b
			}
		case ExtraTopLevelKey:
			err = d.fieldErr(p, "field name is reserved by llm-agent")
		default:
			extra = append(extra, d.rawMember(m))
		}
		if err != nil {
			e.Wipe()
			return nil, err
		}
	}
	for _, f := range []struct{ field, path string }{
		{FieldAccess, "claudeAiOauth.accessToken"},
		{FieldRefresh, "claudeAiOauth.refreshToken"},
	} {
		if _, ok := e.Fields[f.field]; !ok {
			e.Wipe()
			return nil, d.missing(f.path)
		}
	}
	if _, ok := e.Fields[FieldExpires]; !ok {
		e.Fields[FieldExpires] = []byte("0") // unknown: refresh before use
	}
	if len(top) > 0 {
		extra = append(extra, rawMember{key: []byte(strconv.Quote(ExtraTopLevelKey)), sub: top})
	}
	e.Extra = buildExtra(extra)
	return []Entry{e}, nil
}

// codex maps ~/.codex/auth.json:
// {"OPENAI_API_KEY": null|"sk-...", "tokens": null|{...}, "last_refresh": "..."}.
func (d *decoder) codex(root jsonValue) ([]Entry, error) {
	var apiKey, tokens jsonValue // zero value is null: absent counts as null
	var lastRefresh *jsonMember
	var top []rawMember
	for i, m := range root.members {
		switch m.key {
		case "OPENAI_API_KEY":
			apiKey = m.val
		case "tokens":
			tokens = m.val
		case "last_refresh":
			lastRefresh = &root.members[i]
		default:
			top = append(top, d.rawMember(m))
		}
	}
	if apiKey.kind != jNull && apiKey.kind != jString {
		return nil, d.typeErr("OPENAI_API_KEY", "a string or null", apiKey.kind)
	}
	if tokens.kind != jNull && tokens.kind != jObject {
		return nil, d.typeErr("tokens", "an object or null", tokens.kind)
	}
	var entries []Entry
	var extra []rawMember // for the first entry
	if tokens.kind == jObject {
		e, tokExtra, err := d.codexTokens(tokens, lastRefresh != nil)
		if err != nil {
			return nil, err
		}
		entries = append(entries, e)
		extra = tokExtra
	}
	if apiKey.kind == jString && apiKey.end-apiKey.start > 2 { // "" means no key
		provider := "openai"
		if len(entries) > 0 {
			provider = CodexAPIKeyProvider
		}
		key := decodeString(d.raw(apiKey), apiKey.escaped)
		entries = append(entries, Entry{Provider: provider, Kind: KindAPI, Fields: map[string][]byte{FieldKey: key}})
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
func (d *decoder) codexTokens(tokens jsonValue, hasLastRefresh bool) (Entry, []rawMember, error) {
	e := Entry{Provider: "openai", Kind: KindOAuth, Fields: make(map[string][]byte, 4)}
	var extra []rawMember
	for _, m := range tokens.members {
		p := joinPath("tokens", m.key)
		var b []byte
		var err error
		switch m.key {
		case "access_token":
			b, err = d.str(p, m.val)
			e.Fields[FieldAccess] = b
		case "refresh_token":
			b, err = d.str(p, m.val)
			e.Fields[FieldRefresh] = b
		case "account_id":
			if m.val.kind != jNull {
				b, err = d.str(p, m.val)
				e.Fields[FieldAccountID] = b
			}
		case ExtraTopLevelKey:
			err = d.fieldErr(p, "field name is reserved by llm-agent")
		case "last_refresh":
			if hasLastRefresh {
				err = d.fieldErr(p, "clashes with the top-level last_refresh")
				break
			}
			extra = append(extra, d.rawMember(m))
		default: // id_token and anything new
			extra = append(extra, d.rawMember(m))
		}
		if err != nil {
			e.Wipe()
			return Entry{}, nil, err
		}
	}
	for _, f := range []struct{ field, path string }{
		{FieldAccess, "tokens.access_token"},
		{FieldRefresh, "tokens.refresh_token"},
	} {
		if _, ok := e.Fields[f.field]; !ok {
			e.Wipe()
			return Entry{}, nil, d.missing(f.path)
		}
	}
	e.Fields[FieldExpires] = jwtExpiry(e.Fields[FieldAccess])
	return e, extra, nil
}

// jwtExpiry returns the exp claim of a JWT in epoch milliseconds as decimal
// ASCII, without verifying anything; "0" (unknown) when tok is not a JWT or
// has no usable exp.
func jwtExpiry(tok []byte) []byte {
	unknown := []byte("0")
	first := bytes.IndexByte(tok, '.')
	if first < 0 {
		return unknown
	}
	rest := tok[first+1:]
	second := bytes.IndexByte(rest, '.')
	if second < 0 || bytes.IndexByte(rest[second+1:], '.') >= 0 {
		return unknown
	}
	payload := bytes.TrimRight(rest[:second], "=")
	buf := make([]byte, base64.RawURLEncoding.DecodedLen(len(payload)))
	defer clear(buf) // claims are personal data
	n, err := base64.RawURLEncoding.Decode(buf, payload)
	if err != nil {
		// Not base64url; some issuers use the standard alphabet.
		if n, err = base64.RawStdEncoding.Decode(buf, payload); err != nil {
			return unknown
		}
	}
	claims, err := parseJSON(buf[:n])
	if err != nil || claims.kind != jObject {
		return unknown
	}
	exp, ok := claims.get("exp")
	if !ok || exp.kind != jNumber {
		return unknown
	}
	s := string(buf[exp.start:exp.end])
	if !bytes.ContainsAny(buf[exp.start:exp.end], ".eE") {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil || sec <= 0 || sec > math.MaxInt64/1000 {
			return unknown
		}
		return strconv.AppendInt(nil, sec*1000, 10)
	}
	sec, err := strconv.ParseFloat(s, 64)
	if err != nil || !(sec > 0 && sec < math.MaxInt64/1000) { // also rejects NaN
		return unknown
	}
	return strconv.AppendInt(nil, int64(sec*1000), 10)
}

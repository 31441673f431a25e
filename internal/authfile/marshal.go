package authfile

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/llm-agent/llm-agent/internal/jsonread"
	"github.com/llm-agent/llm-agent/protocol"
)

// MarshalOpencodeEntry returns the opencode auth.json entry object for e:
// "type" first, then the known fields in opencode's order (expires as a JSON
// number), then the members of Extra. Parsing an opencode file and
// marshalling its entries gives back equivalent objects (same members and
// values; whitespace, member order and string escapes may differ).
//
// Errors name the provider and the field, never a value. The output holds
// secrets; the caller should wipe it.
func MarshalOpencodeEntry(e Entry) ([]byte, error) { return marshalEntry(e, false) }

// MarshalHandout is MarshalOpencodeEntry for what the agent hands out: an
// oauth entry without its refresh token, which never leaves the agent.
func MarshalHandout(e Entry) ([]byte, error) { return marshalEntry(e, true) }

func marshalEntry(e Entry, handout bool) ([]byte, error) {
	where := "authfile: entry " + strconv.Quote(e.Provider)
	specs, ok := kindFields(e.Kind)
	if !ok {
		return nil, fmt.Errorf(`%s: unknown kind %q (want "api", "oauth" or "wellknown")`, where, e.Kind)
	}
	for name := range e.Fields {
		if !hasField(specs, name) {
			return nil, fmt.Errorf("%s: field %q does not belong to kind %q", where, name, e.Kind)
		}
	}
	var expires []byte
	for _, f := range specs {
		v, ok := e.Fields[f.name]
		switch {
		case !ok && !f.optional && !(handout && (f.name == protocol.FieldRefresh || f.name == protocol.FieldExpires)):
			return nil, fmt.Errorf("%s: required field %q is missing", where, f.name)
		case !ok:
		case f.number:
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s: field %q: want decimal epoch milliseconds", where, f.name)
			}
			expires = strconv.AppendInt(nil, n, 10)
		case !utf8.Valid(v):
			return nil, fmt.Errorf("%s: field %q: not valid UTF-8", where, f.name)
		}
	}
	var extra jsonread.Value
	if len(e.Extra) > 0 {
		var err error
		if extra, err = jsonread.Parse(e.Extra); err != nil {
			var se *jsonread.SyntaxError
			if errors.As(err, &se) {
				return nil, fmt.Errorf("%s: Extra: invalid JSON at byte %d: %w", where, se.Off, se)
			}
			return nil, fmt.Errorf("%s: Extra: %w", where, err)
		}
		if extra.Kind != jsonread.Object {
			return nil, fmt.Errorf("%s: Extra: want a JSON object, got %s", where, extra.Kind)
		}
		for _, m := range extra.Members {
			if _, known := e.Fields[m.Key]; known || m.Key == "type" {
				return nil, fmt.Errorf("%s: Extra member %s clashes with a known field", where, jsonread.QuoteKey(m.Key))
			}
		}
	}
	return buildJSON(func(w *jsonWriter) {
		w.raw(`{"type":`)
		w.str([]byte(e.Kind))
		for _, f := range specs {
			v, ok := e.Fields[f.name]
			if !ok {
				continue
			}
			w.raw(`,"` + f.name + `":`)
			if f.number {
				w.raw(string(expires))
			} else {
				w.str(v)
			}
		}
		for _, m := range extra.Members {
			w.raw(",")
			w.compact(e.Extra[m.KeyStart:m.KeyEnd])
			w.raw(":")
			w.compact(e.Extra[m.Val.Start:m.Val.End])
		}
		w.raw("}")
	}), nil
}

func hasField(specs []fieldSpec, name string) bool {
	for _, f := range specs {
		if f.name == name {
			return true
		}
	}
	return false
}

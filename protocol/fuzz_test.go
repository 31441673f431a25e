package protocol_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/llm-agent/llm-agent/protocol"
)

// Every decoder has a fuzz target. Each asserts that the decoder does not
// panic and, where a Marshal exists, that a value it accepts marshals to
// something that decodes to the same value. Seeds live in
// testdata/fuzz/<Name>/ (see TestSeedCorpus).

func FuzzReadFrame(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		const max = 1024
		body, err := protocol.ReadFrame(bytes.NewReader(data), max)
		var n uint32
		if len(data) >= 4 {
			n = binary.BigEndian.Uint32(data)
		}
		switch {
		case err == nil:
			if n == 0 || n > max || int(n) != len(body) || !bytes.Equal(body, data[4:4+n]) {
				t.Fatalf("header %d, body of %d bytes", n, len(body))
			}
		case len(data) == 0:
			if err != io.EOF {
				t.Fatalf("empty input: %v, want io.EOF", err)
			}
		case len(data) < 4:
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("short header: %v", err)
			}
		case n > max:
			var tl *protocol.FrameTooLarge
			if !errors.As(err, &tl) || tl.Size != n || tl.Max != max {
				t.Fatalf("header %d over %d: %v", n, max, err)
			}
		case n == 0:
		case int(n) > len(data)-4:
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("truncated body: %v", err)
			}
		default:
			t.Fatalf("refused a good frame of %d bytes: %v", n, err)
		}
		if err != nil && body != nil {
			t.Fatalf("body returned with an error")
		}
	})
}

func FuzzParseExtension(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		name, payload, err := protocol.ParseExtension(body)
		if err != nil {
			return
		}
		if !validText(name, protocol.MaxTextLen) {
			t.Fatalf("accepted extension name %q", name)
		}
		frame := append(protocol.SimpleExtension(name), payload...)
		binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
		name2, payload2, err := protocol.ParseExtension(frame[4:])
		if err != nil || name2 != name || !bytes.Equal(payload2, payload) {
			t.Fatalf("round trip: %q %v", name2, err)
		}
	})
}

func FuzzParseAddRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, payload []byte) {
		req, err := protocol.ParseAddRequest(payload)
		if err != nil {
			if req != nil {
				t.Fatal("request returned with an error")
			}
			return
		}
		checkCredentialLimits(t, &req.Credential)
		if n := len(req.Destinations); n > protocol.MaxChains {
			t.Fatalf("%d chains", n)
		}
		for _, ch := range req.Destinations {
			if len(ch) == 0 || len(ch) > protocol.MaxHops {
				t.Fatalf("chain of %d hops", len(ch))
			}
			for _, h := range ch {
				if len(h.Keys) == 0 || len(h.Keys) > protocol.MaxHostKeys || !validText(h.Host, protocol.MaxTextLen) {
					t.Fatalf("hop %q with %d keys", h.Host, len(h.Keys))
				}
			}
		}
		req.Validate() // must not panic; the result does not matter here
		got, err := protocol.ParseAddRequest(payloadOf(t, req.Marshal(), protocol.ExtAdd))
		if err != nil {
			t.Fatalf("re-marshalled request does not parse: %v", err)
		}
		if !reflect.DeepEqual(got, req) {
			t.Fatalf("round trip changed the request:\n%+v\n%+v", req, got)
		}
	})
}

func FuzzParseGetRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, payload []byte) {
		req, err := protocol.ParseGetRequest(payload)
		if err != nil {
			return
		}
		if !validText(req.Provider, protocol.MaxNameLen) {
			t.Fatalf("accepted provider %q", req.Provider)
		}
		if q := req.Requester; q != nil {
			for _, s := range []string{q.Exe, q.Argv0, q.Cwd, q.Hostname} {
				if !validText(s, protocol.MaxTextLen) {
					t.Fatalf("accepted requester text %q", s)
				}
			}
		}
		got, err := protocol.ParseGetRequest(payloadOf(t, req.Marshal(), protocol.ExtGet))
		if err != nil || !reflect.DeepEqual(got, req) {
			t.Fatalf("round trip: %+v, %v; want %+v", got, err, req)
		}
	})
}

func FuzzParseRemoveRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, payload []byte) {
		req, err := protocol.ParseRemoveRequest(payload)
		if err != nil {
			return
		}
		if !validText(req.Provider, protocol.MaxNameLen) {
			t.Fatalf("accepted provider %q", req.Provider)
		}
		got, err := protocol.ParseRemoveRequest(payloadOf(t, req.Marshal(), protocol.ExtRemove))
		if err != nil || *got != *req {
			t.Fatalf("round trip: %+v, %v; want %+v", got, err, req)
		}
	})
}

func FuzzParseListReply(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		entries, err := protocol.ParseListReply(body)
		if err != nil {
			return
		}
		for _, e := range entries {
			if len(e.Destinations) > protocol.MaxChains {
				t.Fatalf("%d destinations", len(e.Destinations))
			}
		}
		got, err := protocol.ParseListReply(replyBody(t, protocol.MarshalListReply(entries)))
		if err != nil || !reflect.DeepEqual(got, entries) {
			t.Fatalf("round trip: %+v, %v; want %+v", got, err, entries)
		}
	})
}

func FuzzParseStatusReply(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		s, err := protocol.ParseStatusReply(body)
		if err != nil {
			return
		}
		got, err := protocol.ParseStatusReply(replyBody(t, protocol.MarshalStatusReply(*s)))
		if err != nil || *got != *s {
			t.Fatalf("round trip: %+v, %v; want %+v", got, err, s)
		}
	})
}

func FuzzParseQueryReply(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		names, err := protocol.ParseQueryReply(body)
		if err != nil {
			return
		}
		if len(names) > 256 {
			t.Fatalf("%d names", len(names))
		}
		got, err := protocol.ParseQueryReply(replyBody(t, protocol.MarshalQueryReply(names)))
		if err != nil || !slices.Equal(got, names) {
			t.Fatalf("round trip: %q, %v; want %q", got, err, names)
		}
	})
}

func FuzzParseFailure(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		fl := protocol.ParseFailure(body)
		if fl == nil || fl.Message == "" || !validText(fl.Message, protocol.MaxTextLen) {
			t.Fatalf("ParseFailure = %+v", fl)
		}
		frame := protocol.MarshalFailure(fl.Code, fl.Message)
		b := bodyOf(t, frame)
		if b[0] != protocol.MsgExtensionFailure {
			t.Fatalf("message %d", b[0])
		}
		if got := protocol.ParseFailure(b[1:]); *got != *fl {
			t.Fatalf("round trip: %+v; want %+v", got, fl)
		}
	})
}

func FuzzParseCountReply(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := protocol.ParseCountReply(body)
		if err != nil {
			if len(body) == 4 {
				t.Fatalf("refused a 4-byte count: %v", err)
			}
			return
		}
		if len(body) != 4 {
			t.Fatalf("accepted a %d-byte count", len(body))
		}
		got, err := protocol.ParseCountReply(replyBody(t, protocol.MarshalCountReply(n)))
		if err != nil || got != n {
			t.Fatalf("round trip: %d, %v; want %d", got, err, n)
		}
	})
}

func FuzzParseGetReply(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := protocol.ParseGetReply(body)
		if err != nil {
			return
		}
		checkCredentialLimits(t, c)
		size := protocol.GetReplySize(c)
		if size != len(body)+1 {
			t.Fatalf("GetReplySize %d for a %d byte body", size, len(body))
		}
		frame := protocol.AppendGetReply(make([]byte, 0, 4+size), c)
		if len(frame) != 4+size {
			t.Fatalf("frame of %d bytes, GetReplySize %d", len(frame), size)
		}
		got, err := protocol.ParseGetReply(replyBody(t, frame))
		if err != nil || !reflect.DeepEqual(got, c) {
			t.Fatalf("round trip: %+v, %v; want %+v", got, err, c)
		}
	})
}

func FuzzParseSessionBind(f *testing.F) {
	f.Fuzz(func(t *testing.T, payload []byte) {
		b, err := protocol.ParseSessionBind(payload)
		if err != nil {
			return
		}
		got, err := protocol.ParseSessionBind(payloadOf(t, b.Marshal(), protocol.ExtSessionBind))
		if err != nil || !reflect.DeepEqual(got, b) {
			t.Fatalf("round trip: %+v, %v; want %+v", got, err, b)
		}
	})
}

func FuzzParseLock(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := protocol.ParseLock(body)
		if err != nil {
			return
		}
		if len(body) != 4+len(p) || !bytes.Equal(body[4:], p) {
			t.Fatalf("passphrase of %d bytes from a %d byte body", len(p), len(body))
		}
		// Client.Lock writes this encoding; there is no exported Marshal.
		got, err := protocol.ParseLock(wire(nil).bytes(p))
		if err != nil || !bytes.Equal(got, p) {
			t.Fatalf("round trip: %q, %v", got, err)
		}
	})
}

func FuzzParseLifetime(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		d, err := protocol.ParseLifetime(s)
		want, ok := lifetimeRef(s)
		if ok != (err == nil) || (ok && d != time.Duration(want)*time.Second) {
			t.Fatalf("ParseLifetime(%q) = %v, %v; reference says %d s, ok %v", s, d, err, want, ok)
		}
		if err != nil {
			return
		}
		if d <= 0 || d%time.Second != 0 || d > math.MaxUint32*time.Second {
			t.Fatalf("ParseLifetime(%q) = %v", s, d)
		}
		secs := strconv.FormatInt(int64(d/time.Second), 10)
		if d2, err := protocol.ParseLifetime(secs); err != nil || d2 != d {
			t.Fatalf("round trip through %q: %v, %v", secs, d2, err)
		}
	})
}

// validText mirrors the protocol's text rule: valid UTF-8 without control
// characters (C0, DEL, C1) or U+FFFD, at most max bytes.
func validText(s string, max int) bool {
	if len(s) > max || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return false
		}
	}
	return true
}

func checkCredentialLimits(t *testing.T, c *protocol.Credential) {
	t.Helper()
	if !validText(c.Provider, protocol.MaxNameLen) || !validText(c.Kind, protocol.MaxNameLen) {
		t.Fatalf("accepted provider %q kind %q", c.Provider, c.Kind)
	}
	if len(c.Fields) > protocol.MaxFields {
		t.Fatalf("%d fields", len(c.Fields))
	}
	for _, f := range c.Fields {
		if !validText(f.Name, protocol.MaxFieldNameLen) || len(f.Value) > protocol.MaxValueLen {
			t.Fatalf("field %q of %d bytes", f.Name, len(f.Value))
		}
	}
}

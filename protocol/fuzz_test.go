package protocol_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/llm-agent/llm-agent/protocol"
)

// Every decoder has a fuzz target. Each asserts that the decoder does not
// panic and, where a Marshal exists, that a value it accepts marshals to
// something that decodes to the same value (roundTrip). Seeds are the
// f.Add calls beside each target: valid messages made by the Marshal
// functions and malformed ones; crashers the fuzzer finds land in
// testdata/fuzz/<Name>/ and stay there as regression inputs.

// roundTrip is the body the decoders' fuzz targets share. parse must not
// panic, and with an error it must return the zero value. A value it
// accepts must pass check (the target's own limits; nil for none), and
// what encode makes of it must parse back to an equal value.
func roundTrip[In []byte | string, T any](t *testing.T, in In, parse func(In) (T, error), encode func(testing.TB, T) In, check func(testing.TB, In, T)) {
	t.Helper()
	v, err := parse(in)
	if err != nil {
		if !reflect.ValueOf(&v).Elem().IsZero() {
			t.Fatalf("%+v returned with an error: %v", v, err)
		}
		return
	}
	if check != nil {
		check(t, in, v)
	}
	got, err := parse(encode(t, v))
	if err != nil || !reflect.DeepEqual(got, v) {
		t.Fatalf("round trip: %+v, %v; want %+v", got, err, v)
	}
}

// asPayload encodes a request as the payload of extension name, which is
// what its parser reads.
func asPayload[T interface{ Marshal() []byte }](name string) func(testing.TB, T) []byte {
	return func(t testing.TB, v T) []byte { return payloadOf(t, v.Marshal(), name) }
}

// asReply encodes a reply as the body after SSH_AGENT_SUCCESS, which is
// what its parser reads.
func asReply[T any](marshal func(T) []byte) func(testing.TB, T) []byte {
	return func(t testing.TB, v T) []byte { return replyBody(t, marshal(v)) }
}

// sorted returns the values of samples in name order, so that seed#N is
// the same input on every run.
func sorted[V any](samples map[string]V) []V {
	var out []V
	for _, name := range slices.Sorted(maps.Keys(samples)) {
		out = append(out, samples[name])
	}
	return out
}

func FuzzReadFrame(f *testing.F) {
	for _, seed := range [][]byte{
		protocol.SuccessFrame(),
		sampleGets()["requester"].Marshal(),
		protocol.MarshalListReply(sampleEntries()["two"]),
		append(protocol.SimpleExtension(protocol.ExtList), protocol.SuccessFrame()...), // two frames
		{},                                     // empty
		{0, 0, 1},                              // short header
		{0, 0, 0, 0},                           // zero length
		{0, 0, 0, 9, protocol.MsgExtension, 0}, // truncated body
		{0x40, 0, 0, 0},                        // 1 GiB
		append([]byte{0, 0, 4, 1}, make([]byte, 1025)...), // over the 1024 limit
	} {
		f.Add(seed)
	}
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

// extension is ParseExtension's two results as one value.
type extension struct {
	name    string
	payload []byte
}

func parseExtension(body []byte) (extension, error) {
	name, payload, err := protocol.ParseExtension(body)
	return extension{name, payload}, err
}

func FuzzParseExtension(f *testing.F) {
	for _, name := range append(slices.Clone(protocol.Extensions), protocol.ExtProxy) {
		f.Add(protocol.SimpleExtension(name)[4:])
	}
	bind := newHostKey(f, 3).bind(f, []byte("0123456789abcdef0123456789abcdef"), true)
	for _, seed := range [][]byte{
		sampleAdds(f)["constrained"].Marshal()[4:],
		bind.Marshal()[4:],
		{protocol.MsgRequestIdentities},                              // not an extension
		wire(nil).u8(protocol.MsgExtension).u32(100).raw('a'),        // name truncated
		wire(nil).u8(protocol.MsgExtension).str("get\x00@llm-agent"), // control character in the name
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		roundTrip(t, body, parseExtension, func(t testing.TB, e extension) []byte {
			frame := append(protocol.SimpleExtension(e.name), e.payload...)
			binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
			return frame[4:]
		}, func(t testing.TB, _ []byte, e extension) {
			if !validText(e.name, protocol.MaxTextLen) {
				t.Fatalf("accepted extension name %q", e.name)
			}
		})
	})
}

func FuzzParseAddRequest(f *testing.F) {
	for _, r := range sorted(sampleAdds(f)) {
		f.Add(payloadOf(f, r.Marshal(), protocol.ExtAdd))
	}
	api := wire(nil).str("p").str("api").u32(1).str("key").str("k")
	for _, seed := range [][]byte{
		api.with(1).u32(0),           // zero lifetime
		api.with(2, 2),               // confirm twice
		api.with(3),                  // unknown constraint type
		api.with(255).str("bogus@x"), // unknown constraint extension
		api.with(255).str(protocol.ConstraintTokensPerDay).u32(0).u32(0), // a budget of zero
		api.with(255).str(protocol.ConstraintDestination).u32(1).u32(0),  // chain of zero hops
		wire(nil).str("p").str("api").u32(17),                            // one field too many
		api.cut(1),                                                       // truncated
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		roundTrip(t, payload, protocol.ParseAddRequest, asPayload[*protocol.AddRequest](protocol.ExtAdd), checkAddRequest)
	})
}

func checkAddRequest(t testing.TB, _ []byte, req *protocol.AddRequest) {
	t.Helper()
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
}

func FuzzParseGetRequest(f *testing.F) {
	for _, r := range sorted(sampleGets()) {
		f.Add(payloadOf(f, r.Marshal(), protocol.ExtGet))
	}
	f.Add([]byte(wire(nil).str("p").raw(0))) // trailing byte
	f.Add([]byte(wire(nil).str("p\n")))      // newline in the provider
	f.Fuzz(func(t *testing.T, payload []byte) {
		roundTrip(t, payload, protocol.ParseGetRequest, asPayload[*protocol.GetRequest](protocol.ExtGet), func(t testing.TB, _ []byte, req *protocol.GetRequest) {
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
		})
	})
}

func FuzzParseRemoveRequest(f *testing.F) {
	for _, seed := range [][]byte{
		payloadOf(f, (&protocol.RemoveRequest{Provider: "anthropic"}).Marshal(), protocol.ExtRemove),
		wire(nil).str(""),                      // empty name
		wire(nil).str("p").raw(0),              // trailing byte
		wire(nil).str(strings.Repeat("p", 65)), // name too long
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		roundTrip(t, payload, protocol.ParseRemoveRequest, asPayload[*protocol.RemoveRequest](protocol.ExtRemove), func(t testing.TB, _ []byte, req *protocol.RemoveRequest) {
			if !validText(req.Provider, protocol.MaxNameLen) {
				t.Fatalf("accepted provider %q", req.Provider)
			}
		})
	})
}

func FuzzParseListReply(f *testing.F) {
	for _, e := range sorted(sampleEntries()) {
		f.Add(replyBody(f, protocol.MarshalListReply(e)))
	}
	f.Add([]byte(wire(nil).u32(1<<32 - 1)))                                                     // huge count
	f.Add([]byte(wire(replyBody(f, protocol.MarshalListReply(sampleEntries()["two"]))).cut(3))) // truncated
	f.Fuzz(func(t *testing.T, body []byte) {
		roundTrip(t, body, protocol.ParseListReply, asReply(protocol.MarshalListReply), func(t testing.TB, _ []byte, entries []protocol.Entry) {
			for _, e := range entries {
				if len(e.Destinations) > protocol.MaxChains {
					t.Fatalf("%d destinations", len(e.Destinations))
				}
			}
		})
	})
}

func FuzzParseStatusReply(f *testing.F) {
	for _, s := range sorted(sampleStatuses()) {
		f.Add(replyBody(f, protocol.MarshalStatusReply(s)))
	}
	f.Add([]byte(wire(nil).u8(2).u32(0).u8(0).str("v"))) // a bool that is 2
	f.Fuzz(func(t *testing.T, body []byte) {
		roundTrip(t, body, protocol.ParseStatusReply, asReply(func(s *protocol.Status) []byte { return protocol.MarshalStatusReply(*s) }), nil)
	})
}

func FuzzParseQueryReply(f *testing.F) {
	f.Add(replyBody(f, protocol.MarshalQueryReply(protocol.Extensions)))
	f.Add([]byte{})                              // no names
	f.Add([]byte(wire(nil).str("query").u32(9))) // truncated
	f.Fuzz(func(t *testing.T, body []byte) {
		roundTrip(t, body, protocol.ParseQueryReply, asReply(protocol.MarshalQueryReply), func(t testing.TB, _ []byte, names []string) {
			if len(names) > 256 {
				t.Fatalf("%d names", len(names))
			}
		})
	})
}

// parseFailure is ParseFailure, which always returns a failure, in the
// shape roundTrip wants.
func parseFailure(body []byte) (*protocol.Failure, error) { return protocol.ParseFailure(body), nil }

func FuzzParseFailure(f *testing.F) {
	for _, fl := range sorted(sampleFailures()) {
		f.Add(bodyOf(f, protocol.MarshalFailure(fl.Code, fl.Message))[1:])
	}
	f.Add([]byte{})                                  // a plain SSH agent's failure
	f.Add([]byte(wire(nil).u32(2).str("")))          // empty message
	f.Add([]byte(wire(nil).u32(2).str("a\x1b[2Jb"))) // control characters
	f.Fuzz(func(t *testing.T, body []byte) {
		roundTrip(t, body, parseFailure, func(t testing.TB, fl *protocol.Failure) []byte {
			b := bodyOf(t, protocol.MarshalFailure(fl.Code, fl.Message))
			if b[0] != protocol.MsgExtensionFailure {
				t.Fatalf("message %d", b[0])
			}
			return b[1:]
		}, func(t testing.TB, _ []byte, fl *protocol.Failure) {
			if fl == nil || fl.Message == "" || !validText(fl.Message, protocol.MaxTextLen) {
				t.Fatalf("ParseFailure = %+v", fl)
			}
		})
	})
}

func FuzzParseCountReply(f *testing.F) {
	f.Add(replyBody(f, protocol.MarshalCountReply(0)))
	f.Add(replyBody(f, protocol.MarshalCountReply(123456)))
	f.Add([]byte{1}) // short
	f.Fuzz(func(t *testing.T, body []byte) {
		if _, err := protocol.ParseCountReply(body); (err == nil) != (len(body) == 4) {
			t.Fatalf("a %d-byte count: %v", len(body), err)
		}
		roundTrip(t, body, protocol.ParseCountReply, asReply(protocol.MarshalCountReply), nil)
	})
}

func FuzzParseGetReply(f *testing.F) {
	for _, c := range sorted(sampleCreds()) {
		f.Add(replyBody(f, protocol.AppendGetReply(nil, c)))
	}
	f.Add([]byte(wire(nil).str("p").str("api").u32(17)))                   // one field too many
	f.Add([]byte(wire(nil).str("p").str("api").u32(1).str("key").u32(50))) // value past the end
	f.Fuzz(func(t *testing.T, body []byte) {
		roundTrip(t, body, protocol.ParseGetReply, func(t testing.TB, c *protocol.Credential) []byte {
			size := protocol.GetReplySize(c)
			frame := protocol.AppendGetReply(make([]byte, 0, 4+size), c)
			if len(frame) != 4+size {
				t.Fatalf("frame of %d bytes, GetReplySize %d", len(frame), size)
			}
			return replyBody(t, frame)
		}, func(t testing.TB, body []byte, c *protocol.Credential) {
			checkCredentialLimits(t, c)
			if size := protocol.GetReplySize(c); size != len(body)+1 {
				t.Fatalf("GetReplySize %d for a %d byte body", size, len(body))
			}
		})
	})
}

func FuzzParseSessionBind(f *testing.F) {
	k := newHostKey(f, 3)
	fwd := k.bind(f, []byte("0123456789abcdef0123456789abcdef"), true)
	badSig := *fwd
	badSig.SessionID = []byte("another session id, same signature")
	for _, b := range []*protocol.SessionBind{fwd, k.bind(f, []byte("fedcba9876543210fedcba9876543210"), false), &badSig} {
		f.Add(payloadOf(f, b.Marshal(), protocol.ExtSessionBind))
	}
	f.Add([]byte(wire(nil).str("k").str("s").str("g").u8(7)))                        // a bool that is 7
	f.Add([]byte(wire(payloadOf(f, fwd.Marshal(), protocol.ExtSessionBind)).cut(2))) // truncated
	f.Fuzz(func(t *testing.T, payload []byte) {
		roundTrip(t, payload, protocol.ParseSessionBind, asPayload[*protocol.SessionBind](protocol.ExtSessionBind), nil)
	})
}

func FuzzParseLock(f *testing.F) {
	for _, seed := range [][]byte{
		wire(nil).str("correct horse battery staple"),
		wire(nil).str(""),
		wire(nil).str("pw").raw(0),      // trailing byte
		wire(nil).u32(1 << 31).raw('x'), // length past the end
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		// Client.Lock writes this encoding; there is no exported Marshal.
		roundTrip(t, body, protocol.ParseLock, func(_ testing.TB, p []byte) []byte { return wire(nil).bytes(p) }, func(t testing.TB, body, p []byte) {
			if len(body) != 4+len(p) || !bytes.Equal(body[4:], p) {
				t.Fatalf("passphrase of %d bytes from a %d byte body", len(p), len(body))
			}
		})
	})
}

func FuzzParseLifetime(f *testing.F) {
	for _, s := range []string{"90", "30m", "8h", "1h30m", "1w", "2d", "1H1m1S", "0", "", "m", "5x", "4294967296", "1h 30m", "0s1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := protocol.ParseLifetime(s)
		want, ok := lifetimeRef(s)
		if ok != (err == nil) || (ok && d != time.Duration(want)*time.Second) {
			t.Fatalf("ParseLifetime(%q) = %v, %v; reference says %d s, ok %v", s, d, err, want, ok)
		}
		roundTrip(t, s, protocol.ParseLifetime, func(_ testing.TB, d time.Duration) string {
			return strconv.FormatInt(int64(d/time.Second), 10) // plain seconds
		}, func(t testing.TB, s string, d time.Duration) {
			if d <= 0 || d%time.Second != 0 || d > math.MaxUint32*time.Second {
				t.Fatalf("ParseLifetime(%q) = %v", s, d)
			}
		})
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

func checkCredentialLimits(t testing.TB, c *protocol.Credential) {
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

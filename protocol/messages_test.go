package protocol_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/llm-agent/llm-agent/protocol"
)

func TestAddRequestRoundTrip(t *testing.T) {
	for name, req := range sampleAdds(t) {
		t.Run(name, func(t *testing.T) {
			got, err := protocol.ParseAddRequest(payloadOf(t, req.Marshal(), protocol.ExtAdd))
			if err != nil {
				t.Fatalf("ParseAddRequest: %v", err)
			}
			if !reflect.DeepEqual(got, req) {
				t.Errorf("round trip changed the request (values not shown)")
			}
		})
	}
}

func TestGetRequestRoundTrip(t *testing.T) {
	for name, req := range sampleGets() {
		t.Run(name, func(t *testing.T) {
			got, err := protocol.ParseGetRequest(payloadOf(t, req.Marshal(), protocol.ExtGet))
			if err != nil {
				t.Fatalf("ParseGetRequest: %v", err)
			}
			if !reflect.DeepEqual(got, req) {
				t.Errorf("got %+v, want %+v", got, req)
			}
		})
	}
}

func TestRemoveRequestRoundTrip(t *testing.T) {
	for _, p := range []string{"anthropic", "github-copilot", "a@b:c/d"} {
		req := &protocol.RemoveRequest{Provider: p}
		got, err := protocol.ParseRemoveRequest(payloadOf(t, req.Marshal(), protocol.ExtRemove))
		if err != nil || *got != *req {
			t.Errorf("%q: got %+v, %v", p, got, err)
		}
	}
}

func TestSimpleExtensionsRoundTrip(t *testing.T) {
	for _, name := range protocol.Extensions {
		if p := payloadOf(t, protocol.SimpleExtension(name), name); len(p) != 0 {
			t.Errorf("%s: payload of %d bytes, want none", name, len(p))
		}
	}
}

func TestSessionBindRoundTrip(t *testing.T) {
	k := newHostKey(t, 7)
	for _, fwd := range []bool{false, true} {
		b := k.bind(t, []byte("session-id-0123456789abcdef"), fwd)
		got, err := protocol.ParseSessionBind(payloadOf(t, b.Marshal(), protocol.ExtSessionBind))
		if err != nil {
			t.Fatalf("ParseSessionBind: %v", err)
		}
		if !reflect.DeepEqual(got, b) {
			t.Errorf("forwarding=%v: round trip changed the bind", fwd)
		}
	}
}

func TestListReplyRoundTrip(t *testing.T) {
	for name, entries := range sampleEntries() {
		t.Run(name, func(t *testing.T) {
			got, err := protocol.ParseListReply(replyBody(t, protocol.MarshalListReply(entries)))
			if err != nil {
				t.Fatalf("ParseListReply: %v", err)
			}
			if !reflect.DeepEqual(got, entries) {
				t.Errorf("got %+v, want %+v", got, entries)
			}
		})
	}
}

func TestStatusReplyRoundTrip(t *testing.T) {
	for name, s := range sampleStatuses() {
		got, err := protocol.ParseStatusReply(replyBody(t, protocol.MarshalStatusReply(s)))
		if err != nil || *got != s {
			t.Errorf("%s: got %+v, %v; want %+v", name, got, err, s)
		}
	}
}

func TestCountReplyRoundTrip(t *testing.T) {
	for _, n := range []uint32{0, 1, 100000, 1<<32 - 1} {
		got, err := protocol.ParseCountReply(replyBody(t, protocol.MarshalCountReply(n)))
		if err != nil || got != n {
			t.Errorf("%d: got %d, %v", n, got, err)
		}
	}
}

func TestQueryReplyRoundTrip(t *testing.T) {
	for _, names := range [][]string{nil, protocol.Extensions, {"session-bind@openssh.com"}} {
		got, err := protocol.ParseQueryReply(replyBody(t, protocol.MarshalQueryReply(names)))
		if err != nil || !slices.Equal(got, names) {
			t.Errorf("%q: got %q, %v", names, got, err)
		}
	}
}

func TestFailureRoundTrip(t *testing.T) {
	for name, f := range sampleFailures() {
		b := bodyOf(t, protocol.MarshalFailure(f.Code, f.Message))
		if b[0] != protocol.MsgExtensionFailure {
			t.Fatalf("%s: message %d, want SSH_AGENT_EXTENSION_FAILURE", name, b[0])
		}
		if got := protocol.ParseFailure(b[1:]); *got != f {
			t.Errorf("%s: got %+v, want %+v", name, got, f)
		}
	}
	// What a plain SSH agent sends, and garbage, read as a generic failure.
	for _, body := range [][]byte{nil, {1, 2}, wire(nil).u32(3).str(""), wire(nil).u32(3).str("a\nb")} {
		if got := protocol.ParseFailure(body); got.Code != protocol.CodeFailed || got.Message == "" {
			t.Errorf("ParseFailure(%x) = %+v, want a generic failure", body, got)
		}
	}
	// Long messages are cut to the protocol's limit.
	long := strings.Repeat("x", protocol.MaxTextLen+100)
	if got := protocol.ParseFailure(bodyOf(t, protocol.MarshalFailure(9, long))[1:]); got.Code != 9 || len(got.Message) != protocol.MaxTextLen {
		t.Errorf("long message: code %d, %d bytes", got.Code, len(got.Message))
	}
}

// A long message cut in the middle of a multi-byte character becomes
// invalid UTF-8, which ParseFailure then replaces with a generic message.
func TestFailureTruncationKeepsUTF8(t *testing.T) {
	msg := strings.Repeat("x", protocol.MaxTextLen-1) + "é and more"
	got := protocol.ParseFailure(bodyOf(t, protocol.MarshalFailure(protocol.CodeBadRequest, msg))[1:])
	if got.Code != protocol.CodeBadRequest {
		t.Errorf("a %d byte message cut inside a character came back as code %d %q: MarshalFailure should cut at a rune boundary",
			len(msg), got.Code, got.Message)
	}
}

func TestGetReplyRoundTrip(t *testing.T) {
	for name, c := range sampleCreds() {
		t.Run(name, func(t *testing.T) {
			size := protocol.GetReplySize(c)
			buf := make([]byte, 0, 4+size)
			frame := protocol.AppendGetReply(buf, c)
			if len(frame) != 4+size {
				t.Fatalf("frame of %d bytes, GetReplySize says %d+4", len(frame), size)
			}
			if &frame[0] != &buf[:1][0] {
				t.Errorf("AppendGetReply reallocated although the buffer had room")
			}
			got, err := protocol.ParseGetReply(replyBody(t, frame))
			if err != nil {
				t.Fatalf("ParseGetReply: %v", err)
			}
			if !reflect.DeepEqual(got, c) {
				t.Errorf("round trip changed the credential (values not shown)")
			}
		})
	}
}

func TestParseLock(t *testing.T) {
	tests := []struct {
		name string
		body []byte
		want string
		ok   bool
	}{
		{"passphrase", wire(nil).str("correct horse"), "correct horse", true},
		{"empty", wire(nil).str(""), "", true},
		{"trailing", wire(nil).str("pw").raw(0), "", false},
		{"truncated", wire(nil).u32(10).raw('a'), "", false},
		{"no length", []byte{0, 0}, "", false},
	}
	for _, tt := range tests {
		got, err := protocol.ParseLock(tt.body)
		if (err == nil) != tt.ok || string(got) != tt.want {
			t.Errorf("%s: got %q, %v", tt.name, got, err)
		}
	}
}

// TestParseRefusesMalformed feeds each decoder messages that are wrong in
// one way and expects an error, never a panic.
func TestParseRefusesMalformed(t *testing.T) {
	api := wire(nil).str("p").str("api").u32(1).str("key").str("k")
	tests := []struct {
		name  string
		parse func([]byte) error
		in    []byte
	}{
		{"add: truncated", addErr, api.cut(1)},
		{"add: trailing junk constraint", addErr, api.with(9)},
		{"add: zero lifetime", addErr, api.clone().u8(1).u32(0)},
		{"add: lifetime twice", addErr, api.clone().u8(1).u32(5).u8(1).u32(6)},
		{"add: confirm twice", addErr, api.clone().u8(2).u8(2)},
		{"add: unknown constraint name", addErr, api.clone().u8(255).str("bogus@x")},
		{"add: destination twice", addErr, api.clone().u8(255).str(protocol.ConstraintDestination).u32(1).u32(1).str("h").u32(1).str("k").
			u8(255).str(protocol.ConstraintDestination).u32(1).u32(1).str("h").u32(1).str("k")},
		{"add: zero chains", addErr, api.clone().u8(255).str(protocol.ConstraintDestination).u32(0)},
		{"add: too many chains", addErr, api.clone().u8(255).str(protocol.ConstraintDestination).u32(protocol.MaxChains + 1)},
		{"add: zero hops", addErr, api.clone().u8(255).str(protocol.ConstraintDestination).u32(1).u32(0)},
		{"add: too many hops", addErr, api.clone().u8(255).str(protocol.ConstraintDestination).u32(1).u32(protocol.MaxHops + 1)},
		{"add: zero host keys", addErr, api.clone().u8(255).str(protocol.ConstraintDestination).u32(1).u32(1).str("h").u32(0)},
		{"add: too many fields", addErr, wire(nil).str("p").str("api").u32(protocol.MaxFields + 1)},
		{"add: huge field count", addErr, wire(nil).str("p").str("api").u32(1<<32 - 1)},
		{"add: provider with newline", addErr, wire(nil).str("p\n").str("api").u32(0)},
		{"add: provider too long", addErr, wire(nil).str(strings.Repeat("p", protocol.MaxNameLen+1)).str("api").u32(0)},
		{"add: field name invalid UTF-8", addErr, wire(nil).str("p").str("api").u32(1).str("\xff").str("v")},
		{"add: value too long", addErr, wire(nil).str("p").str("api").u32(1).str("key").bytes(make([]byte, protocol.MaxValueLen+1))},
		{"add: string length past end", addErr, wire(nil).u32(1 << 31)},
		{"get: trailing", getErr, wire(nil).str("p").u32(1).u32(2).str("").str("").str("").str("").raw(0)},
		{"get: requester truncated", getErr, wire(nil).str("p").u32(1)},
		{"get: control character in exe", getErr, wire(nil).str("p").u32(1).u32(2).str("\x1b[31m").str("").str("").str("")},
		{"remove: trailing", removeErr, wire(nil).str("p").raw(1)},
		{"remove: empty", removeErr, nil},
		{"list: count larger than body", listErr, wire(nil).u32(1000)},
		{"list: too many destinations", listErr, wire(nil).u32(1).str("p").str("api").u64(0).u64(0).u8(0).u8(0).u32(protocol.MaxChains + 1).
			raw(make([]byte, 64)...)},
		{"list: bad boolean", listErr, wire(nil).u32(1).str("p").str("api").u64(0).u64(0).u8(2).u8(0).u32(0).u64(0).u8(0)},
		{"status: bad boolean", statusErr, wire(nil).u8(3).u32(0).u8(0).str("v")},
		{"status: trailing", statusErr, wire(nil).u8(0).u32(0).u8(0).str("v").raw(0)},
		{"count: short", countErr, []byte{0, 0, 1}},
		{"count: long", countErr, []byte{0, 0, 0, 1, 0}},
		{"query: truncated", queryErr, wire(nil).str("query").u32(5).raw('a')},
		{"get reply: trailing", getReplyErr, wire(nil).str("p").str("api").u32(0).raw(0)},
		{"session-bind: bad boolean", bindErr, wire(nil).str("k").str("s").str("sig").u8(2)},
		{"session-bind: missing boolean", bindErr, wire(nil).str("k").str("s").str("sig")},
		{"extension: not an extension", extErr, wire(nil).u8(protocol.MsgRequestIdentities)},
		{"extension: empty", extErr, nil},
		{"extension: name truncated", extErr, wire(nil).u8(protocol.MsgExtension).u32(10).raw('q')},
		{"extension: name with NUL", extErr, wire(nil).u8(protocol.MsgExtension).str("query\x00")},
	}
	for _, tt := range tests {
		if err := tt.parse(tt.in); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
}

func addErr(b []byte) error      { _, err := protocol.ParseAddRequest(b); return err }
func getErr(b []byte) error      { _, err := protocol.ParseGetRequest(b); return err }
func removeErr(b []byte) error   { _, err := protocol.ParseRemoveRequest(b); return err }
func listErr(b []byte) error     { _, err := protocol.ParseListReply(b); return err }
func statusErr(b []byte) error   { _, err := protocol.ParseStatusReply(b); return err }
func countErr(b []byte) error    { _, err := protocol.ParseCountReply(b); return err }
func queryErr(b []byte) error    { _, err := protocol.ParseQueryReply(b); return err }
func getReplyErr(b []byte) error { _, err := protocol.ParseGetReply(b); return err }
func bindErr(b []byte) error     { _, err := protocol.ParseSessionBind(b); return err }
func extErr(b []byte) error      { _, _, err := protocol.ParseExtension(b); return err }

package protocol_test

import (
	"flag"
	"fmt"
	"strings"
	"testing"

	"github.com/llm-agent/llm-agent/internal/fuzzseed"
	"github.com/llm-agent/llm-agent/protocol"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the generated seed files in testdata/fuzz")

// TestSeedCorpus keeps the generated part of testdata/fuzz in step with
// the Marshal functions: it fails when a seed file is missing or stale, and
// writes them with -update-corpus. Files it does not generate (crashers the
// fuzzer found, kept as regression seeds) are left alone.
func TestSeedCorpus(t *testing.T) {
	checkCorpus(t, seedCorpus(t))
}

func checkCorpus(t *testing.T, corpus map[string]map[string]any) {
	t.Helper()
	for target, seeds := range corpus {
		files := map[string][]byte{}
		for name, v := range seeds {
			files[name] = corpusFile(v)
		}
		fuzzseed.Check(t, "./protocol/", target, files, *updateCorpus)
	}
}

// corpusFile encodes one fuzz input in the "go test fuzz v1" format.
func corpusFile(v any) []byte {
	switch v := v.(type) {
	case []byte:
		return fuzzseed.Bytes(v)
	case wire:
		return fuzzseed.Bytes(v)
	case string:
		return fuzzseed.String(v)
	}
	panic(fmt.Sprintf("corpusFile: %T", v))
}

// seedCorpus returns the seeds of each fuzz target by file name: valid
// messages made by the Marshal functions, and malformed ones prefixed err_.
func seedCorpus(t *testing.T) map[string]map[string]any {
	adds := sampleAdds(t)
	k := newHostKey(t, 3)
	bindFwd := k.bind(t, []byte("0123456789abcdef0123456789abcdef"), true)
	bindAuth := k.bind(t, []byte("fedcba9876543210fedcba9876543210"), false)
	badSig := *bindFwd
	badSig.SessionID = []byte("another session id, same signature")

	c := map[string]map[string]any{}
	add := func(target, name string, v any) {
		if c[target] == nil {
			c[target] = map[string]any{}
		}
		c[target][name] = v
	}

	// Frames: requests and replies as they cross the socket.
	add("FuzzReadFrame", "success", protocol.SuccessFrame())
	add("FuzzReadFrame", "get", sampleGets()["requester"].Marshal())
	add("FuzzReadFrame", "list_reply", protocol.MarshalListReply(sampleEntries()["two"]))
	add("FuzzReadFrame", "two_frames", append(protocol.SimpleExtension(protocol.ExtList), protocol.SuccessFrame()...))
	add("FuzzReadFrame", "err_empty", []byte{})
	add("FuzzReadFrame", "err_short_header", []byte{0, 0, 1})
	add("FuzzReadFrame", "err_zero_length", []byte{0, 0, 0, 0})
	add("FuzzReadFrame", "err_truncated", []byte{0, 0, 0, 9, protocol.MsgExtension, 0})
	add("FuzzReadFrame", "err_1GiB", []byte{0x40, 0, 0, 0})
	add("FuzzReadFrame", "err_over_limit", append([]byte{0, 0, 4, 1}, make([]byte, 1025)...))

	for _, name := range protocol.Extensions {
		add("FuzzParseExtension", "simple_"+strings.TrimSuffix(name, "@llm-agent"), protocol.SimpleExtension(name)[4:])
	}
	add("FuzzParseExtension", "add", adds["constrained"].Marshal()[4:])
	add("FuzzParseExtension", "session_bind", bindFwd.Marshal()[4:])
	add("FuzzParseExtension", "err_not_extension", []byte{protocol.MsgRequestIdentities})
	add("FuzzParseExtension", "err_name_truncated", wire(nil).u8(protocol.MsgExtension).u32(100).raw('a'))
	add("FuzzParseExtension", "err_name_control", wire(nil).u8(protocol.MsgExtension).str("get\x00@llm-agent"))

	for name, r := range adds {
		add("FuzzParseAddRequest", name, payloadOf(t, r.Marshal(), protocol.ExtAdd))
	}
	api := wire(nil).str("p").str("api").u32(1).str("key").str("k")
	add("FuzzParseAddRequest", "err_zero_lifetime", api.clone().u8(1).u32(0))
	add("FuzzParseAddRequest", "err_confirm_twice", api.clone().u8(2).u8(2))
	add("FuzzParseAddRequest", "err_unknown_type", api.clone().u8(3))
	add("FuzzParseAddRequest", "err_unknown_extension", api.clone().u8(255).str("bogus@x"))
	add("FuzzParseAddRequest", "err_zero_hops", api.clone().u8(255).str(protocol.ConstraintDestination).u32(1).u32(0))
	add("FuzzParseAddRequest", "err_17_fields", wire(nil).str("p").str("api").u32(17))
	add("FuzzParseAddRequest", "err_truncated", api.cut(1))

	for name, r := range sampleGets() {
		add("FuzzParseGetRequest", name, payloadOf(t, r.Marshal(), protocol.ExtGet))
	}
	add("FuzzParseGetRequest", "err_trailing", wire(nil).str("p").raw(0))
	add("FuzzParseGetRequest", "err_newline", wire(nil).str("p\n"))

	add("FuzzParseRemoveRequest", "valid", payloadOf(t, (&protocol.RemoveRequest{Provider: "anthropic"}).Marshal(), protocol.ExtRemove))
	add("FuzzParseRemoveRequest", "empty_name", wire(nil).str(""))
	add("FuzzParseRemoveRequest", "err_trailing", wire(nil).str("p").raw(0))
	add("FuzzParseRemoveRequest", "err_too_long", wire(nil).str(strings.Repeat("p", 65)))

	for name, e := range sampleEntries() {
		add("FuzzParseListReply", name, replyBody(t, protocol.MarshalListReply(e)))
	}
	add("FuzzParseListReply", "err_huge_count", wire(nil).u32(1<<32-1))
	add("FuzzParseListReply", "err_truncated", wire(replyBody(t, protocol.MarshalListReply(sampleEntries()["two"]))).cut(3))

	for name, s := range sampleStatuses() {
		add("FuzzParseStatusReply", name, replyBody(t, protocol.MarshalStatusReply(s)))
	}
	add("FuzzParseStatusReply", "err_bool", wire(nil).u8(2).u32(0).u8(0).str("v"))

	add("FuzzParseQueryReply", "extensions", replyBody(t, protocol.MarshalQueryReply(protocol.Extensions)))
	add("FuzzParseQueryReply", "empty", []byte{})
	add("FuzzParseQueryReply", "err_truncated", wire(nil).str("query").u32(9))

	for name, f := range sampleFailures() {
		add("FuzzParseFailure", name, bodyOf(t, protocol.MarshalFailure(f.Code, f.Message))[1:])
	}
	add("FuzzParseFailure", "plain_agent", []byte{})
	add("FuzzParseFailure", "err_empty_message", wire(nil).u32(2).str(""))
	add("FuzzParseFailure", "err_control", wire(nil).u32(2).str("a\x1b[2Jb"))

	add("FuzzParseCountReply", "zero", replyBody(t, protocol.MarshalCountReply(0)))
	add("FuzzParseCountReply", "many", replyBody(t, protocol.MarshalCountReply(123456)))
	add("FuzzParseCountReply", "err_short", []byte{1})

	for name, cr := range sampleCreds() {
		add("FuzzParseGetReply", name, replyBody(t, protocol.AppendGetReply(nil, cr)))
	}
	add("FuzzParseGetReply", "err_17_fields", wire(nil).str("p").str("api").u32(17))
	add("FuzzParseGetReply", "err_value_past_end", wire(nil).str("p").str("api").u32(1).str("key").u32(50))

	add("FuzzParseSessionBind", "forwarding", payloadOf(t, bindFwd.Marshal(), protocol.ExtSessionBind))
	add("FuzzParseSessionBind", "auth", payloadOf(t, bindAuth.Marshal(), protocol.ExtSessionBind))
	add("FuzzParseSessionBind", "bad_signature", payloadOf(t, badSig.Marshal(), protocol.ExtSessionBind))
	add("FuzzParseSessionBind", "err_bool", wire(nil).str("k").str("s").str("g").u8(7))
	add("FuzzParseSessionBind", "err_truncated", wire(payloadOf(t, bindFwd.Marshal(), protocol.ExtSessionBind)).cut(2))

	add("FuzzParseLock", "passphrase", wire(nil).str("correct horse battery staple"))
	add("FuzzParseLock", "empty", wire(nil).str(""))
	add("FuzzParseLock", "err_trailing", wire(nil).str("pw").raw(0))
	add("FuzzParseLock", "err_length", wire(nil).u32(1<<31).raw('x'))

	for i, s := range []string{"90", "30m", "8h", "1h30m", "1w", "2d", "1H1m1S", "0", "", "m", "5x", "4294967296", "1h 30m", "0s1"} {
		name := fmt.Sprintf("s%02d", i)
		add("FuzzParseLifetime", name, s)
	}
	return c
}

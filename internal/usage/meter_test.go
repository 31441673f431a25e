package usage

import (
	"strings"
	"testing"
)

const (
	ctSSE  = "text/event-stream; charset=utf-8"
	ctJSON = "application/json"
)

// Samples in the providers' documented shapes; ids and text shortened.
const (
	anthropicSSE = `event: message_start
data: {"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":1200,"cache_creation_input_tokens":100,"cache_read_input_tokens":50,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"The \"usage\" and \"model\" keys"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":345}}

event: message_stop
data: {"type":"message_stop"}

`
	anthropicJSON = `{"id":"msg_01","type":"message","role":"assistant","model":"claude-opus-4-1-20250805","content":[{"type":"text","text":"Hi"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":10,"cache_creation_input_tokens":2000,"cache_read_input_tokens":0,"output_tokens":5,"service_tier":"standard"}}`

	// A gateway that sends 0 in message_start and the input in
	// message_delta, with server tools sending two deltas.
	anthropicGatewaySSE = "event: message_start\r\n" +
		`data: {"type":"message_start","message":{"model":"anthropic/claude-sonnet-4.5","usage":{"input_tokens":0,"output_tokens":0}}}` + "\r\n\r\n" +
		"event: message_delta\r\n" +
		`data: {"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"input_tokens":9,"output_tokens":40,"server_tool_use":{"web_search_requests":1}}}` + "\r\n\r\n" +
		"event: message_delta\r\n" +
		`data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"input_tokens":9,"output_tokens":70}}` + "\r\n\r\n"

	chatSSE = `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1764900000,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1764900000,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1764900000,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}

data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1764900000,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_1","choices":[],"usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}

data: [DONE]

`
	chatSSENoUsage = `data: {"id":"chatcmpl-2","object":"chat.completion.chunk","model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}

data: {"id":"chatcmpl-2","object":"chat.completion.chunk","model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}

data: [DONE]

`
	chatJSON = `{
  "id": "chatcmpl-3",
  "object": "chat.completion",
  "created": 1764900000,
  "model": "gpt-4o-mini-2024-07-18",
  "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there"}, "finish_reason": "stop"}],
  "usage": {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21, "completion_tokens_details": {"reasoning_tokens": 0}}
}
`
	responsesSSE = `event: response.created
data: {"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","created_at":1764900000,"status":"in_progress","model":"gpt-5-codex","output":[],"usage":null}}

event: response.output_text.delta
data: {"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi"}

event: response.completed
data: {"type":"response.completed","sequence_number":9,"response":{"id":"resp_1","object":"response","created_at":1764900000,"status":"completed","model":"gpt-5-codex","output":[{"type":"message","id":"msg_1","role":"assistant","content":[{"type":"output_text","text":"Hi"}]}],"usage":{"input_tokens":3000,"input_tokens_details":{"cached_tokens":2048},"output_tokens":200,"output_tokens_details":{"reasoning_tokens":128},"total_tokens":3200}}}

`
	responsesIncompleteSSE = `event: response.incomplete
data: {"type":"response.incomplete","sequence_number":5,"response":{"id":"resp_2","status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"model":"o4-mini","usage":{"input_tokens":50,"output_tokens":16}}}

`
	responsesJSON = `{"id":"resp_3","object":"response","created_at":1764900000,"status":"completed","model":"gpt-4.1-2025-04-14","output":[{"type":"message","role":"assistant","content":[{"type":"output_text","text":"Hi"}]}],"usage":{"input_tokens":36,"input_tokens_details":{"cached_tokens":0},"output_tokens":87,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":123}}`

	geminiSSE = "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hello\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 8,\"totalTokenCount\": 8},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"r1\"}\r\n\r\n" +
		"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \" world\"}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 8,\"candidatesTokenCount\": 12,\"totalTokenCount\": 40,\"thoughtsTokenCount\": 20},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"r1\"}\r\n\r\n"

	geminiJSON = `{
  "candidates": [{"content": {"parts": [{"text": "Hi"}], "role": "model"}, "finishReason": "STOP", "index": 0}],
  "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 7, "totalTokenCount": 130, "cachedContentTokenCount": 64, "toolUsePromptTokenCount": 3, "thoughtsTokenCount": 20},
  "modelVersion": "gemini-2.5-pro"
}`
	// streamGenerateContent without alt=sse: one JSON array.
	geminiJSONArray = `[{"candidates":[{"content":{"parts":[{"text":"Hel"}],"role":"model"}}],"usageMetadata":{"promptTokenCount":5,"totalTokenCount":5},"modelVersion":"gemini-2.0-flash"},
{"candidates":[{"content":{"parts":[{"text":"lo"}],"role":"model"},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":2,"totalTokenCount":7},"modelVersion":"gemini-2.0-flash"}]`
)

var meterCases = []struct {
	name, contentType, body string
	want                    Usage
}{
	{"anthropic sse", ctSSE, anthropicSSE, Usage{"claude-sonnet-4-5-20250929", 1350, 345, true}},
	{"anthropic sse crlf", ctSSE, strings.ReplaceAll(anthropicSSE, "\n", "\r\n"), Usage{"claude-sonnet-4-5-20250929", 1350, 345, true}},
	{"anthropic sse cr", ctSSE, strings.ReplaceAll(anthropicSSE, "\n", "\r"), Usage{"claude-sonnet-4-5-20250929", 1350, 345, true}},
	{"anthropic json", ctJSON, anthropicJSON, Usage{"claude-opus-4-1-20250805", 2010, 5, true}},
	{"anthropic gateway sse", ctSSE, anthropicGatewaySSE, Usage{"anthropic/claude-sonnet-4.5", 9, 70, true}},
	{"anthropic error event", ctSSE, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n", Usage{}},
	{"anthropic error json", ctJSON, `{"type":"error","error":{"type":"invalid_request_error","message":"model: not found"}}`, Usage{}},

	{"chat sse", ctSSE, chatSSE, Usage{"gpt-4o-2024-08-06", 19, 10, true}},
	{"chat sse without usage", ctSSE, chatSSENoUsage, Usage{Model: "gpt-4o-mini"}},
	{"chat json", "application/json; charset=utf-8", chatJSON, Usage{"gpt-4o-mini-2024-07-18", 9, 12, true}},

	{"responses sse", ctSSE, responsesSSE, Usage{"gpt-5-codex", 3000, 200, true}},
	{"responses incomplete", ctSSE, responsesIncompleteSSE, Usage{"o4-mini", 50, 16, true}},
	{"responses json", ctJSON, responsesJSON, Usage{"gpt-4.1-2025-04-14", 36, 87, true}},

	{"gemini sse", "text/event-stream", geminiSSE, Usage{"gemini-2.5-flash", 8, 32, true}},
	{"gemini json", ctJSON, geminiJSON, Usage{"gemini-2.5-pro", 103, 27, true}},
	{"gemini json array", ctJSON, geminiJSONArray, Usage{"gemini-2.0-flash", 5, 2, true}},

	// The event-stream format: data lines of one event are joined by
	// \n, one space after the colon is dropped, comments and other fields
	// are ignored, a stream cut short still counts.
	{"multi-line data", ctSSE, ": keep-alive\nid: 7\nretry: 1000\ndata: {\"model\":\"m\",\ndata:\"usage\":{\"prompt_tokens\":1,\ndata:  \"completion_tokens\":2}}\n\n", Usage{"m", 1, 2, true}},
	{"no final blank line", ctSSE, "data: {\"model\":\"m\",\"usage\":{\"input_tokens\":4,\"output_tokens\":5}}", Usage{"m", 4, 5, true}},
	{"no final line end", ctSSE, "data: {\"model\":\"m\",\"usage\":{\"input_tokens\":4,\"output_tokens\":5}}\n", Usage{"m", 4, 5, true}},
	{"data without colon", ctSSE, "data\n\ndata:{\"usage\":{\"input_tokens\":1}}\n\n", Usage{"", 1, 0, true}},
	{"event field named data", ctSSE, "event: data\ndatax: {\"usage\":{\"input_tokens\":1}}\n\n", Usage{}},

	// Counters of the wrong type are absent; the rest of the event stays.
	{"odd types", ctJSON, `{"model":5,"modelVersion":"v","usage":{"input_tokens":"12","output_tokens":-1,"cache_read_input_tokens":1.5},"message":"x"}`, Usage{"v", 12, 0, true}},
	{"null usage", ctJSON, `{"model":"m","usage":null}`, Usage{Model: "m"}},
	{"saturating", ctJSON, `{"usage":{"input_tokens":18446744073709551615,"cache_read_input_tokens":2}}`, Usage{"", 18446744073709551615, 0, true}},
	{"too big", ctJSON, `{"usage":{"input_tokens":18446744073709551616,"output_tokens":3}}`, Usage{"", 0, 3, true}},
	{"long model", ctJSON, `{"model":"` + strings.Repeat("é", 200) + `","usage":{"input_tokens":1}}`, Usage{strings.Repeat("é", 128), 1, 0, true}},

	{"not json", ctJSON, "<html>502 Bad Gateway</html>", Usage{}},
	{"plain text", "text/plain", `{"model":"m","usage":{"input_tokens":1}}`, Usage{}},
	{"no content type", "", `{"model":"m","usage":{"input_tokens":1}}`, Usage{}},
	{"problem+json", "application/problem+json", `{"model":"m","usage":{"input_tokens":1}}`, Usage{"m", 1, 0, true}},
	{"done only", ctSSE, "data: [DONE]\n\n", Usage{}},
	{"empty", ctSSE, "", Usage{}},
}

// TestMeter: each sample gives the same usage whole, a byte at a time and
// cut in two at every byte.
func TestMeter(t *testing.T) {
	for _, tc := range meterCases {
		t.Run(tc.name, func(t *testing.T) {
			if got := meter(NewMeter(tc.contentType), tc.body, len(tc.body)); got != tc.want {
				t.Fatalf("whole: got %+v, want %+v", got, tc.want)
			}
			if got := meter(NewMeter(tc.contentType), tc.body, 1); got != tc.want {
				t.Fatalf("a byte at a time: got %+v, want %+v", got, tc.want)
			}
			for i := 0; i <= len(tc.body); i++ {
				m := NewMeter(tc.contentType)
				m.Write([]byte(tc.body[:i]))
				m.Write([]byte(tc.body[i:]))
				if got := m.Usage(); got != tc.want {
					t.Fatalf("cut at %d: got %+v, want %+v", i, got, tc.want)
				}
			}
		})
	}
}

// meter writes body to m in pieces of n bytes (at least one write) and
// returns its usage.
func meter(m *Meter, body string, n int) Usage {
	b := []byte(body)
	for {
		k := min(n, len(b))
		if c, err := m.Write(b[:k]); c != k || err != nil {
			panic("Meter.Write failed")
		}
		b = b[k:]
		if len(b) == 0 {
			return m.Usage()
		}
	}
}

// TestMeterLimits: an event or line past the limit is skipped and the
// events after it still count; a JSON body past its limit is not read.
func TestMeterLimits(t *testing.T) {
	usageEvent := "data: {\"model\":\"m\",\"usage\":{\"input_tokens\":4,\"output_tokens\":5}}\n\n"
	long := "data: {\"model\":\"x\",\"usage\":{\"input_tokens\":1000},\"text\":\"" + strings.Repeat("a", 300) + "\"}\n\n"
	tests := []struct {
		name, contentType, body string
		want                    Usage
	}{
		{"long line skipped", ctSSE, long + usageEvent, Usage{"m", 4, 5, true}},
		{"long line last", ctSSE, usageEvent + long, Usage{"m", 4, 5, true}},
		{"long comment drops its event", ctSSE, "data: {\"usage\":{\"input_tokens\":1000}}\n: " + strings.Repeat("c", 300) + "\n\n" + usageEvent, Usage{"m", 4, 5, true}},
		{"long event of short lines", ctSSE, strings.Repeat("data: {\"usage\":{\"input_tokens\":1000}}\n", 20) + "\n" + usageEvent, Usage{"m", 4, 5, true}},
		{"long unended line", ctSSE, usageEvent + "data: " + strings.Repeat("a", 300), Usage{"m", 4, 5, true}},
		{"line at the limit", ctSSE, "data: {\"usage\":{\"input_tokens\":7}}" + strings.Repeat(" ", 256-len("data: {\"usage\":{\"input_tokens\":7}}")) + "\n\n", Usage{"", 7, 0, true}},
		{"line past the limit", ctSSE, "data: {\"usage\":{\"input_tokens\":7}}" + strings.Repeat(" ", 257-len("data: {\"usage\":{\"input_tokens\":7}}")) + "\n\n", Usage{}},
		{"body at the limit", ctJSON, `{"usage":{"input_tokens":7}}` + strings.Repeat(" ", 1024-len(`{"usage":{"input_tokens":7}}`)), Usage{"", 7, 0, true}},
		{"body past the limit", ctJSON, `{"usage":{"input_tokens":7}}` + strings.Repeat(" ", 1025-len(`{"usage":{"input_tokens":7}}`)), Usage{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, n := range []int{len(tc.body), 1, 7, 255, 256, 257} {
				m := newMeter(tc.contentType, 256, 1024)
				if got := meter(m, tc.body, n); got != tc.want {
					t.Fatalf("in writes of %d: got %+v, want %+v", n, got, tc.want)
				}
				if m.sse.line != nil || m.sse.data != nil || m.body != nil {
					t.Fatalf("buffers kept after Usage")
				}
			}
		})
	}
}

// TestMeterAfterUsage: Usage ends the body; later writes change nothing.
func TestMeterAfterUsage(t *testing.T) {
	m := NewMeter(ctSSE)
	m.Write([]byte(responsesSSE))
	first := m.Usage()
	m.Write([]byte(anthropicSSE))
	if got := m.Usage(); got != first {
		t.Fatalf("after a late write: got %+v, want %+v", got, first)
	}
}

func BenchmarkMeterSSE(b *testing.B) {
	delta := "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"" + strings.Repeat("word ", 8) + "\"}}\n\n"
	body := []byte(strings.Repeat(delta, 200) + anthropicSSE)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		m := NewMeter(ctSSE)
		for p := body; len(p) > 0; p = p[min(len(p), 1400):] {
			m.Write(p[:min(len(p), 1400)])
		}
		if !m.Usage().Known {
			b.Fatal("unknown")
		}
	}
}

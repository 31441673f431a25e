package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The TestTools tests run the real coding tools, installed from the npm
// registry at these versions by .ci/run (see toolsDir).
const (
	toolsClaudeVersion   = "2.1.328"
	toolsCodexVersion    = "0.169.0"
	toolsOpencodeVersion = "1.18.33"
)

// toolsDirs are where the tools' node_modules/.bin may be: $LLM_AGENT_TOOLS
// (a prefix), .ci/run's /opt/llm-agent-tools, and a developer's /tmp/tools.
// The tools run as a test user on the "server", so the directory must be
// reachable by every user (not under root's 0700 home).
func toolsDirs() []string {
	var dirs []string
	if d := os.Getenv("LLM_AGENT_TOOLS"); d != "" {
		dirs = append(dirs, d)
	}
	return append(dirs, "/opt/llm-agent-tools", "/tmp/tools")
}

// toolBin returns the path of a tool's executable, or skips the test
// (fails it under CI=true) when it is not installed.
func toolBin(t testing.TB, name string) string {
	t.Helper()
	for _, d := range toolsDirs() {
		p := filepath.Join(d, "node_modules", ".bin", name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p
		}
	}
	msg := fmt.Sprintf("%s is not installed in any of %v/node_modules/.bin (npm install --prefix /opt/llm-agent-tools opencode-ai@%s @anthropic-ai/claude-code@%s @openai/codex@%s; .ci/run does this)",
		name, toolsDirs(), toolsOpencodeVersion, toolsClaudeVersion, toolsCodexVersion)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip("SKIPPED: " + msg)
	return ""
}

// toolsQuietEnv keeps the tools from reaching their vendors: no telemetry,
// error reports, update checks, model list downloads or plugin installs.
// Each name is the tool's documented switch.
var toolsQuietEnv = []string{
	// Claude Code
	"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1", "DISABLE_AUTOUPDATER=1", "DISABLE_TELEMETRY=1", "DISABLE_ERROR_REPORTING=1",
	// opencode
	"OPENCODE_DISABLE_AUTOUPDATE=true", "OPENCODE_DISABLE_MODELS_FETCH=true", "OPENCODE_DISABLE_DEFAULT_PLUGINS=true",
	"OPENCODE_DISABLE_LSP_DOWNLOAD=true", "OPENCODE_PURE=1", "OPENCODE_DISABLE_SHARE=true",
	// Codex: its config.toml (toolsCodexConfig) turns off analytics and
	// the update check.
	"NO_COLOR=1",
}

// fakeRequest is what the fake upstream keeps of one request.
type fakeRequest struct {
	At       time.Time
	Path     string
	APIKey   string // x-api-key
	Auth     string // Authorization
	Beta     string // anthropic-beta
	Disconn  bool   // arrived after the owner's disconnect completed
	ToolCall bool   // answered with a tool call
}

// fakeUpstream is a provider API on 127.0.0.1 that speaks enough of the
// Anthropic Messages API, OpenAI Chat Completions and the OpenAI
// Responses API, streaming or not, to answer a one-line prompt with
// Answer, and records the credential headers of every request.
type fakeUpstream struct {
	URL    string // http://127.0.0.1:PORT
	Answer string

	mu   sync.Mutex
	reqs []fakeRequest
	// toolCall: answer model requests that hold no tool result with a
	// call of a tool that does not exist, so that the tool makes a second
	// request.
	toolCall bool
	// onFirst runs once, on the next model request, before it is
	// answered (the disconnect test disconnects the owner there).
	onFirst func()
	disconn bool
	srv     *http.Server
}

// arm sets the hook for the next model request and clears the
// disconnect mark.
func (f *fakeUpstream) arm(fn func()) {
	f.mu.Lock()
	f.onFirst, f.disconn = fn, false
	f.mu.Unlock()
}

func (f *fakeUpstream) setToolCall(on bool) {
	f.mu.Lock()
	f.toolCall = on
	f.mu.Unlock()
}

func startFakeUpstream(t testing.TB, answer string) *fakeUpstream {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeUpstream{URL: "http://" + l.Addr().String(), Answer: answer}
	f.srv = &http.Server{Handler: f, ReadHeaderTimeout: 10 * time.Second}
	go f.srv.Serve(l)
	t.Cleanup(func() { f.srv.Close() })
	return f
}

func (f *fakeUpstream) requests() []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeRequest(nil), f.reqs...)
}

// markDisconnected says that the owner's disconnect is complete.
func (f *fakeUpstream) markDisconnected() {
	f.mu.Lock()
	f.disconn = true
	f.mu.Unlock()
}

// sawSecret reports how many requests carried secret in a key header, and
// how many of those came after the disconnect.
func (f *fakeUpstream) sawSecret(secret string) (n, after int) {
	for _, r := range f.requests() {
		if strings.Contains(r.APIKey, secret) || strings.Contains(r.Auth, secret) {
			n++
			if r.Disconn {
				after++
			}
		}
	}
	return n, after
}

// afterDisconnect counts the requests since the first since, those of
// them that came after the disconnect, and those of these that carried
// secret in a key header.
func (f *fakeUpstream) afterDisconnect(since int, secret string) (n, after, withSecret int) {
	reqs := f.requests()[since:]
	for _, q := range reqs {
		if q.Disconn {
			after++
			if strings.Contains(q.APIKey, secret) || strings.Contains(q.Auth, secret) {
				withSecret++
			}
		}
	}
	return len(reqs), after, withSecret
}

// keyCount says how many requests since the first since carried key as
// their X-Api-Key.
func (f *fakeUpstream) keyCount(key string, since int) int {
	n := 0
	for _, q := range f.requests()[since:] {
		if q.APIKey == key {
			n++
		}
	}
	return n
}

type obj = map[string]any

func (f *fakeUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	model := r.Method == http.MethodPost && (strings.HasSuffix(r.URL.Path, "/messages") ||
		strings.HasSuffix(r.URL.Path, "/chat/completions") || strings.HasSuffix(r.URL.Path, "/responses"))
	var req struct {
		Stream bool `json:"stream"`
		Tools  []any
	}
	json.Unmarshal(body, &req)
	hasResult := bytes.Contains(body, []byte("tool_result")) || bytes.Contains(body, []byte("function_call_output")) ||
		bytes.Contains(body, []byte(`"role":"tool"`))
	// Recorded as it arrived, before the hook may disconnect the owner.
	f.mu.Lock()
	rec := fakeRequest{At: time.Now(), Path: r.URL.Path, APIKey: r.Header.Get("X-Api-Key"), Auth: r.Header.Get("Authorization"), Beta: r.Header.Get("Anthropic-Beta"), Disconn: f.disconn}
	rec.ToolCall = model && f.toolCall && !hasResult && len(req.Tools) > 0
	f.reqs = append(f.reqs, rec)
	var fn func()
	if model {
		fn, f.onFirst = f.onFirst, nil
	}
	f.mu.Unlock()
	if fn != nil {
		fn()
	}

	p := r.URL.Path
	switch {
	case !model:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error":{"message":"not served by the fake upstream","type":"invalid_request_error"}}`)
	case strings.HasSuffix(p, "/messages"):
		f.anthropic(w, req.Stream, rec.ToolCall)
	case strings.HasSuffix(p, "/chat/completions"):
		f.chat(w, req.Stream)
	default:
		f.responses(w, req.Stream, rec.ToolCall)
	}
}

// sse writes one server-sent event and flushes it.
func sse(w http.ResponseWriter, event string, v any) {
	b, _ := json.Marshal(v)
	if event != "" {
		fmt.Fprintf(w, "event: %s\n", event)
	}
	fmt.Fprintf(w, "data: %s\n\n", b)
	w.(http.Flusher).Flush()
}

const fakeToolName = "llm_agent_probe"

func (f *fakeUpstream) anthropic(w http.ResponseWriter, stream, toolCall bool) {
	usage := obj{"input_tokens": 10, "output_tokens": 5}
	block := obj{"type": "text", "text": f.Answer}
	stop := "end_turn"
	if toolCall {
		block, stop = obj{"type": "tool_use", "id": "toolu_fake1", "name": fakeToolName, "input": obj{}}, "tool_use"
	}
	if !stream {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(obj{"id": "msg_fake", "type": "message", "role": "assistant", "model": "claude-fake",
			"content": []obj{block}, "stop_reason": stop, "stop_sequence": nil, "usage": usage})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	sse(w, "message_start", obj{"type": "message_start", "message": obj{"id": "msg_fake", "type": "message", "role": "assistant",
		"model": "claude-fake", "content": []obj{}, "stop_reason": nil, "stop_sequence": nil, "usage": usage}})
	if toolCall {
		sse(w, "content_block_start", obj{"type": "content_block_start", "index": 0, "content_block": block})
		sse(w, "content_block_delta", obj{"type": "content_block_delta", "index": 0, "delta": obj{"type": "input_json_delta", "partial_json": "{}"}})
	} else {
		sse(w, "content_block_start", obj{"type": "content_block_start", "index": 0, "content_block": obj{"type": "text", "text": ""}})
		sse(w, "content_block_delta", obj{"type": "content_block_delta", "index": 0, "delta": obj{"type": "text_delta", "text": f.Answer}})
	}
	sse(w, "content_block_stop", obj{"type": "content_block_stop", "index": 0})
	sse(w, "message_delta", obj{"type": "message_delta", "delta": obj{"stop_reason": stop, "stop_sequence": nil}, "usage": obj{"output_tokens": 5}})
	sse(w, "message_stop", obj{"type": "message_stop"})
}

func chatChunk(delta obj, finish any) obj {
	return obj{"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-fake",
		"choices": []obj{{"index": 0, "delta": delta, "finish_reason": finish}}}
}

func (f *fakeUpstream) chat(w http.ResponseWriter, stream bool) {
	usage := obj{"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
	if !stream {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(obj{"id": "chatcmpl-fake", "object": "chat.completion", "created": 1700000000, "model": "gpt-fake",
			"choices": []obj{{"index": 0, "message": obj{"role": "assistant", "content": f.Answer}, "finish_reason": "stop"}}, "usage": usage})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	sse(w, "", chatChunk(obj{"role": "assistant", "content": ""}, nil))
	sse(w, "", chatChunk(obj{"content": f.Answer}, nil))
	sse(w, "", chatChunk(obj{}, "stop"))
	sse(w, "", obj{"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-fake", "choices": []obj{}, "usage": usage})
	io.WriteString(w, "data: [DONE]\n\n")
}

func (f *fakeUpstream) responses(w http.ResponseWriter, stream, toolCall bool) {
	usage := obj{"input_tokens": 10, "input_tokens_details": obj{"cached_tokens": 0}, "output_tokens": 5,
		"output_tokens_details": obj{"reasoning_tokens": 0}, "total_tokens": 15}
	item := obj{"id": "msg_fake", "type": "message", "status": "completed", "role": "assistant",
		"content": []obj{{"type": "output_text", "text": f.Answer, "annotations": []any{}}}}
	if toolCall {
		item = obj{"id": "fc_fake", "type": "function_call", "status": "completed", "call_id": "call_fake1", "name": fakeToolName, "arguments": "{}"}
	}
	resp := func(status string, out []obj) obj {
		return obj{"id": "resp_fake", "object": "response", "created_at": 1700000000, "status": status, "model": "gpt-fake", "output": out, "usage": usage}
	}
	if !stream {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(resp("completed", []obj{item}))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	n := 0
	ev := func(typ string, v obj) {
		v["type"], v["sequence_number"] = typ, n
		n++
		sse(w, typ, v)
	}
	ev("response.created", obj{"response": resp("in_progress", []obj{})})
	ev("response.in_progress", obj{"response": resp("in_progress", []obj{})})
	if toolCall {
		added := obj{}
		for k, v := range item {
			added[k] = v
		}
		added["status"], added["arguments"] = "in_progress", ""
		ev("response.output_item.added", obj{"output_index": 0, "item": added})
		ev("response.function_call_arguments.done", obj{"item_id": "fc_fake", "output_index": 0, "arguments": "{}"})
	} else {
		ev("response.output_item.added", obj{"output_index": 0, "item": obj{"id": "msg_fake", "type": "message", "status": "in_progress", "role": "assistant", "content": []obj{}}})
		part := obj{"item_id": "msg_fake", "output_index": 0, "content_index": 0}
		with := func(kv ...any) obj {
			o := obj{}
			for k, v := range part {
				o[k] = v
			}
			for i := 0; i+1 < len(kv); i += 2 {
				o[kv[i].(string)] = kv[i+1]
			}
			return o
		}
		ev("response.content_part.added", with("part", obj{"type": "output_text", "text": "", "annotations": []any{}}))
		ev("response.output_text.delta", with("delta", f.Answer))
		ev("response.output_text.done", with("text", f.Answer))
		ev("response.content_part.done", with("part", obj{"type": "output_text", "text": f.Answer, "annotations": []any{}}))
	}
	ev("response.output_item.done", obj{"output_index": 0, "item": item})
	ev("response.completed", obj{"response": resp("completed", []obj{item})})
}

// toolsFreePort returns a loopback port that was free a moment ago.
func toolsFreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// shq quotes s for sh.
func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// procScan reads the environment and command line of every process of
// uid, as root, and returns the pids holding secret in either, and how many
// processes held marker (the dummy key, to show that the tool was seen
// running).
func procScan(uid int, secret, marker string) (scanned int, hits []string, withMarker int) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if uidOf(pid) != uid {
			continue
		}
		scanned++
		for _, f := range []string{"environ", "cmdline"} {
			data, err := os.ReadFile(filepath.Join("/proc", e.Name(), f))
			if err != nil {
				continue
			}
			if bytes.Contains(data, []byte(secret)) {
				hits = append(hits, e.Name()+"/"+f)
			}
			if marker != "" && f == "environ" && bytes.Contains(data, []byte(marker)) {
				withMarker++
			}
		}
	}
	return scanned, hits, withMarker
}

// uidOf is the real uid of pid from /proc/PID/status, -1 if unknown.
func uidOf(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "Uid:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return -1
}

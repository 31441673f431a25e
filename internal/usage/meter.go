package usage

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"mime"
	"strconv"
	"strings"
	"unicode/utf8"
)

const (
	// MaxEvent is the most of one server-sent event (each line, and the
	// data of the event) a Meter holds; a longer event is skipped. Usage
	// events are a few hundred bytes.
	MaxEvent = 256 << 10
	// MaxBody is the most of a JSON body a Meter holds; beyond it the
	// Meter stops looking and the usage is unknown.
	MaxBody = 4 << 20
	// maxModel is how much of a model name Usage keeps (whole runes), so
	// that an audit line stays short whatever the provider sends.
	maxModel = 256
)

// Usage is what a provider reported about one response.
type Usage struct {
	Model string // empty when the response named none
	// Input counts every prompt token, cached or not: Anthropic's
	// input_tokens + cache_creation_input_tokens + cache_read_input_tokens,
	// OpenAI's prompt_tokens or input_tokens, Gemini's promptTokenCount +
	// toolUsePromptTokenCount. Output counts reasoning too (Gemini's
	// thoughtsTokenCount is added to candidatesTokenCount).
	Input, Output uint64
	// Known: the response reported token counts in a shape the Meter
	// knows. When false, Input and Output are 0 (Model may still be set).
	Known bool
}

type mode int

const (
	modeNone mode = iota // a body the Meter does not read
	modeSSE
	modeJSON
)

// Meter is an io.Writer that watches one response body go by; Usage gives
// the result. It is not safe for concurrent use.
type Meter struct {
	mode      mode
	maxEvent  int
	maxBody   int
	finished  bool
	result    Usage
	model     string
	c         counters
	sse       sseState
	body      []byte
	bodyShort bool // the body went past maxBody
}

type sseState struct {
	line     []byte // the start of a line split across writes
	lineLong bool   // the current line went past maxEvent: skip to its end
	afterCR  bool   // the last byte was \r: a \n right after it ends nothing
	data     []byte // the event's data lines, each ended by \n
	hasData  bool
	dropped  bool // part of the current event was skipped
}

// NewMeter returns a Meter for a response with the given Content-Type:
// text/event-stream is read as server-sent events, application/json (or
// any +json type) as one JSON document; other bodies are not read and give
// an unknown Usage.
func NewMeter(contentType string) *Meter {
	return newMeter(contentType, MaxEvent, MaxBody)
}

func newMeter(contentType string, maxEvent, maxBody int) *Meter {
	m := &Meter{maxEvent: maxEvent, maxBody: maxBody}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		mt, _, _ = strings.Cut(contentType, ";")
		mt = strings.ToLower(strings.TrimSpace(mt))
	}
	switch {
	case mt == "text/event-stream":
		m.mode = modeSSE
	case mt == "application/json" || mt == "text/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"):
		m.mode = modeJSON
	}
	return m
}

// Write takes the next bytes of the body. It always returns len(p), nil.
func (m *Meter) Write(p []byte) (int, error) {
	if m.finished {
		return len(p), nil
	}
	switch m.mode {
	case modeSSE:
		m.writeSSE(p)
	case modeJSON:
		m.writeJSON(p)
	}
	return len(p), nil
}

// Usage ends the body and returns what the provider reported. Later
// writes are ignored; later calls return the same.
func (m *Meter) Usage() Usage {
	if m.finished {
		return m.result
	}
	m.finished = true
	switch m.mode {
	case modeSSE:
		// A stream cut off without its last line end or blank line:
		// read what came, rather than lose the usage of a whole call.
		s := &m.sse
		if len(s.line) > 0 || s.lineLong {
			m.sseLine(s.line, s.lineLong)
		}
		m.dispatch()
		s.line, s.data = nil, nil
	case modeJSON:
		if !m.bodyShort {
			m.readBody(m.body)
		}
		m.body = nil
	}
	m.result = m.c.usage()
	m.result.Model = m.model
	return m.result
}

func (m *Meter) writeJSON(p []byte) {
	hold(&m.body, &m.bodyShort, p, m.maxBody)
}

// hold appends p to *buf unless that makes it longer than limit: then it
// lets *buf go and sets *over, after which it holds nothing.
func hold(buf *[]byte, over *bool, p []byte, limit int) {
	if *over {
		return
	}
	if len(*buf)+len(p) > limit {
		*buf, *over = nil, true
		return
	}
	*buf = append(*buf, p...)
}

// readBody reads a whole JSON body: an object, or an array of them (what
// Gemini's streamGenerateContent sends without alt=sse).
func (m *Meter) readBody(b []byte) {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		var items []json.RawMessage
		if json.Unmarshal(b, &items) != nil {
			return
		}
		for _, it := range items {
			m.examine(it)
		}
		return
	}
	m.examine(b)
}

// writeSSE splits p into lines (ended by \r\n, \n or \r, as the
// event-stream format has it), keeping an unfinished line for the next
// write.
func (m *Meter) writeSSE(p []byte) {
	s := &m.sse
	for len(p) > 0 {
		if s.afterCR {
			s.afterCR = false
			if p[0] == '\n' {
				p = p[1:]
				continue
			}
		}
		i := bytes.IndexAny(p, "\r\n")
		if i < 0 {
			hold(&s.line, &s.lineLong, p, m.maxEvent)
			return
		}
		s.afterCR = p[i] == '\r'
		if len(s.line) == 0 && !s.lineLong {
			m.sseLine(p[:i], i > m.maxEvent)
		} else {
			hold(&s.line, &s.lineLong, p[:i], m.maxEvent)
			m.sseLine(s.line, s.lineLong)
		}
		s.line, s.lineLong = s.line[:0], false
		p = p[i+1:]
	}
}

// sseLine takes one line of the stream; long means it was longer than
// maxEvent and is lost, and with it the event it belongs to.
func (m *Meter) sseLine(line []byte, long bool) {
	s := &m.sse
	if long {
		s.dropped, s.data = true, nil
		return
	}
	if len(line) == 0 {
		m.dispatch()
		return
	}
	name, value, found := bytes.Cut(line, []byte(":"))
	if string(name) != "data" {
		return // a comment (":..."), event, id, retry or unknown field
	}
	if found {
		value = bytes.TrimPrefix(value, []byte(" "))
	}
	s.hasData = true
	hold(&s.data, &s.dropped, value, m.maxEvent)
	hold(&s.data, &s.dropped, []byte("\n"), m.maxEvent)
}

// dispatch ends an event: its data, whole, is one JSON object.
func (m *Meter) dispatch() {
	s := &m.sse
	if s.hasData && !s.dropped {
		m.examine(bytes.TrimSuffix(s.data, []byte("\n")))
	}
	s.data, s.hasData, s.dropped = s.data[:0], false, false
}

// chunk is every place the providers put a model name or token counts,
// in one event or body:
//
//   - Anthropic: message_start {message:{model, usage}}, message_delta
//     {usage} (cumulative), a whole message {model, usage};
//   - OpenAI Chat Completions: {model, usage:{prompt_tokens,
//     completion_tokens}}, usage in the last chunk of a stream;
//   - OpenAI Responses: response.completed, .incomplete or .failed
//     {response:{model, usage:{input_tokens, output_tokens}}}, a whole
//     response {model, usage};
//   - Gemini: {modelVersion, usageMetadata}, cumulative in a stream.
type chunk struct {
	Model         jsonString `json:"model"`
	ModelVersion  jsonString `json:"modelVersion"`
	Usage         *tokens    `json:"usage"`
	UsageMetadata *tokens    `json:"usageMetadata"`
	Message       *inner     `json:"message"`
	Response      *inner     `json:"response"`
}

type inner struct {
	Model jsonString `json:"model"`
	Usage *tokens    `json:"usage"`
}

// tokens holds the counters of every provider; each response fills the
// ones of its own.
type tokens struct {
	InputTokens   count `json:"input_tokens"`
	OutputTokens  count `json:"output_tokens"`
	CacheCreation count `json:"cache_creation_input_tokens"`
	CacheRead     count `json:"cache_read_input_tokens"`

	PromptTokens     count `json:"prompt_tokens"`
	CompletionTokens count `json:"completion_tokens"`

	PromptTokenCount        count `json:"promptTokenCount"`
	ToolUsePromptTokenCount count `json:"toolUsePromptTokenCount"`
	CandidatesTokenCount    count `json:"candidatesTokenCount"`
	ThoughtsTokenCount      count `json:"thoughtsTokenCount"`
}

// count is a token counter: a non-negative integer, or one in a string
// (protobuf's JSON form of 64-bit integers). Anything else is taken as
// absent rather than failing the whole event.
type count struct {
	n  uint64
	ok bool
}

func (c *count) UnmarshalJSON(b []byte) error {
	if len(b) > 1 && b[0] == '"' {
		b = b[1 : len(b)-1]
	}
	if n, err := strconv.ParseUint(string(b), 10, 64); err == nil {
		*c = count{n, true}
	}
	return nil
}

// jsonString is a string member, taken as absent when it is not a string.
type jsonString string

func (s *jsonString) UnmarshalJSON(b []byte) error {
	var v string
	if json.Unmarshal(b, &v) == nil {
		*s = jsonString(v)
	}
	return nil
}

// counters keeps, for each counter, the largest value reported: stream
// counters are cumulative, and some gateways send 0 in message_start and
// the real input count in message_delta.
type counters struct {
	anthropic, chat, gemini bool // a counter of this family was seen
	in, out, cacheCreation, cacheRead,
	prompt, completion,
	promptCount, toolUse, candidates, thoughts uint64
}

func (c *counters) add(t *tokens) {
	if t == nil {
		return
	}
	c.anthropic = keep(&c.in, t.InputTokens) || c.anthropic
	c.anthropic = keep(&c.out, t.OutputTokens) || c.anthropic
	c.anthropic = keep(&c.cacheCreation, t.CacheCreation) || c.anthropic
	c.anthropic = keep(&c.cacheRead, t.CacheRead) || c.anthropic
	c.chat = keep(&c.prompt, t.PromptTokens) || c.chat
	c.chat = keep(&c.completion, t.CompletionTokens) || c.chat
	c.gemini = keep(&c.promptCount, t.PromptTokenCount) || c.gemini
	c.gemini = keep(&c.toolUse, t.ToolUsePromptTokenCount) || c.gemini
	c.gemini = keep(&c.candidates, t.CandidatesTokenCount) || c.gemini
	c.gemini = keep(&c.thoughts, t.ThoughtsTokenCount) || c.gemini
}

// keep raises *dst to v if v is present and larger; it reports whether v
// was present.
func keep(dst *uint64, v count) bool {
	if v.ok && v.n > *dst {
		*dst = v.n
	}
	return v.ok
}

// usage picks one family of counters, in case a response carries several:
// input_tokens/output_tokens (Anthropic, OpenAI Responses) first, then
// Chat Completions', then Gemini's.
func (c *counters) usage() Usage {
	switch {
	case c.anthropic:
		return Usage{Input: sum(c.in, c.cacheCreation, c.cacheRead), Output: c.out, Known: true}
	case c.chat:
		return Usage{Input: c.prompt, Output: c.completion, Known: true}
	case c.gemini:
		return Usage{Input: sum(c.promptCount, c.toolUse), Output: sum(c.candidates, c.thoughts), Known: true}
	}
	return Usage{}
}

// sum adds, saturating rather than wrapping round.
func sum(v ...uint64) uint64 {
	var t uint64
	for _, x := range v {
		if t > math.MaxUint64-x {
			return math.MaxUint64
		}
		t += x
	}
	return t
}

// examine reads one event's data or one body. Most events of a stream are
// text deltas; those that cannot name a model or usage are not decoded.
func (m *Meter) examine(b []byte) {
	if !bytes.Contains(b, []byte("odel")) && !bytes.Contains(b, []byte("sage")) {
		return
	}
	var ch chunk
	if err := json.Unmarshal(b, &ch); err != nil {
		// A member of an unexpected type is skipped by encoding/json,
		// which reads the rest: keep what it read.
		var te *json.UnmarshalTypeError
		if !errors.As(err, &te) {
			return
		}
	}
	m.setModel(ch.Model)
	m.setModel(ch.ModelVersion)
	m.c.add(ch.Usage)
	m.c.add(ch.UsageMetadata)
	for _, in := range []*inner{ch.Message, ch.Response} {
		if in != nil {
			m.setModel(in.Model)
			m.c.add(in.Usage)
		}
	}
}

// setModel keeps the last model name given, cut to maxModel bytes.
func (m *Meter) setModel(s jsonString) {
	if s == "" {
		return
	}
	v := string(s)
	if len(v) > maxModel {
		cut := maxModel
		for cut > 0 && !utf8.RuneStart(v[cut]) {
			cut--
		}
		v = v[:cut]
	}
	m.model = v
}

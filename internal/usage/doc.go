// Package usage counts the tokens of relayed provider calls.
//
// A Meter is fed one provider response body as it streams to the tool
// (after any Content-Encoding is undone) and tells, at the end, the model
// and the input and output tokens the provider reported: Anthropic
// Messages, OpenAI Chat Completions, OpenAI Responses (also Codex's ChatGPT
// backend) and Gemini, as server-sent events or as one JSON body. It never
// fails, never blocks and holds a bounded amount of the body, so the relay
// can write every byte to it beside the tool's own copy. Its result is the
// same however the body is split into writes.
//
// Summary reads the agent's audit log (JSON lines, package agent's Event,
// decoded here with a struct of its own so that this package stays free of
// the agent) and adds up the relay records by local day, provider and
// host, for llm-agent-client usage.
package usage

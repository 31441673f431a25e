// Package proxy is the auth-injecting reverse proxy of
// llm-agent-client proxy. Its routes, the way each provider's API takes a
// key and the variables that point a tool at it come from package
// providers' table.
//
// The proxy listens on loopback and serves one route per provider:
// /anthropic/ stands for https://api.anthropic.com, /openai/ for
// https://api.openai.com/v1, /openrouter/ for https://openrouter.ai/api/v1,
// /github-copilot/ for https://api.githubcopilot.com, and so on (each
// upstream can be overridden, and an override for a name without a row
// adds an OpenAI-compatible route). A tool is given the route as its base
// URL and a random dummy key made at start. With Config.Peer set (on
// Linux, NewPeerCheck's Check, which llm-agent-client always sets) each
// TCP connection's process is judged once, before its first request: the
// proxy's own descendant, or a process of its uid in its audit login
// session (or, without audit session ids, descended from its login), else
// 403 for every request on the connection and one line in the refusal
// log. For each request the proxy
//
//   - refuses it (401, in the provider's error shape) unless it carries the
//     dummy key in Authorization: Bearer, x-api-key or x-goog-api-key,
//     compared in constant time;
//   - asks the agent for the provider's credential (one get per request,
//     bounded by a timeout), so that a disconnected owner or a removed
//     credential takes effect at the next request, over a connection to
//     the agent's socket that it keeps open between requests (pool.go: over
//     ssh a fresh one costs a second round trip to the laptop), one request
//     at a time on each;
//   - drops every key header the tool sent and injects the credential the
//     way the provider expects: x-api-key for an Anthropic API key,
//     Authorization: Bearer for OpenAI-style keys, and for OAuth
//     credentials what the table's OAuth part says (Bearer plus
//     anthropic-beta: oauth-2025-04-20 for a Claude login, the ChatGPT
//     backend and ChatGPT-Account-Id for a ChatGPT login, Copilot's
//     editor headers for GitHub Copilot);
//   - streams the answer back as it comes, flushing after every read, with
//     no buffering of its own and no change of compression.
//
// When the agent cannot be reached the tool gets a 503 whose JSON body, in
// the provider's own error shape, says that the owner is not connected;
// the agent's refusals are 403s that say why. The dummy key and the
// credentials never reach a log line.
//
// Limits: net/http takes header values only as Go strings, so the injected
// credential lives in the proxy's heap, unwipeable, until the garbage
// collector reuses the memory (the Credential the agent sent is wiped as
// soon as the header is built). The proxy keeps the credential out of the
// tool's memory, environment and files; it does not stop a process of the
// same uid that goes looking for the agent's socket itself.
package proxy

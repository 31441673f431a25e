// Package providers is llm-agent's one table of LLM providers: for each
// provider id (as in opencode's auth.json) its API's base URL, how that API
// takes an API key (Authorization: Bearer, x-api-key or x-goog-api-key) and
// shapes its errors, the environment variables in which its tools take a
// base URL, a key or an OAuth token, and, for the OAuth logins that
// llm-agent refreshes (anthropic, openai, github-copilot), the token
// endpoint, client id, request encoding, answer fields, and how the access
// token goes upstream.
//
// The agent and package oauth read the OAuth part to refresh tokens on the
// laptop; package proxy reads the rest to route and inject credentials;
// llm-agent-client exec reads the variables (ExecVars). Lookup is the one
// way in; the table is built afresh on each call, so no caller can change
// it. To add an OpenAI-compatible provider, add a row to table.
package providers

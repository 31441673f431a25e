// Package relay carries provider requests through the agent's socket, so
// that the laptop makes the authenticated call and the credential never
// reaches the server: the server's proxy (proxy --relay) sends each
// request over a connection that relay@llm-agent turned into an HTTP/2
// stream (prior knowledge, no TLS: the ssh channel is the transport), and
// the agent, as Server, checks the request against the same policy as a
// get, adds the credential, calls the provider's base URL from its own
// table (or an override given on the laptop) and streams the answer back.
//
// The server side chooses nothing but the provider's route and the path
// below its base URL: the scheme, host and base path are the laptop's,
// redirects are passed back rather than followed, and request size,
// header count, concurrency and duration are bounded. Dial and Transport
// are the server side's half. See protocol/PROTOCOL.md, section 18.
package relay

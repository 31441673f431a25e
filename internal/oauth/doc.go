// Package oauth refreshes OAuth access tokens on the laptop, so that the
// long-lived refresh token never has to leave the agent.
//
// The OAuth part of package providers' table says, for each OAuth provider
// whose credentials opencode's auth.json holds, where its token endpoint
// is, which client id to send, how the refresh request is encoded (a form,
// a JSON object, or GitHub's Copilot token exchange) and which fields the
// answer carries. A Refresher runs one refresh: it opens the refresh token
// (through the caller's Opener, which keeps it in locked memory) only for
// as long as it builds the request body and waits for the answer, retries
// network errors and 5xx answers with backoff within an overall timeout,
// and reports invalid_grant, 400 and 401 as a *LoginError: the user has to
// log in again.
//
// Token values never reach an error message, a log line or a Go string
// this package makes, with two exceptions that net/http forces: the
// GitHub token of github-copilot travels in an Authorization header,
// which net/http only takes as a string, and net/http copies request and
// response bodies through buffers of its own that it does not wipe. The
// package parses answers with jsonread.Fields, which decodes strings
// straight into slices the caller wipes.
package oauth

// llm-agent.js: an opencode plugin that takes each request's credential
// from llm-agent, the laptop's agent forwarded over SSH.
//
// Install: copy this file to ~/.config/opencode/plugin/ (or a project's
// .opencode/plugin/). No dependencies, no build step. Tested with
// opencode 1.18.33.
//
// For every request opencode sends to a provider it serves, the plugin runs
// `llm-agent-client get --format json PROVIDER` (no shell, opencode's own
// environment, so LLM_AUTH_SOCK, the guard's stable path, is followed
// across reconnects) and puts the credential in the header the provider
// wants, in place of any key opencode put there. The credential is asked
// for afresh each time: it is never cached, written to a file, put in the
// environment, logged, or put in an error message. When the helper fails
// (exit 2: the owner is not connected; 1: refused, locked, no such
// credential), the request fails with an answer in the provider's error
// shape whose message is the helper's one-line error, and nothing goes
// upstream.
//
// Settings (environment of opencode, none secret):
//   LLM_AGENT_CLIENT     the helper's path (default: llm-agent-client on PATH)
//   LLM_AGENT_PROVIDERS  comma-separated opencode provider ids the plugin
//                        serves (default: anthropic,openai)
//   LLM_AGENT_PLUGIN_TIMEOUT  seconds before the helper is killed (default
//                        60; the helper has its own LLM_AGENT_TIMEOUT)
//
// How: opencode runs a plugin's `auth` loader only for providers that have
// an entry in auth.json, which this door must not need; so the plugin's
// `config` hook gives each served provider a placeholder apiKey (not a
// secret, replaced on every request) and a `fetch` of its own.

import { execFile } from "node:child_process"

const PLACEHOLDER = "llm-agent-plugin-placeholder"

// Header and error shapes per provider, as llm-agent-client proxy uses them.
const ANTHROPIC = { key: "x-api-key", errors: "anthropic" }
const GOOGLE = { key: "x-goog-api-key", errors: "google" }
const BEARER = { key: "authorization", errors: "openai" }
const SHAPES = { anthropic: ANTHROPIC, google: GOOGLE }
// OAuth logins: the headers that go with the access token.
const OAUTH_EXTRA = { anthropic: { beta: "oauth-2025-04-20" } }
const KEY_HEADERS = ["authorization", "x-api-key", "x-goog-api-key", "api-key", "proxy-authorization"]

function providers() {
  const v = process.env.LLM_AGENT_PROVIDERS ?? "anthropic,openai"
  return v.split(",").map((s) => s.trim()).filter(Boolean)
}

function timeoutMs() {
  const n = Number(process.env.LLM_AGENT_PLUGIN_TIMEOUT)
  return (Number.isFinite(n) && n > 0 ? n : 60) * 1000
}

// oneLine keeps the first line of the helper's stderr, bounded.
function oneLine(s) {
  const line = String(s ?? "").split("\n").map((l) => l.trim()).find(Boolean) ?? ""
  return line.length > 400 ? line.slice(0, 400) + "..." : line
}

class HelperError extends Error {
  constructor(status, message) {
    super(message)
    this.status = status
  }
}

// getCredential runs the helper and returns the auth.json-style entry
// ({type:"api",key} | {type:"oauth",access,accountId?} | {type:"wellknown",token}).
function getCredential(provider, signal) {
  const bin = process.env.LLM_AGENT_CLIENT || "llm-agent-client"
  return new Promise((resolve, reject) => {
    execFile(
      bin,
      ["get", "--format", "json", provider],
      { env: process.env, timeout: timeoutMs(), killSignal: "SIGKILL", maxBuffer: 256 << 10, encoding: "utf8", signal, windowsHide: true },
      (err, stdout, stderr) => {
        if (err) {
          // Never err.message: it may quote the command's output.
          const said = oneLine(stderr)
          if (err.name === "AbortError") return reject(err)
          if (err.code === "ENOENT")
            return reject(new HelperError(503, `llm-agent plugin: cannot run ${bin}: not found; put llm-agent-client on PATH or set LLM_AGENT_CLIENT`))
          if (err.killed || err.signal)
            return reject(new HelperError(503, `llm-agent plugin: ${bin} get ${provider} did not answer within ${timeoutMs() / 1000} s: the owner is not connected, or the network is down`))
          if (typeof err.code !== "number")
            return reject(new HelperError(503, `llm-agent plugin: cannot run ${bin}: ${err.code ?? "error"}`))
          const status = err.code === 2 || /locked/.test(said) ? 503 : 403
          return reject(new HelperError(status, said || `llm-agent plugin: ${bin} get ${provider} failed with exit ${err.code}`))
        }
        let entry
        try {
          entry = JSON.parse(stdout)
        } catch {
          entry = null // the parser's message could quote the secret
        }
        if (!entry || typeof entry !== "object" || typeof entry.type !== "string")
          return reject(new HelperError(502, `llm-agent plugin: ${bin} get --format json ${provider} printed no credential entry`))
        resolve(entry)
      },
    )
  })
}

// errorResponse answers in the provider's error shape, as the proxy does;
// 503 carries the headers that stop the SDK's and opencode's retry loops
// after their quick retries.
function errorResponse(shape, status, message) {
  let body
  if (shape.errors === "anthropic") {
    const type = { 401: "authentication_error", 403: "permission_error" }[status] ?? "api_error"
    body = { type: "error", error: { type, message } }
  } else if (shape.errors === "google") {
    body = { error: { code: status, message, status: status === 403 ? "PERMISSION_DENIED" : "UNAVAILABLE" } }
  } else {
    const refused = status === 403
    body = { error: { message, type: refused ? "invalid_request_error" : "server_error", param: null, code: refused ? "llm_agent_refused" : "llm_agent_not_connected" } }
  }
  const headers = { "content-type": "application/json" }
  if (status === 503) Object.assign(headers, { "x-should-retry": "false", "retry-after": "0", "retry-after-ms": "100" })
  return new Response(JSON.stringify(body) + "\n", { status, headers })
}

// setCredential puts entry into headers for provider, after removing
// every key header opencode or the SDK set.
function setCredential(headers, provider, shape, entry) {
  for (const h of KEY_HEADERS) headers.delete(h)
  const bearer = (tok) => headers.set("authorization", "Bearer " + tok)
  switch (entry.type) {
    case "api":
      if (typeof entry.key !== "string" || !entry.key) throw new HelperError(502, `llm-agent plugin: the api credential for ${provider} holds no key`)
      if (shape.key === "authorization") bearer(entry.key)
      else headers.set(shape.key, entry.key)
      return
    case "oauth": {
      if (typeof entry.access !== "string" || !entry.access) throw new HelperError(502, `llm-agent plugin: the oauth credential for ${provider} holds no access token`)
      bearer(entry.access)
      const extra = OAUTH_EXTRA[provider]
      if (extra?.beta) {
        const flags = (headers.get("anthropic-beta") ?? "").split(",").map((s) => s.trim()).filter(Boolean)
        if (!flags.includes(extra.beta)) flags.push(extra.beta)
        headers.set("anthropic-beta", flags.join(","))
      }
      if (provider === "openai" && typeof entry.accountId === "string" && entry.accountId) headers.set("chatgpt-account-id", entry.accountId)
      return
    }
    case "wellknown":
      if (typeof entry.token !== "string" || !entry.token) throw new HelperError(502, `llm-agent plugin: the wellknown credential for ${provider} holds no token`)
      bearer(entry.token)
      return
  }
  throw new HelperError(502, `llm-agent plugin: the agent sent a credential of unknown kind for ${provider}`)
}

// recentFailure remembers, per provider, an exit-2 failure for a second, so
// that the SDK's immediate retries of one request fail at once instead of
// each waiting out a dead network again. Only the failure is kept, never a
// credential.
const recentFailure = new Map()
const FAILURE_MEMO_MS = 1000

function makeFetch(provider, next) {
  const shape = SHAPES[provider] ?? BEARER
  return async (input, init) => {
    const memo = recentFailure.get(provider)
    if (memo && Date.now() - memo.at < FAILURE_MEMO_MS) return errorResponse(shape, memo.status, memo.message)
    // Take the request apart without building a Request, which would
    // take over a streamed body.
    const isReq = input instanceof Request
    const url = isReq ? input.url : String(input)
    const headers = new Headers(isReq ? input.headers : undefined)
    new Headers(init?.headers).forEach((v, k) => headers.set(k, v))
    const signal = init?.signal ?? (isReq ? input.signal : undefined)
    const body = init?.body ?? (isReq ? input.body : undefined)
    let entry
    try {
      entry = await getCredential(provider, signal)
      setCredential(headers, provider, shape, entry)
      entry = null
      recentFailure.delete(provider)
      const out = { ...init, method: init?.method ?? (isReq ? input.method : undefined), headers, body, signal }
      if (body instanceof ReadableStream) out.duplex = "half"
      return await next(url, out)
    } catch (e) {
      entry = null
      if (!(e instanceof HelperError)) throw e
      if (e.status === 503) recentFailure.set(provider, { at: Date.now(), status: e.status, message: e.message })
      return errorResponse(shape, e.status, e.message)
    }
  }
}

export const LlmAgentPlugin = async () => ({
  config: async (config) => {
    config.provider ??= {}
    for (const id of providers()) {
      const p = (config.provider[id] ??= {})
      p.options ??= {}
      const next = typeof p.options.fetch === "function" ? p.options.fetch : fetch
      // opencode's SDKs want some key to build a request; this one is no
      // secret and never leaves: makeFetch replaces it on every request.
      p.options.apiKey = PLACEHOLDER
      p.options.fetch = makeFetch(id, next)
    }
  },
})

// Package authfile reads the credential files that coding tools keep on
// disk, so llm-agent can import them into memory, and renders entries back
// in opencode's auth.json shape for write-back and `get --format json`.
//
// The credential model is opencode's, so opencode files round-trip
// losslessly. An Entry has a Provider, a Kind and the kind's fields, named
// as in opencode's auth.json:
//
//	api        key
//	oauth      refresh, access, expires (epoch ms), accountId?, enterpriseUrl?
//	wellknown  key (an environment variable name), token
//
// Fields are []byte so callers can wipe them (Entry.Wipe); the parser
// decodes strings straight from the input into those slices and never into
// Go strings. Entries do not alias the input, which the caller may wipe
// after Parse. Members that are not understood are kept verbatim (but
// compacted) in Entry.Extra, a JSON object, and are wiped with the entry.
// An expires of "0" means unknown: refresh before using the access token.
//
// # Formats
//
// Parse picks the format from the top-level keys: "claudeAiOauth" means
// Claude Code; "tokens" or "OPENAI_API_KEY" means Codex, unless some
// top-level value is an object with a "type" member (an opencode provider
// that happens to have that name); anything else is opencode.
//
// opencode, ~/.local/share/opencode/auth.json: provider id -> {"type": kind,
// fields...}. A missing or mistyped field, an unknown type or an empty
// provider id is an error; null for accountId or enterpriseUrl means absent.
// expires must be a whole number in any JSON notation. Other members,
// including fields of another kind, go to Extra.
//
// Claude Code, ~/.claude/.credentials.json: claudeAiOauth becomes one
// entry, provider "anthropic", kind oauth: accessToken -> access,
// refreshToken -> refresh (both required), expiresAt -> expires (null or
// missing gives "0"). Other members of claudeAiOauth (scopes,
// subscriptionType, ...) go to Extra under their names. Other top-level
// members (such as mcpOAuth) are kept, not reported: they go to Extra as
// one object under ExtraTopLevelKey, so they cannot clash with
// claudeAiOauth's members and a writer knows where they came from.
// "claudeAiOauth": null gives no entries.
//
// Codex CLI, ~/.codex/auth.json: a tokens object becomes provider "openai",
// kind oauth: access_token -> access, refresh_token -> refresh (both
// required), account_id -> accountId (null means absent); expires is the
// exp claim of the access token when it is a JWT (payload decoded, nothing
// verified; seconds turned into milliseconds), else "0". id_token and any
// other member of tokens go to Extra. A non-empty OPENAI_API_KEY becomes a
// kind api entry: provider "openai" when there are no tokens, and
// CodexAPIKeyProvider ("openai-api-key") when there are, because opencode
// (and llm-agent) keep one credential per provider and the OAuth login is
// the primary one. The first entry (the OAuth one if any) carries
// last_refresh in Extra and other top-level members under
// ExtraTopLevelKey. A file with neither gives no entries.
//
// # Strictness and errors
//
// Files are read with package jsonread. The input must be one JSON object
// in UTF-8 (a leading byte order mark is skipped). Invalid UTF-8, unpaired
// \u surrogates, nesting deeper than 64 levels, trailing data and
// duplicate object keys anywhere are errors;
// duplicates are rejected rather than resolved because parsers disagree on
// which one wins, and a credential file should not be ambiguous.
//
// Every error is one line, starts with the file name and gives the line
// and column, or the JSON path, of the problem, e.g.
//
//	~/.codex/auth.json: "tokens.access_token": want a string, got number
//
// Errors never contain values from the file. Object keys (provider ids and
// field names) may appear in paths; odd or long keys are replaced by a
// placeholder. On error Parse returns no entries.
//
// ReadFile refuses anything but a regular file (checked with stat before
// opening, so devices are not opened, and with fstat after opening
// non-blockingly, so a FIFO swapped in cannot hang it) and files over
// MaxFileSize, of which it reads at most MaxFileSize+1 bytes.
//
// # Writing back
//
// ReplaceOAuth and WriteBack put refreshed OAuth tokens back into a file
// (llm-agent-client import --write-back): only the values of the entry's
// token members change, spliced in by byte offsets, so every other entry,
// member, key order and whitespace stays byte for byte. WriteBack replaces
// the file by renaming a synced temporary file with its mode and owner,
// under an flock on the file's name plus LockSuffix; it writes only if the
// entry still holds the refresh token the caller had.
package authfile

// Package jsonread is llm-agent's strict JSON reader for data that holds
// secrets: credential files (package authfile), OAuth token endpoint
// answers (package oauth) and JWT payloads. It is used instead of
// encoding/json because:
//
//   - string values stay in the input until decoded straight into a []byte
//     that the caller owns and can wipe (encoding/json makes Go strings,
//     which cannot be wiped);
//   - its error messages never quote input bytes (encoding/json's say
//     "invalid character 'x'", which can be a byte of a secret), only
//     object keys, sanitised (SafeKey);
//   - it rejects duplicate keys, lone UTF-16 surrogates, invalid UTF-8 and
//     nesting deeper than MaxDepth, which encoding/json silently accepts,
//     rewrites or recurses into;
//   - it keeps object members in input order with their raw spans, so that
//     a caller can carry unknown members over verbatim or splice a new
//     value in by byte offsets.
//
// Parse returns the tree of spans; Fields reads chosen top-level members
// of an object into fresh slices; UnquoteInPlace decodes a string over its
// own bytes (a value read into locked memory stays there); JWTExpiry reads a JWT's exp claim
// without verifying anything. StringLen and AppendString write a JSON
// string into a buffer sized once, so that growth leaves no partial copy
// of a secret behind.
package jsonread

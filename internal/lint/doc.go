// Package lint holds no code, only a test that keeps the repository
// honest as part of `go test ./...`: gofmt, go vet, a darwin build of the
// laptop side, mandoc -T lint of the man pages, and fuzz seeds (every fuzz
// target has an f.Add seed or a testdata/fuzz directory, and no such
// directory outlives its target).
package lint

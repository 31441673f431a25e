// Package lint holds no code, only a test that keeps the repository
// honest as part of `go test ./...`: gofmt, go vet, a darwin build of the
// laptop side, and mandoc -T lint of the man pages.
package lint

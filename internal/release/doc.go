// Command release builds llm-agent's release files into one directory:
//
//	go run ./internal/release -o dist [-version 1.2.3]
//
// It writes, for VERSION (from -version, else from git describe of HEAD):
//
//	llm-agent_VERSION_GOOS_GOARCH/{llm-agent,llm-agent-client}
//	    for linux/amd64, linux/arm64, darwin/amd64 and darwin/arm64
//	llm-agent_PKGVERSION-1_{amd64,arm64}.deb
//	llm-agent-PKGVERSION-1.{x86_64,aarch64}.rpm
//	install-client.sh   copies the right linux client to a server over ssh
//	SHA256SUMS          of all of the above, in sha256sum -c form
//
// PKGVERSION is VERSION with "~" before a pre-release part, so that dpkg
// and rpm sort it before the release.
//
// The binaries are static (CGO_ENABLED=0) and reproducible: -trimpath,
// -buildvcs=false, -ldflags "-s -w -buildid=", with GOAMD64, GOARM64 and
// GOFLAGS pinned and GOEXPERIMENT cleared, so that the builder's
// environment cannot change them.
// The same commit built with the same Go toolchain gives the same bytes,
// SHA256SUMS included. Package file times come from SOURCE_DATE_EPOCH, else
// from HEAD's commit time.
//
// Packages are made by nfpm, run with "go run -modfile=internal/release/nfpm.mod":
// nfpm and its dependencies stay out of the project's go.mod, and their
// checksums are pinned in nfpm.sum, so only the Go module proxy is needed.
// They hold the linux binaries in /usr/bin, the man pages gzipped in
// /usr/share/man/man1, and files that the host's own build prints: shell
// completions (llm-agent-client completion bash|zsh|fish) and systemd user
// units (llm-agent --print-service systemd|systemd-socket).
package main

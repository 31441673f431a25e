module github.com/llm-agent/llm-agent

go 1.26.0

require (
	github.com/awnumar/memguard v0.23.0
	github.com/rogpeppe/go-internal v1.16.0
	github.com/spf13/pflag v1.1.0
	golang.org/x/crypto v0.59.0
	golang.org/x/sys v0.50.0
	golang.org/x/term v0.48.0
)

require (
	github.com/awnumar/memcall v0.4.0 // indirect
	golang.org/x/tools v0.26.0 // indirect
)

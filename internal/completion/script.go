package completion

import (
	_ "embed"
	"fmt"
	"io"
	"strings"
)

var (
	//go:embed scripts/llm-agent.bash
	bashScript string
	//go:embed scripts/_llm-agent
	zshScript string
	//go:embed scripts/llm-agent.fish
	fishScript string
)

// Shells returns the shells Script knows.
func Shells() []string { return []string{"bash", "zsh", "fish"} }

// Script writes the completion script for shell, one for both llm-agent
// and llm-agent-client.
func Script(w io.Writer, shell string) error {
	var s string
	switch shell {
	case "bash":
		s = bashScript
	case "zsh":
		s = zshScript
	case "fish":
		s = fishScript
	default:
		return fmt.Errorf("unknown shell %q: want %s", shell, strings.Join(Shells(), ", "))
	}
	_, err := io.WriteString(w, s)
	return err
}

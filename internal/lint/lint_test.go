package lint

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// root is the repository root, two levels up from this package.
const root = "../.."

// ci reports whether a missing tool must fail the test rather than skip.
func ci() bool { return os.Getenv("CI") == "true" }

func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestGofmt(t *testing.T) {
	if out := run(t, nil, "gofmt", "-l", "."); strings.TrimSpace(out) != "" {
		t.Errorf("files not gofmt'ed:\n%s", out)
	}
}

func TestVet(t *testing.T) {
	run(t, nil, "go", "vet", "./...")
}

// TestDarwin keeps the whole module compiling and vetted for macOS, which
// CI cannot run: the laptop side runs there, and the Linux-only parts
// (server side, test harnesses) must keep their per-OS files in order so
// that this stays true.
func TestDarwin(t *testing.T) {
	for _, arch := range []string{"arm64", "amd64"} {
		env := []string{"GOOS=darwin", "GOARCH=" + arch, "CGO_ENABLED=0"}
		run(t, env, "go", "build", "./...")
		run(t, env, "go", "vet", "./...")
	}
}

func TestManLint(t *testing.T) {
	if _, err := exec.LookPath("mandoc"); err != nil {
		if ci() {
			t.Fatal("mandoc is not installed (.ci/run installs it)")
		}
		t.Skip("SKIPPED: mandoc is not installed; apt-get install mandoc")
	}
	pages, _ := filepath.Glob(filepath.Join(root, "man", "*.1"))
	if len(pages) < 2 {
		t.Fatalf("want man/llm-agent.1 and man/llm-agent-client.1, found %v", pages)
	}
	args := []string{"-T", "lint", "-W", "warning"}
	for _, p := range pages {
		args = append(args, strings.TrimPrefix(p, root+"/"))
	}
	cmd := exec.Command("mandoc", args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("mandoc -T lint: %v\n%s", err, out)
	}
}

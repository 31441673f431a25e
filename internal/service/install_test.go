package service

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestInstall(t *testing.T) {
	const program = "/usr/local/bin/llm-agent"
	tests := []struct {
		name      string
		os        string
		xdgConfig func(home string) string
		files     []string // relative to home
		enable    string   // a substring of the enable commands
		shell     string
	}{
		{"linux", "linux", func(string) string { return "" },
			[]string{".config/systemd/user/llm-agent.service", ".config/systemd/user/llm-agent.socket"},
			"systemctl --user enable --now llm-agent.socket", `export LLM_AUTH_SOCK="$XDG_RUNTIME_DIR/llm-agent/agent.sock"`},
		{"linux, XDG_CONFIG_HOME", "linux", func(home string) string { return filepath.Join(home, "cfg") },
			[]string{"cfg/systemd/user/llm-agent.service", "cfg/systemd/user/llm-agent.socket"},
			"systemctl --user daemon-reload", `export LLM_AUTH_SOCK="$XDG_RUNTIME_DIR/llm-agent/agent.sock"`},
		{"linux, relative XDG_CONFIG_HOME ignored", "linux", func(string) string { return "cfg" },
			[]string{".config/systemd/user/llm-agent.service", ".config/systemd/user/llm-agent.socket"},
			"enable --now", "LLM_AUTH_SOCK"},
		{"darwin", "darwin", func(string) string { return "" },
			[]string{"Library/LaunchAgents/" + Label + ".plist"},
			"launchctl bootstrap gui/501 ", "/.llm-agent/agent.sock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := t.TempDir()
			target := Target{OS: tt.os, Program: program, Home: home, ConfigHome: tt.xdgConfig(home), UID: 501}
			r, err := Install(target, false)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, f := range tt.files {
				want = append(want, filepath.Join(home, f))
			}
			if !slices.Equal(r.Wrote, want) || len(r.Unchanged) != 0 {
				t.Fatalf("wrote %q unchanged %q, want %q", r.Wrote, r.Unchanged, want)
			}
			files, _ := Files(target)
			for _, f := range files {
				got, err := os.ReadFile(f.Path)
				if err != nil || string(got) != f.Text {
					t.Errorf("%s: %v, or not the printed text", f.Path, err)
				}
				if fi, _ := os.Stat(f.Path); fi.Mode().Perm() != 0o644 {
					t.Errorf("%s: mode %v", f.Path, fi.Mode())
				}
			}
			if !strings.Contains(strings.Join(r.Enable, "\n"), tt.enable) || !strings.Contains(r.Shell, tt.shell) {
				t.Errorf("enable %q shell %q", r.Enable, r.Shell)
			}
			if tt.os == "darwin" {
				if fi, err := os.Stat(filepath.Join(home, LaunchdDir)); err != nil || fi.Mode().Perm() != 0o700 {
					t.Errorf("socket directory: %v %v", fi, err)
				}
			}
			leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(want[0]), ".*"))
			if len(leftovers) > 0 {
				t.Errorf("temporary files left: %q", leftovers)
			}

			// Again: unchanged.
			if r, err = Install(target, false); err != nil || len(r.Wrote) != 0 || !slices.Equal(r.Unchanged, want) {
				t.Fatalf("second install: wrote %q unchanged %q err %v", r.Wrote, r.Unchanged, err)
			}

			// A different file is kept, and nothing else is written,
			// unless forced.
			os.WriteFile(want[0], []byte("# mine\n"), 0o644)
			if len(want) > 1 {
				os.Remove(want[1])
			}
			_, err = Install(target, false)
			if err == nil || !strings.Contains(err.Error(), "--force") || !strings.Contains(err.Error(), want[0]) {
				t.Fatalf("different file: err %v, want a refusal naming the file and --force", err)
			}
			if got, _ := os.ReadFile(want[0]); string(got) != "# mine\n" {
				t.Error("the different file was replaced without --force")
			}
			if len(want) > 1 {
				if _, err := os.Stat(want[1]); err == nil {
					t.Error("a refused install wrote the other file")
				}
			}
			if r, err = Install(target, true); err != nil || !slices.Equal(r.Wrote, want) {
				t.Fatalf("forced: wrote %q err %v", r.Wrote, err)
			}
			if got, _ := os.ReadFile(want[0]); string(got) == "# mine\n" {
				t.Error("--force did not replace the file")
			}
		})
	}
}

func TestInstallRefuses(t *testing.T) {
	home := t.TempDir()
	for _, tt := range []struct {
		name   string
		target Target
		want   string
	}{
		{"other OS", Target{OS: "freebsd", Program: "/usr/local/bin/llm-agent", Home: home}, "knows systemd (Linux) and launchd (macOS)"},
		{"no home", Target{OS: "linux", Program: "/usr/bin/llm-agent"}, "set HOME"},
		{"relative program", Target{OS: "linux", Program: "llm-agent", Home: home}, "absolute path"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Install(tt.target, false); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
	t.Run("open socket directory on macOS", func(t *testing.T) {
		home := t.TempDir()
		dir := filepath.Join(home, LaunchdDir)
		os.Mkdir(dir, 0o777)
		os.Chmod(dir, 0o777)
		_, err := Install(Target{OS: "darwin", Program: "/usr/local/bin/llm-agent", Home: home}, false)
		if err == nil || !strings.Contains(err.Error(), "chmod 700") {
			t.Fatalf("err %v", err)
		}
	})
}

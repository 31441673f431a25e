package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// generated is a file of the packages that a host-built binary prints.
type generated struct {
	cmd   string   // one of commands
	args  []string // what makes it print the file
	dsts  []string // where the packages install it (the same bytes at each)
	check func([]byte) error
}

// argv is the command line, for messages and test skips.
func (g generated) argv() string { return g.cmd + " " + strings.Join(g.args, " ") }

const (
	bashDir    = "/usr/share/bash-completion/completions/"
	fishDir    = "/usr/share/fish/vendor_completions.d/"
	unitDir    = "/usr/lib/systemd/user/"
	binPrefix  = "/usr/bin/"
	manDir     = "/usr/share/man/man1/"
	zshDir     = "/usr/share/zsh/vendor-completions/"
	homepage   = "https://github.com/llm-agent/llm-agent"
	pkgName    = "llm-agent"
	pkgRelease = "1"
)

// allGenerated lists every generated file. Each completion script completes
// both programs; bash-completion and fish load a script by the command's
// name, so it is installed under both.
var allGenerated = []generated{
	{cmd: "llm-agent-client", args: []string{"completion", "bash"}, dsts: []string{bashDir + "llm-agent", bashDir + "llm-agent-client"}},
	{cmd: "llm-agent-client", args: []string{"completion", "zsh"}, dsts: []string{zshDir + "_llm-agent"}},
	{cmd: "llm-agent-client", args: []string{"completion", "fish"}, dsts: []string{fishDir + "llm-agent.fish", fishDir + "llm-agent-client.fish"}},
	// Without --service-program the unit would run the llm-agent that
	// printed it, here the one in the release directory.
	{cmd: "llm-agent", args: []string{"--print-service", "systemd", "--service-program", binPrefix + "llm-agent"}, dsts: []string{unitDir + "llm-agent.service"}, check: execStartIsPackaged},
	{cmd: "llm-agent", args: []string{"--print-service", "systemd-socket", "--service-program", binPrefix + "llm-agent"}, dsts: []string{unitDir + "llm-agent.socket"}},
}

// execStartIsPackaged refuses a unit that would run some other llm-agent
// than the package's.
func execStartIsPackaged(unit []byte) error {
	for _, line := range strings.Split(string(unit), "\n") {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
			if v == binPrefix+"llm-agent" || strings.HasPrefix(v, binPrefix+"llm-agent ") {
				return nil
			}
			return fmt.Errorf("the unit's ExecStart runs %q, not %sllm-agent; print it with --service-program %sllm-agent", v, binPrefix, binPrefix)
		}
	}
	return errors.New("the unit has no ExecStart line")
}

// pkgFile is one entry of nfpm's contents.
type pkgFile struct {
	Src      string   `json:"src"`
	Dst      string   `json:"dst"`
	FileInfo fileInfo `json:"file_info"`
}

type fileInfo struct {
	Mode  os.FileMode `json:"mode"`
	Owner string      `json:"owner"`
	Group string      `json:"group"`
	MTime time.Time   `json:"mtime"`
}

// nfpmConfig is the part of nfpm's configuration used here. nfpm reads
// YAML, of which JSON is a subset, so encoding/json writes it.
type nfpmConfig struct {
	Name        string    `json:"name"`
	Arch        string    `json:"arch"`
	Platform    string    `json:"platform"`
	Version     string    `json:"version"`
	Release     string    `json:"release"`
	Section     string    `json:"section"`
	Priority    string    `json:"priority"`
	Maintainer  string    `json:"maintainer"`
	Description string    `json:"description"`
	Homepage    string    `json:"homepage"`
	MTime       time.Time `json:"mtime"`
	Contents    []pkgFile `json:"contents"`
	RPM         struct {
		BuildHost string `json:"buildhost"`
		Summary   string `json:"summary"`
	} `json:"rpm"`
}

const description = `agent that holds LLM provider credentials, as ssh-agent holds SSH keys
llm-agent keeps API keys and OAuth tokens for coding agents (opencode,
Claude Code, Codex CLI) encrypted in memory on the laptop; SSH forwards its
socket to servers, where llm-agent-client hands them to tools for as long
as the owner is connected.`

// writePackages makes the .deb and .rpm of each linux target in o.Out.
// hostBin holds the binaries that run here, which print the generated
// files.
func writePackages(ctx context.Context, o Options, stage, hostBin string) error {
	var files []pkgFile
	add := func(src, dst string, mode os.FileMode) {
		files = append(files, pkgFile{Src: src, Dst: dst, FileInfo: fileInfo{Mode: mode, Owner: "root", Group: "root", MTime: o.Time.UTC()}})
	}
	for _, c := range commands {
		page, err := gzipFile(filepath.Join(o.Root, "man", c+".1"), filepath.Join(stage, c+".1.gz"))
		if err != nil {
			return err
		}
		add(page, manDir+c+".1.gz", 0o644)
	}
	home := filepath.Join(stage, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		return fmt.Errorf("staging home: %w", err)
	}
	// A fixed, minimal environment: what they print must not depend on
	// who builds.
	env := []string{"PATH=/usr/bin:/bin", "HOME=" + home, "LC_ALL=C"}
	for i, g := range o.Generated {
		out, err := run(ctx, home, env, append([]string{filepath.Join(hostBin, g.cmd)}, g.args...)...)
		if err != nil {
			return fmt.Errorf("the packages need what %q prints, and it failed: %w", g.argv(), err)
		}
		if len(bytes.TrimSpace(out)) == 0 {
			return fmt.Errorf("%q printed nothing", g.argv())
		}
		if g.check != nil {
			if err := g.check(out); err != nil {
				return fmt.Errorf("%s: %w", g.argv(), err)
			}
		}
		src := filepath.Join(stage, fmt.Sprintf("generated-%d", i))
		if err := os.WriteFile(src, out, 0o644); err != nil {
			return fmt.Errorf("stage %s: %w", g.argv(), err)
		}
		for _, d := range g.dsts {
			add(src, d, 0o644)
		}
	}
	for _, t := range targets {
		if t.goos != "linux" {
			continue
		}
		bins := make([]pkgFile, 0, len(files)+len(commands))
		for _, c := range commands {
			bins = append(bins, pkgFile{Src: filepath.Join(o.Out, binDir(o.Version, t), c), Dst: binPrefix + c,
				FileInfo: fileInfo{Mode: 0o755, Owner: "root", Group: "root", MTime: o.Time.UTC()}})
		}
		cfg := nfpmConfig{
			Name: pkgName, Arch: t.goarch, Platform: "linux", Version: o.Version, Release: pkgRelease,
			Section: "utils", Priority: "optional", Maintainer: o.Maintainer,
			Description: description, Homepage: homepage, MTime: o.Time.UTC(),
			Contents: append(bins, files...),
		}
		cfg.RPM.BuildHost = "llm-agent-release" // not the builder's host name: reproducible
		cfg.RPM.Summary = strings.SplitN(description, "\n", 2)[0]
		for _, format := range []string{"deb", "rpm"} {
			if err := nfpm(ctx, o, stage, cfg, format); err != nil {
				return err
			}
		}
	}
	return nil
}

// nfpm writes one package of cfg into o.Out, under the name nfpm gives it.
func nfpm(ctx context.Context, o Options, stage string, cfg nfpmConfig, format string) error {
	dir := filepath.Join(stage, cfg.Arch+"-"+format)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("staging %s: %w", format, err)
	}
	js, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("nfpm config: %w", err)
	}
	cfgPath := filepath.Join(dir, "nfpm.yaml")
	if err := os.WriteFile(cfgPath, js, 0o644); err != nil {
		return fmt.Errorf("nfpm config: %w", err)
	}
	outDir := filepath.Join(dir, "out")
	if err := os.Mkdir(outDir, 0o755); err != nil {
		return fmt.Errorf("staging %s: %w", format, err)
	}
	// nfpm runs as a host program: the release's pinned settings, not the
	// caller's GOFLAGS or GOAMD64, apply to its build too.
	env := append(buildEnv(target{runtime.GOOS, runtime.GOARCH}), epochEnv(o.Time))
	if _, err := run(ctx, o.Root, env, "go", "run", "-modfile=internal/release/nfpm.mod",
		"github.com/goreleaser/nfpm/v2/cmd/nfpm", "package", "-f", cfgPath, "-p", format, "-t", outDir+string(filepath.Separator)); err != nil {
		return fmt.Errorf("nfpm (%s, %s): %w", format, cfg.Arch, err)
	}
	made, err := os.ReadDir(outDir)
	if err != nil || len(made) != 1 {
		return fmt.Errorf("nfpm (%s, %s) should have made one file in %s: %v %v", format, cfg.Arch, outDir, made, err)
	}
	name := made[0].Name()
	if err := os.Rename(filepath.Join(outDir, name), filepath.Join(o.Out, name)); err != nil {
		return fmt.Errorf("move %s into %s: %w", name, o.Out, err)
	}
	return nil
}

// gzipFile compresses src into dst as Debian wants man pages: best
// compression, no name or time in the header (so that the bytes depend on
// the content only).
func gzipFile(src, dst string) (string, error) {
	data, err := os.ReadFile(src)
	if err != nil {
		return "", fmt.Errorf("man page: %w", err)
	}
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
	if err != nil {
		return "", err
	}
	if _, err := zw.Write(data); err != nil {
		return "", fmt.Errorf("gzip %s: %w", src, err)
	}
	if err := zw.Close(); err != nil {
		return "", fmt.Errorf("gzip %s: %w", src, err)
	}
	if err := os.WriteFile(dst, b.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("stage %s: %w", dst, err)
	}
	return dst, nil
}

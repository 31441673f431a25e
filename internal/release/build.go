package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// target is one platform the release has binaries for.
type target struct{ goos, goarch string }

// targets are the release's platforms: the server side runs on Linux, the
// laptop side on Linux and macOS.
var targets = []target{
	{"linux", "amd64"},
	{"linux", "arm64"},
	{"darwin", "amd64"},
	{"darwin", "arm64"},
}

// commands are the programs each platform directory holds.
var commands = []string{"llm-agent", "llm-agent-client"}

// Options says what Build makes.
type Options struct {
	Root    string    // the repository (holds go.mod)
	Out     string    // the release directory; must be missing or empty
	Version string    // checked by checkVersion
	Time    time.Time // file times in the packages
	// Maintainer is the packages' Maintainer/Packager field.
	Maintainer string
	// Generated are the files the host's binaries print for the packages;
	// main always passes allGenerated.
	Generated []generated
	Log       io.Writer // progress lines; nil for none
}

//go:embed install-client.sh
var installScript string

// Build writes the release into o.Out: binaries, packages, install-client.sh
// and SHA256SUMS.
func Build(ctx context.Context, o Options) error {
	if err := checkVersion(o.Version); err != nil {
		return err
	}
	if err := prepareOut(o.Out); err != nil {
		return err
	}
	logf := func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", args...)
		}
	}
	for _, t := range targets {
		logf("build %s/%s", t.goos, t.goarch)
		if err := goBuild(ctx, o.Root, filepath.Join(o.Out, binDir(o.Version, t)), t); err != nil {
			return err
		}
	}
	host := target{runtime.GOOS, runtime.GOARCH}
	if !hasTarget(host) {
		return fmt.Errorf("this machine (%s/%s) is not a release platform, so its binaries cannot print the completions and units; build on linux or darwin, amd64 or arm64", host.goos, host.goarch)
	}
	stage, err := os.MkdirTemp("", "llm-agent-release-")
	if err != nil {
		return fmt.Errorf("staging directory: %w", err)
	}
	defer os.RemoveAll(stage)
	logf("package")
	if err := writePackages(ctx, o, stage, filepath.Join(o.Out, binDir(o.Version, host))); err != nil {
		return err
	}
	script := strings.ReplaceAll(installScript, "@VERSION@", o.Version)
	if err := os.WriteFile(filepath.Join(o.Out, "install-client.sh"), []byte(script), 0o755); err != nil {
		return fmt.Errorf("write install-client.sh: %w", err)
	}
	return writeSums(o.Out)
}

// binDir is the directory of one platform's binaries, relative to Out.
func binDir(version string, t target) string {
	return "llm-agent_" + version + "_" + t.goos + "_" + t.goarch
}

func hasTarget(t target) bool {
	for _, x := range targets {
		if x == t {
			return true
		}
	}
	return false
}

// prepareOut makes dir, refusing one with files in it: a release directory
// with leftovers of another version would get them in its SHA256SUMS.
func prepareOut(dir string) error {
	if dir == "" {
		return errors.New("no output directory; pass -o DIR")
	}
	ents, err := os.ReadDir(dir)
	if err == nil && len(ents) > 0 {
		return fmt.Errorf("%s is not empty; remove it (rm -r %s) or pass another -o", dir, dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create the output directory: %w", err)
	}
	return nil
}

// buildEnv is the environment of the go build of t: the caller's, with
// everything that would change the output pinned or removed, so that two
// builders of the same commit with the same toolchain get the same bytes.
func buildEnv(t target) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "CGO_ENABLED", "GOOS", "GOARCH", "GOFLAGS", "GOAMD64", "GOARM64",
			"GOEXPERIMENT", "GO386", "GOARM", "GOWORK", "CGO_CFLAGS", "CGO_LDFLAGS":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "CGO_ENABLED=0", "GOOS="+t.goos, "GOARCH="+t.goarch,
		"GOFLAGS=-mod=readonly", "GOAMD64=v1", "GOARM64=v8.0", "GOWORK=off")
}

// goBuild builds the commands for t into dir.
func goBuild(ctx context.Context, root, dir string, t target) error {
	args := []string{"build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-o", dir + string(filepath.Separator)}
	for _, c := range commands {
		args = append(args, "./cmd/"+c)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = buildEnv(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build for %s/%s: %w\n%s", t.goos, t.goarch, err, out)
	}
	return nil
}

// writeSums writes dir/SHA256SUMS over every other file below dir, sorted
// by path, in sha256sum's format ("HEX  PATH", run from dir).
func writeSums(dir string) error {
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel == "SHA256SUMS" {
			return nil
		}
		sum, err := fileSHA256(p)
		if err != nil {
			return err
		}
		lines = append(lines, sum+"  "+filepath.ToSlash(rel)+"\n")
		return nil
	})
	if err != nil {
		return fmt.Errorf("checksums: %w", err)
	}
	sort.Slice(lines, func(i, j int) bool { return lines[i][66:] < lines[j][66:] })
	if err := os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(strings.Join(lines, "")), 0o644); err != nil {
		return fmt.Errorf("write SHA256SUMS: %w", err)
	}
	return nil
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// run runs argv in dir with env and returns its stdout; errors carry its
// stderr.
func run(ctx context.Context, dir string, env []string, argv ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// epochEnv is SOURCE_DATE_EPOCH for t.
func epochEnv(t time.Time) string {
	return "SOURCE_DATE_EPOCH=" + strconv.FormatInt(t.Unix(), 10)
}

package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// defaultMaintainer is the packages' Maintainer field unless -maintainer
// says otherwise.
const defaultMaintainer = "llm-agent developers <" + homepage + ">"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := runMain(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

func runMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("release", flag.ContinueOnError)
	out := fs.String("o", "dist", "the release `directory`; must be missing or empty")
	version := fs.String("version", "", "the release `version`, MAJOR.MINOR.PATCH[-PRERELEASE]; default from git describe of HEAD")
	maint := fs.String("maintainer", defaultMaintainer, "the packages' Maintainer `field`")
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q; usage: go run ./internal/release [-o DIR] [-version V]", fs.Arg(0))
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	v, when := *version, time.Time{}
	if v == "" {
		if v, when, err = gitVersion(ctx, root); err != nil {
			return err
		}
	} else if when, err = commitTime(ctx, root); err != nil {
		when = time.Time{} // not in git: buildTime wants SOURCE_DATE_EPOCH
	}
	if when, err = buildTime(when); err != nil {
		return err
	}
	dir, err := filepath.Abs(*out)
	if err != nil {
		return err
	}
	err = Build(ctx, Options{Root: root, Out: dir, Version: v, Time: when, Maintainer: *maint,
		Generated: allGenerated, Log: os.Stderr})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "release %s in %s; check with: (cd %s && sha256sum -c SHA256SUMS)\n", v, *out, *out)
	return nil
}

// buildTime is SOURCE_DATE_EPOCH when set, else the commit time: the same
// for every build of a commit. With neither (-version outside git) it
// refuses rather than stamp the packages with today's date.
func buildTime(commit time.Time) (time.Time, error) {
	if s, ok := os.LookupEnv("SOURCE_DATE_EPOCH"); ok {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil || sec < 0 {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not Unix seconds; unset it or fix it", s)
		}
		return time.Unix(sec, 0).UTC(), nil
	}
	if commit.IsZero() {
		return time.Time{}, fmt.Errorf("no commit time from git; set SOURCE_DATE_EPOCH to the release's time in Unix seconds, for the packages' file times")
	}
	return commit, nil
}

// moduleRoot is the directory of the main module's go.mod.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w; run this from the llm-agent repository", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not in a Go module; run this from the llm-agent repository")
	}
	return filepath.Dir(mod), nil
}

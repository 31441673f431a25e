package main

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// versionRE is what -version accepts: semantic versions without a "v",
// the build metadata part left out (packages sort by the rest).
var versionRE = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$`)

// describeRE is git describe --tags --long --abbrev=12 on a vX.Y.Z tag.
var describeRE = regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)-([0-9]+)-g([0-9a-f]{12,64})$`)

var hashRE = regexp.MustCompile(`^[0-9a-f]{40,64}$`)

// checkVersion says what is wrong with a version given on the command line.
func checkVersion(v string) error {
	if !versionRE.MatchString(v) {
		return fmt.Errorf("version %q is not MAJOR.MINOR.PATCH[-PRERELEASE] (no leading v); pass e.g. -version 1.2.3", v)
	}
	return nil
}

// gitVersion derives the version of HEAD in dir from git, the same for the
// same commit wherever it is built: a vX.Y.Z tag on HEAD gives X.Y.Z; a
// commit after one, or with no tag at all, gets a Go-style pseudo-version
// (X.Y.Z+1-0.COMMITTIME-HASH, or 0.0.0-COMMITTIME-HASH), which sorts after
// the tag and before the next release in dpkg and rpm alike. It also
// returns the commit time, for file times in the packages.
func gitVersion(ctx context.Context, dir string) (string, time.Time, error) {
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(out)), nil
	}
	st, err := git("status", "--porcelain", "--untracked-files=no")
	if err != nil {
		return "", time.Time{}, fmt.Errorf("no version from git (%v); pass -version", err)
	}
	if st != "" {
		return "", time.Time{}, fmt.Errorf("the work tree has uncommitted changes, so HEAD's version would not name what is built; commit them or pass -version")
	}
	hash, err := git("rev-parse", "HEAD")
	if err != nil {
		return "", time.Time{}, err
	}
	ct, err := git("log", "-1", "--format=%ct", "HEAD")
	if err != nil {
		return "", time.Time{}, err
	}
	// Without a tag describe fails; that is the 0.0.0 case, not an error.
	desc, _ := git("describe", "--tags", "--long", "--abbrev=12", "--match", "v[0-9]*", "HEAD")
	return versionOf(desc, hash, ct)
}

// commitTime is the commit time of HEAD in dir.
func commitTime(ctx context.Context, dir string) (time.Time, error) {
	cmd := exec.CommandContext(ctx, "git", "log", "-1", "--format=%ct", "HEAD")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return time.Time{}, fmt.Errorf("git log: %w", err)
	}
	sec, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("git log gave commit time %q, not Unix seconds", out)
	}
	return time.Unix(sec, 0).UTC(), nil
}

// versionOf computes gitVersion's answer from git's outputs: desc from
// describe (empty with no tag), the full commit hash and the commit time
// in Unix seconds.
func versionOf(desc, hash, commitTime string) (string, time.Time, error) {
	if !hashRE.MatchString(hash) {
		return "", time.Time{}, fmt.Errorf("git rev-parse gave %q, not a commit hash", hash)
	}
	sec, err := strconv.ParseInt(commitTime, 10, 64)
	if err != nil || sec < 0 {
		return "", time.Time{}, fmt.Errorf("git log gave commit time %q, not Unix seconds", commitTime)
	}
	when := time.Unix(sec, 0).UTC()
	pseudo := when.Format("20060102150405") + "-" + hash[:12]
	if desc == "" {
		return "0.0.0-" + pseudo, when, nil
	}
	m := describeRE.FindStringSubmatch(desc)
	if m == nil {
		return "", time.Time{}, fmt.Errorf("git describe gave %q, not vX.Y.Z-N-gHASH; tag releases as vX.Y.Z or pass -version", desc)
	}
	if m[4] == "0" {
		return m[1] + "." + m[2] + "." + m[3], when, nil
	}
	patch, err := strconv.ParseUint(m[3], 10, 63)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("git describe gave %q: patch number out of range; pass -version", desc)
	}
	return fmt.Sprintf("%s.%s.%d-0.%s", m[1], m[2], patch+1, pseudo), when, nil
}

package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const testHash = "a738775f0123456789abcdef0123456789abcdef"

func TestVersionOf(t *testing.T) {
	for _, tc := range []struct {
		desc, hash, ct string
		want, err      string
	}{
		{desc: "", hash: testHash, ct: "1764920160", want: "0.0.0-20251205073600-a738775f0123"},
		{desc: "v1.2.3-0-ga738775f0123", hash: testHash, ct: "1764920160", want: "1.2.3"},
		{desc: "v1.2.3-4-ga738775f0123", hash: testHash, ct: "1764920160", want: "1.2.4-0.20251205073600-a738775f0123"},
		{desc: "v0.10.0-12-ga738775f0123", hash: testHash, ct: "0", want: "0.10.1-0.19700101000000-a738775f0123"},
		{desc: "v1.2-4-ga738775f0123", hash: testHash, ct: "1", err: "not vX.Y.Z-N-gHASH"},
		{desc: "v1.2.3-rc1-0-ga738775f0123", hash: testHash, ct: "1", err: "not vX.Y.Z-N-gHASH"},
		{desc: "v01.2.3-0-ga738775f0123", hash: testHash, ct: "1", err: "not vX.Y.Z-N-gHASH"},
		{desc: "v1.2.99999999999999999999-1-ga738775f0123", hash: testHash, ct: "1", err: "out of range"},
		{desc: "", hash: "a738775", ct: "1", err: "not a commit hash"},
		{desc: "", hash: testHash, ct: "-5", err: "not Unix seconds"},
		{desc: "", hash: testHash, ct: "yesterday", err: "not Unix seconds"},
	} {
		got, when, err := versionOf(tc.desc, tc.hash, tc.ct)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("versionOf(%q, %q) = %q, %v; want an error with %q", tc.desc, tc.ct, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("versionOf(%q, %q) = %q, %v; want %q", tc.desc, tc.ct, got, err, tc.want)
			continue
		}
		if err := checkVersion(got); err != nil {
			t.Errorf("versionOf(%q) gave %q, which -version would refuse: %v", tc.desc, got, err)
		}
		if strconv.FormatInt(when.Unix(), 10) != tc.ct {
			t.Errorf("versionOf(%q, %q): commit time %v", tc.desc, tc.ct, when)
		}
	}
}

// FuzzVersionOf: whatever git prints, versionOf returns a version that
// -version accepts, or an error; never a panic.
func FuzzVersionOf(f *testing.F) {
	f.Add("", testHash, "1764920160")
	f.Add("v1.2.3-0-ga738775f0123", testHash, "1764920160")
	f.Add("v1.2.3-4-ga738775f0123", testHash, "0")
	f.Add("v1.2.18446744073709551615-1-ga738775f0123", testHash, "1")
	f.Add("v1.2.3-4-g", "", "")
	f.Fuzz(func(t *testing.T, desc, hash, ct string) {
		v, _, err := versionOf(desc, hash, ct)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error of more than one line: %q", err)
			}
			return
		}
		if err := checkVersion(v); err != nil {
			t.Errorf("versionOf(%q, %q, %q) = %q: %v", desc, hash, ct, v, err)
		}
	})
}

func TestCheckVersion(t *testing.T) {
	for v, ok := range map[string]bool{
		"1.2.3": true, "0.0.0-20251205073600-a738775f0123": true, "1.0.0-rc.1": true,
		"v1.2.3": false, "1.2": false, "1.2.3+meta": false, "1.2.3-": false, "01.2.3": false,
		"1.2.3/../x": false, "1.2.3 ": false, "": false,
	} {
		if err := checkVersion(v); (err == nil) != ok {
			t.Errorf("checkVersion(%q) = %v, want ok=%v", v, err, ok)
		}
	}
}

func TestBuildTime(t *testing.T) {
	commit := time.Unix(1764920160, 0).UTC()
	for _, tc := range []struct {
		name   string
		env    *string
		commit time.Time
		want   time.Time
		err    string
	}{
		{name: "commit", commit: commit, want: commit},
		{name: "env wins", env: ptr("1"), commit: commit, want: time.Unix(1, 0).UTC()},
		{name: "env alone", env: ptr("1767323045"), want: time.Unix(1767323045, 0).UTC()},
		{name: "bad env", env: ptr("soon"), commit: commit, err: "not Unix seconds"},
		{name: "neither", err: "set SOURCE_DATE_EPOCH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != nil {
				t.Setenv("SOURCE_DATE_EPOCH", *tc.env)
			} else {
				t.Setenv("SOURCE_DATE_EPOCH", "")
				os.Unsetenv("SOURCE_DATE_EPOCH")
			}
			got, err := buildTime(tc.commit)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("got %v, %v; want an error with %q", got, err, tc.err)
				}
				return
			}
			if err != nil || !got.Equal(tc.want) {
				t.Errorf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func ptr(s string) *string { return &s }

func TestExecStartIsPackaged(t *testing.T) {
	for _, tc := range []struct{ unit, err string }{
		{"[Service]\nExecStart=/usr/bin/llm-agent -D -a %t/llm-agent/agent.sock\n", ""},
		{"[Service]\nExecStart=/usr/bin/llm-agent\n", ""},
		{"[Service]\nExecStart=/home/me/bin/llm-agent -D\n", "print it with --service-program /usr/bin/llm-agent"},
		{"[Service]\nExecStart=/usr/bin/llm-agent-client x\n", "not /usr/bin/llm-agent"},
		{"[Service]\nType=simple\n", "no ExecStart"},
	} {
		err := execStartIsPackaged([]byte(tc.unit))
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("execStartIsPackaged(%q) = %v, want %q", tc.unit, err, tc.err)
		}
	}
}

func TestPrepareOut(t *testing.T) {
	dir := t.TempDir()
	if err := prepareOut(filepath.Join(dir, "new", "dist")); err != nil {
		t.Errorf("a new directory: %v", err)
	}
	if err := prepareOut(filepath.Join(dir, "new", "dist")); err != nil {
		t.Errorf("an empty directory: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "new", "dist", "old.deb"), nil, 0o644)
	if err := prepareOut(filepath.Join(dir, "new", "dist")); err == nil || !strings.Contains(err.Error(), "is not empty") {
		t.Errorf("a directory with a file: %v, want a refusal", err)
	}
	if err := prepareOut(""); err == nil {
		t.Error("no directory: no error")
	}
}

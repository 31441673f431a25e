package fuzzseed

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// Bytes encodes one []byte fuzz input in the "go test fuzz v1" format.
func Bytes(b []byte) []byte { return []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)) }

// String encodes one string fuzz input.
func String(s string) []byte { return []byte(fmt.Sprintf("go test fuzz v1\nstring(%q)\n", s)) }

// Check compares the seed files of target (file name to contents) with
// testdata/fuzz/<target>/ in the package under test. With update it writes
// them instead. pkg names the package in the message that says how to
// regenerate stale files.
func Check(t testing.TB, pkg, target string, files map[string][]byte, update bool) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", target)
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		path := filepath.Join(dir, name)
		want := files[name]
		if update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is missing or stale; run: go test %s -run TestSeedCorpus -update-corpus", path, pkg)
		}
	}
}

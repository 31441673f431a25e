package main

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"debug/macho"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// The tests share one release build (several minutes on two cores); the
// reproducibility test makes a second one.
const (
	testVersion = "0.9.1"
	rootDir     = "../.."
)

var testTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

var shared struct {
	once sync.Once
	dir  string // the release directory
	err  error
}

// repo is the repository's absolute path: TestReproducible changes the
// working directory.
var repo string

func TestMain(m *testing.M) {
	var err error
	if repo, err = filepath.Abs(rootDir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if shared.dir != "" {
		os.RemoveAll(filepath.Dir(shared.dir))
	}
	os.Exit(code)
}

// release returns the shared release directory, building it on first use.
func release(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("SKIPPED in -short: builds the release for four platforms")
	}
	shared.once.Do(func() {
		parent, err := os.MkdirTemp("", "release-test-")
		if err != nil {
			shared.err = err
			return
		}
		shared.dir = filepath.Join(parent, "dist")
		shared.err = buildInto(shared.dir)
	})
	if shared.err != nil {
		t.Fatalf("release build: %v", shared.err)
	}
	return shared.dir
}

func buildInto(dir string) error {
	return Build(context.Background(), Options{Root: repo, Out: dir, Version: testVersion,
		Time: testTime, Maintainer: defaultMaintainer, Generated: allGenerated})
}

func ci() bool { return os.Getenv("CI") == "true" }

// needTool skips (fails under CI=true) when name is not installed.
func needTool(t *testing.T, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if ci() {
			t.Fatalf("%s is not installed (.ci/run installs %s)", name, pkg)
		}
		t.Skipf("SKIPPED: %s is not installed; apt-get install %s", name, pkg)
	}
}

func readSums(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestReproducible builds the release a second time, into another
// directory, from another working directory and with an environment that
// asks for other code (GOAMD64=v3, cgo, a build tag), and wants the same
// SHA256SUMS: the same bytes for every binary and package.
func TestReproducible(t *testing.T) {
	first := release(t)
	t.Setenv("GOAMD64", "v3")
	t.Setenv("CGO_ENABLED", "1")
	t.Setenv("GOFLAGS", "-tags=netgo")
	t.Setenv("TMPDIR", t.TempDir())
	t.Chdir(t.TempDir())
	second := filepath.Join(t.TempDir(), "elsewhere", "dist")
	if err := buildInto(second); err != nil {
		t.Fatalf("second build: %v", err)
	}
	a, b := readSums(t, first), readSums(t, second)
	if a != b {
		t.Errorf("two builds differ:\n--- first\n%s--- second\n%s", a, b)
	}
	for _, line := range strings.Split(strings.TrimSpace(a), "\n") {
		t.Log(line)
	}
}

// TestSums checks SHA256SUMS with sha256sum -c and that it names every
// file of the release.
func TestSums(t *testing.T) {
	dir := release(t)
	needTool(t, "sha256sum", "coreutils")
	cmd := exec.Command("sha256sum", "--strict", "-c", "SHA256SUMS")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
	var files []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() != "SHA256SUMS" {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, rel)
		}
		return err
	})
	var named []string
	for _, line := range strings.Split(strings.TrimSpace(readSums(t, dir)), "\n") {
		named = append(named, line[66:])
	}
	sort.Strings(files)
	if strings.Join(files, "\n") != strings.Join(named, "\n") {
		t.Errorf("SHA256SUMS names\n%s\nbut the release holds\n%s", strings.Join(named, "\n"), strings.Join(files, "\n"))
	}
	want := []string{"install-client.sh",
		"llm-agent-" + "0.9.1-1.x86_64.rpm", "llm-agent-0.9.1-1.aarch64.rpm",
		"llm-agent_0.9.1-1_amd64.deb", "llm-agent_0.9.1-1_arm64.deb"}
	for _, w := range want {
		if !contains(files, w) {
			t.Errorf("the release has no %s: %v", w, files)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestBinaries checks each binary's platform, that it is static and that it
// was built as a release is: no cgo, -trimpath, no VCS stamp, no build id.
func TestBinaries(t *testing.T) {
	dir := release(t)
	for _, tg := range targets {
		for _, c := range commands {
			t.Run(tg.goos+"_"+tg.goarch+"/"+c, func(t *testing.T) {
				p := filepath.Join(dir, binDir(testVersion, tg), c)
				st, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if st.Mode().Perm()&0o111 == 0 {
					t.Errorf("mode %v: not executable", st.Mode())
				}
				bi, err := buildinfo.ReadFile(p)
				if err != nil {
					t.Fatalf("build info: %v", err)
				}
				settings := map[string]string{}
				for _, s := range bi.Settings {
					settings[s.Key] = s.Value
				}
				for k, want := range map[string]string{
					// -trimpath keeps -ldflags out of the build info; checkELF
					// looks for what -s -w -buildid= remove.
					"GOOS": tg.goos, "GOARCH": tg.goarch, "CGO_ENABLED": "0", "-trimpath": "true",
					"vcs.revision": "",
				} {
					if settings[k] != want {
						t.Errorf("build setting %s = %q, want %q", k, settings[k], want)
					}
				}
				if got := bi.Path; got != "github.com/llm-agent/llm-agent/cmd/"+c {
					t.Errorf("main package %q", got)
				}
				switch tg.goos {
				case "linux":
					checkELF(t, p, tg.goarch)
				case "darwin":
					checkMachO(t, p, tg.goarch)
				}
			})
		}
	}
}

func checkELF(t *testing.T, p, goarch string) {
	t.Helper()
	f, err := elf.Open(p)
	if err != nil {
		t.Fatalf("not ELF: %v", err)
	}
	defer f.Close()
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[goarch]
	if f.Machine != want {
		t.Errorf("ELF machine %v, want %v", f.Machine, want)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP || prog.Type == elf.PT_DYNAMIC {
			t.Errorf("has %v: not static", prog.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("needs shared libraries %v", libs)
	}
	for _, sec := range f.Sections {
		if sec.Name == ".symtab" || strings.HasPrefix(sec.Name, ".debug_") || strings.HasPrefix(sec.Name, ".zdebug_") {
			t.Errorf("has section %s: not stripped (-s -w)", sec.Name)
		}
	}
	if f.Section(".note.go.buildid") != nil {
		if data, _ := f.Section(".note.go.buildid").Data(); len(bytes.Trim(data[16:], "\x00")) > 0 {
			t.Errorf("has a Go build id: %q", data[16:])
		}
	}
}

func checkMachO(t *testing.T, p, goarch string) {
	t.Helper()
	f, err := macho.Open(p)
	if err != nil {
		t.Fatalf("not Mach-O: %v", err)
	}
	defer f.Close()
	want := map[string]macho.Cpu{"amd64": macho.CpuAmd64, "arm64": macho.CpuArm64}[goarch]
	if f.Cpu != want {
		t.Errorf("Mach-O CPU %v, want %v", f.Cpu, want)
	}
	if f.Type != macho.TypeExec {
		t.Errorf("Mach-O type %v, want an executable", f.Type)
	}
	// Go links darwin binaries against the system's libraries by design
	// (macOS has no static option); anything more would mean cgo.
	libs, _ := f.ImportedLibraries()
	for _, l := range libs {
		switch {
		case strings.HasPrefix(l, "/usr/lib/libSystem."), strings.HasPrefix(l, "/usr/lib/libresolv."),
			strings.HasPrefix(l, "/System/Library/Frameworks/CoreFoundation.framework/"),
			strings.HasPrefix(l, "/System/Library/Frameworks/Security.framework/"):
		default:
			t.Errorf("links %s", l)
		}
	}
}

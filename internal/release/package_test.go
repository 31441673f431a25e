package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
)

// wantFiles is what every package installs: path -> "ls -l"-style mode.
func wantFiles(gen []generated) map[string]string {
	m := map[string]string{}
	for _, c := range commands {
		m[binPrefix+c] = "-rwxr-xr-x"
		m[manDir+c+".1.gz"] = "-rw-r--r--"
	}
	for _, g := range gen {
		for _, d := range g.dsts {
			m[d] = "-rw-r--r--"
		}
	}
	return m
}

func sortedKeys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// compareFiles reports files of want missing from got or with another
// mode, and files in got that want does not have.
func compareFiles(t *testing.T, got, want map[string]string) {
	t.Helper()
	for _, p := range sortedKeys(want) {
		if got[p] != want[p] {
			t.Errorf("%s: mode %q, want %q", p, got[p], want[p])
		}
	}
	for _, p := range sortedKeys(got) {
		if _, ok := want[p]; !ok {
			t.Errorf("unexpected file %s", p)
		}
	}
}

func debPath(dir, goarch string) string {
	return filepath.Join(dir, "llm-agent_"+testVersion+"-1_"+goarch+".deb")
}

func rpmPath(dir, goarch string) string {
	return filepath.Join(dir, "llm-agent-"+testVersion+"-1."+map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[goarch]+".rpm")
}

func output(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "TZ=UTC", "LC_ALL=C")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr)
	}
	return string(out)
}

// TestPackagedBytes unpacks each .deb (dpkg-deb -x, no root needed) and
// compares what it installs with its sources: the binaries of the
// release, the man pages, and what the host's binaries print.
func TestPackagedBytes(t *testing.T) {
	dir := release(t)
	needTool(t, "dpkg-deb", "dpkg")
	hostBin := filepath.Join(dir, binDir(testVersion, target{runtime.GOOS, runtime.GOARCH}))
	for _, arch := range []string{"amd64", "arm64"} {
		root := t.TempDir()
		output(t, "dpkg-deb", "-x", debPath(dir, arch), root)
		read := func(t *testing.T, p string) []byte {
			t.Helper()
			b, err := os.ReadFile(filepath.Join(root, p))
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		for _, c := range commands {
			t.Run(arch+"/"+c, func(t *testing.T) {
				bin, err := os.ReadFile(filepath.Join(dir, binDir(testVersion, target{"linux", arch}), c))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(read(t, binPrefix+c), bin) {
					t.Errorf("%s%s is not the release's linux/%s binary", binPrefix, c, arch)
				}
				zr, err := gzip.NewReader(bytes.NewReader(read(t, manDir+c+".1.gz")))
				if err != nil {
					t.Fatal(err)
				}
				page, err := io.ReadAll(zr)
				if err != nil {
					t.Fatal(err)
				}
				src, err := os.ReadFile(filepath.Join(repo, "man", c+".1"))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(page, src) {
					t.Errorf("%s%s.1.gz is not man/%s.1", manDir, c, c)
				}
			})
		}
		for _, g := range allGenerated {
			t.Run(arch+"/"+strings.Join(g.args, "_"), func(t *testing.T) {
				cmd := exec.Command(filepath.Join(hostBin, g.cmd), g.args...)
				printed, err := cmd.Output()
				if err != nil {
					t.Fatalf("%s: %v", g.argv(), err)
				}
				for _, d := range g.dsts {
					if !bytes.Equal(read(t, d), printed) {
						t.Errorf("%s is not what %s prints", d, g.argv())
					}
				}
			})
		}
	}
}

// TestPackageContents lists each package with its own tool (dpkg-deb -c,
// rpm -qp): exactly the expected files, owned by root, with their modes,
// and the package's name, version and architecture.
func TestPackageContents(t *testing.T) {
	dir := release(t)
	want := wantFiles(allGenerated)
	for _, tc := range []struct {
		format, tool string
		path         func(dir, goarch string) string
		list         func(t *testing.T, p string) map[string]string
		header       func(t *testing.T, p, goarch string)
	}{
		{"deb", "dpkg-deb", debPath, debFiles, debHeader},
		{"rpm", "rpm", rpmPath, rpmFiles, rpmHeader},
	} {
		for _, arch := range []string{"amd64", "arm64"} {
			t.Run(tc.format+"/"+arch, func(t *testing.T) {
				needTool(t, tc.tool, tc.tool)
				p := tc.path(dir, arch)
				compareFiles(t, tc.list(t, p), want)
				tc.header(t, p, arch)
			})
		}
	}
}

// debFiles is dpkg-deb -c's list of the regular files in deb, after
// checking that every entry is root's and has the release's time.
func debFiles(t *testing.T, deb string) map[string]string {
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(output(t, "dpkg-deb", "-c", deb)), "\n") {
		f := strings.Fields(line)
		if len(f) != 6 {
			t.Fatalf("dpkg-deb -c line %q", line)
		}
		mode, owner, day, clock, name := f[0], f[1], f[3], f[4], strings.TrimPrefix(f[5], ".")
		if owner != "root/root" {
			t.Errorf("%s owned by %s", name, owner)
		}
		if day+" "+clock != testTime.Format("2006-01-02 15:04") {
			t.Errorf("%s has time %s %s, want the release's %v", name, day, clock, testTime)
		}
		if mode[0] != 'd' {
			got[name] = mode
		}
	}
	return got
}

func debHeader(t *testing.T, deb, goarch string) {
	for field, w := range map[string]string{"Package": pkgName, "Version": testVersion + "-1", "Architecture": goarch} {
		if v := strings.TrimSpace(output(t, "dpkg-deb", "-f", deb, field)); v != w {
			t.Errorf("control field %s = %q, want %q", field, v, w)
		}
	}
}

// rpmFiles is rpm -qp's list of the regular files in the package, after
// checking that every entry is root's and that rpm -qlp, what a user
// would run, lists them.
func rpmFiles(t *testing.T, p string) map[string]string {
	got := map[string]string{}
	list := output(t, "rpm", "-qp", "--qf", `[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES}\n]`, p)
	for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			t.Fatalf("rpm -qp line %q", line)
		}
		if f[1] != "root:root" {
			t.Errorf("%s owned by %s", f[2], f[1])
		}
		if f[0][0] != 'd' {
			got[f[2]] = f[0]
		}
	}
	ql := output(t, "rpm", "-qlp", p)
	for k := range got {
		if !strings.Contains(ql, k+"\n") {
			t.Errorf("rpm -qlp does not list %s:\n%s", k, ql)
		}
	}
	return got
}

func rpmHeader(t *testing.T, p, goarch string) {
	wantArch := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[goarch]
	if a := output(t, "rpm", "-qp", "--qf", "%{NAME} %{VERSION} %{RELEASE} %{ARCH}", p); a != pkgName+" "+testVersion+" 1 "+wantArch {
		t.Errorf("rpm header: %q", a)
	}
}

// TestGeneratedFiles runs writePackages with stand-in binaries that print
// the completions and units, so the way of generated files into the
// packages is tested before the real commands exist: every file at each
// of its places, a unit that runs another llm-agent refused, a command that
// fails named.
func TestGeneratedFiles(t *testing.T) {
	needTool(t, "dpkg-deb", "dpkg")
	const good = `#!/bin/sh
case "$*" in
"completion "*) echo "# $2 completion of both" ;;
"--print-service systemd "*) printf '[Service]\nExecStart=/usr/bin/llm-agent -D\n' ;;
"--print-service systemd-socket "*) printf '[Socket]\nListenStream=%%t/llm-agent/agent.sock\n' ;;
*) echo "unknown $*" >&2; exit 1 ;;
esac
`
	for _, tc := range []struct{ name, script, err string }{
		{"printed", good, ""},
		{"elsewhere", strings.Replace(good, "/usr/bin/llm-agent -D", "/home/me/llm-agent -D", 1), "print it with --service-program /usr/bin/llm-agent"},
		{"missing", strings.Replace(good, `"completion "*)`, `"completion x")`, 1), `"llm-agent-client completion bash"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			o := Options{Root: repo, Out: filepath.Join(tmp, "dist"), Version: testVersion, Time: testTime,
				Maintainer: defaultMaintainer, Generated: allGenerated}
			host := filepath.Join(tmp, "host")
			for _, dir := range []string{host, filepath.Join(o.Out, binDir(testVersion, target{"linux", "amd64"})), filepath.Join(o.Out, binDir(testVersion, target{"linux", "arm64"}))} {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				for _, c := range commands {
					if err := os.WriteFile(filepath.Join(dir, c), []byte(tc.script), 0o755); err != nil {
						t.Fatal(err)
					}
				}
			}
			stage := filepath.Join(tmp, "stage")
			os.Mkdir(stage, 0o700)
			err := writePackages(context.Background(), o, stage, host)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error with %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			root := t.TempDir()
			output(t, "dpkg-deb", "-x", debPath(o.Out, "arm64"), root)
			for _, g := range allGenerated {
				want := output(t, filepath.Join(host, g.cmd), g.args...)
				for _, d := range g.dsts {
					if got, err := os.ReadFile(filepath.Join(root, d)); err != nil || string(got) != want {
						t.Errorf("%s: %q, %v; want what %s prints, %q", d, got, err, g.argv(), want)
					}
				}
			}
		})
	}
}

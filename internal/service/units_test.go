package service

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// ci reports whether a missing tool must fail the test rather than skip.
func ci() bool { return os.Getenv("CI") == "true" }

// need skips (or, in CI, fails) the test when tool is not installed.
func need(t *testing.T, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if ci() {
			t.Fatalf("%s is not installed (apt-get install %s)", tool, pkg)
		}
		t.Skipf("SKIPPED: %s is not installed; apt-get install %s", tool, pkg)
	}
	return p
}

// VerifyUnits runs systemd-analyze verify --user on the .service and
// .socket texts and fails t on any complaint: verify exits 0 on many of
// them ("ignoring"), so its output must be empty too. It needs no user
// manager, only XDG_RUNTIME_DIR (here a private temp dir, as for root in
// CI); man:llm-agent(1) is looked up in the repository's man/ through a
// MANPATH of our own.
func VerifyUnits(t *testing.T, serviceText, socketText string) {
	t.Helper()
	if out, err := verify(t, serviceText, socketText); err != nil || out != "" {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// verify runs systemd-analyze verify --user on the units; see VerifyUnits.
func verify(t *testing.T, serviceText, socketText string) (string, error) {
	t.Helper()
	analyze := need(t, "systemd-analyze", "systemd")
	dir := t.TempDir()
	units := filepath.Join(dir, "units")
	man1 := filepath.Join(dir, "man", "man1")
	runtime := filepath.Join(dir, "run")
	for _, d := range []string{units, man1, runtime} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	page, err := os.ReadFile(filepath.Join(repoRoot, "man", "llm-agent.1"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(man1, "llm-agent.1"), page, 0o644)
	svc, sock := filepath.Join(units, ServiceUnit), filepath.Join(units, SocketUnit)
	os.WriteFile(svc, []byte(serviceText), 0o644)
	os.WriteFile(sock, []byte(socketText), 0o644)
	args := []string{"verify", "--user"}
	if _, err := exec.LookPath("man"); err != nil {
		t.Log("man is not installed: Documentation= is not checked (apt-get install man-db)")
		args = append(args, "--man=no")
	}
	cmd := exec.Command(analyze, append(args, sock, svc)...)
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+runtime, "MANPATH="+filepath.Join(dir, "man"), "SYSTEMD_LOG_COLOR=0")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// repoRoot is the repository, two levels up from this package.
const repoRoot = "../.."

func TestSystemdVerify(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	svc, err := Systemd(exe)
	if err != nil {
		t.Fatal(err)
	}
	VerifyUnits(t, svc, SystemdSocket())
}

// TestSystemdVerifyOddPath: a program path with blanks, %, $ and ;
// comes out as one ExecStart word naming that very file (verify checks
// that it exists and is executable).
func TestSystemdVerifyOddPath(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), `odd dir %t $HOME;`)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	odd := filepath.Join(dir, "llm-agent")
	if err := os.Symlink(exe, odd); err != nil {
		t.Fatal(err)
	}
	svc, err := Systemd(odd)
	if err != nil {
		t.Fatal(err)
	}
	VerifyUnits(t, svc, SystemdSocket())
	// And a missing program is caught, so the check above means something.
	os.Remove(odd)
	if out, err := verify(t, svc, SystemdSocket()); err == nil || !strings.Contains(out, "odd dir") {
		t.Errorf("verify does not notice a missing program: %v %q", err, out)
	}
}

func TestExecArg(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/usr/bin/llm-agent", "/usr/bin/llm-agent"},
		{"/opt/100%/llm-agent", "/opt/100%%/llm-agent"},
		{"/opt/$HOME/llm-agent", "/opt/$HOME/llm-agent"},
		{"/Users/a b/llm-agent", `"/Users/a b/llm-agent"`},
	}
	for _, tt := range tests {
		if got := execArg(tt.in); got != tt.want {
			t.Errorf("execArg(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCheckProgram(t *testing.T) {
	for _, q := range []string{`/opt/"q"/llm-agent`, `/opt/'q'/llm-agent`, `/opt/b\/llm-agent`} {
		if _, err := Systemd(q); err == nil {
			t.Errorf("Systemd(%q) accepted: systemd refuses quotes and backslashes there", q)
		}
	}
	for _, bad := range []string{"llm-agent", "bin/llm-agent", "/usr/bin/llm\nagent", "/usr/bin/llm\x00agent", ""} {
		if err := CheckProgram(bad); err == nil {
			t.Errorf("CheckProgram(%q) accepted", bad)
		}
		if _, err := Systemd(bad); err == nil {
			t.Errorf("Systemd(%q) accepted", bad)
		}
		if _, err := Launchd(bad, "/Users/me"); err == nil {
			t.Errorf("Launchd(%q) accepted", bad)
		}
	}
}

// readPlist parses a plist with python3's plistlib (the reader closest to
// macOS's own that runs here) and returns it as JSON-decoded values.
func readPlist(t *testing.T, text string) map[string]any {
	t.Helper()
	py := need(t, "python3", "python3")
	path := filepath.Join(t.TempDir(), Label+".plist")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if plutil, err := exec.LookPath("plutil"); err == nil {
		if out, err := exec.Command(plutil, "-lint", path).CombinedOutput(); err != nil {
			t.Fatalf("plutil -lint: %v\n%s", err, out)
		}
	}
	const script = `import json, plistlib, sys
with open(sys.argv[1], "rb") as f:
    print(json.dumps(plistlib.load(f, fmt=plistlib.FMT_XML)))`
	out, err := exec.Command(py, "-c", script, path).CombinedOutput()
	if err != nil {
		t.Fatalf("plistlib: %v\n%s", err, out)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("plistlib's JSON: %v\n%s", err, out)
	}
	return m
}

func TestLaunchdPlist(t *testing.T) {
	for _, tt := range []struct{ program, home string }{
		{"/opt/homebrew/bin/llm-agent", "/Users/me"},
		{"/Users/a & <b>/bin/llm-agent", "/Users/a & <b>"},
	} {
		text, err := Launchd(tt.program, tt.home)
		if err != nil {
			t.Fatal(err)
		}
		m := readPlist(t, text)
		if m["Label"] != Label || m["RunAtLoad"] != true {
			t.Errorf("Label %v RunAtLoad %v", m["Label"], m["RunAtLoad"])
		}
		var args []string
		for _, a := range m["ProgramArguments"].([]any) {
			args = append(args, a.(string))
		}
		want := []string{tt.program, "-D", "-a", filepath.Join(tt.home, ".llm-agent", "agent.sock")}
		if !slices.Equal(args, want) {
			t.Errorf("ProgramArguments %q, want %q", args, want)
		}
		if ka, ok := m["KeepAlive"].(map[string]any); !ok || ka["SuccessfulExit"] != false {
			t.Errorf("KeepAlive %v, want a restart on failure only", m["KeepAlive"])
		}
		if m["StandardErrorPath"] != filepath.Join(tt.home, "Library", "Logs", "llm-agent.log") {
			t.Errorf("StandardErrorPath %v", m["StandardErrorPath"])
		}
	}
	if _, err := Launchd("/usr/local/bin/llm-agent", ""); err == nil {
		t.Error("Launchd without a home: no error")
	}
}

func TestPrintKinds(t *testing.T) {
	for _, kind := range Kinds {
		if text, err := Print(kind, PackagedProgram, "/Users/me"); err != nil || text == "" {
			t.Errorf("Print(%s): %v", kind, err)
		}
	}
	if _, err := Print("upstart", PackagedProgram, "/Users/me"); err == nil {
		t.Error("Print(upstart): no error")
	}
	svc, _ := Print(KindSystemd, PackagedProgram, "")
	if !strings.Contains(svc, "\nExecStart=/usr/bin/llm-agent -D -a %t/llm-agent/agent.sock\n") {
		t.Errorf("packaged ExecStart:\n%s", svc)
	}
}

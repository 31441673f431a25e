package service

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Target says for whom and where Install writes.
type Target struct {
	OS         string // runtime.GOOS: "linux" (systemd) or "darwin" (launchd)
	Program    string // the llm-agent the units run (absolute)
	Home       string // the user's home directory
	ConfigHome string // $XDG_CONFIG_HOME, or "" for Home/.config
	UID        int    // for launchctl's gui/UID domain
}

// File is one file Install writes.
type File struct {
	Path string
	Text string
}

// Files are the files for t's OS, at their paths.
func Files(t Target) ([]File, error) {
	if !filepath.IsAbs(t.Home) {
		return nil, errors.New("cannot find the home directory; set HOME")
	}
	switch t.OS {
	case "linux":
		dir := unitDir(t)
		svc, err := Systemd(t.Program)
		if err != nil {
			return nil, err
		}
		return []File{
			{filepath.Join(dir, ServiceUnit), svc},
			{filepath.Join(dir, SocketUnit), SystemdSocket()},
		}, nil
	case "darwin":
		plist, err := Launchd(t.Program, t.Home)
		if err != nil {
			return nil, err
		}
		return []File{{plistPath(t), plist}}, nil
	}
	return nil, fmt.Errorf("--install-service knows systemd (Linux) and launchd (macOS), not %s; see --print-service", t.OS)
}

// unitDir is the systemd user unit directory: $XDG_CONFIG_HOME/systemd/user,
// or ~/.config/systemd/user (a relative XDG_CONFIG_HOME is ignored, as the
// XDG spec says).
func unitDir(t Target) string {
	base := t.ConfigHome
	if !filepath.IsAbs(base) {
		base = filepath.Join(t.Home, ".config")
	}
	return filepath.Join(base, "systemd", "user")
}

// unitBase is the directory above the one Install writes in that is the
// user's own to keep private: the configuration directory for systemd,
// ~/Library for launchd.
func unitBase(t Target) string {
	if t.OS == "darwin" {
		return filepath.Join(t.Home, "Library")
	}
	return filepath.Dir(filepath.Dir(unitDir(t)))
}

func plistPath(t Target) string {
	return filepath.Join(t.Home, "Library", "LaunchAgents", Label+".plist")
}

// Result is what Install did.
type Result struct {
	Wrote     []string // files written
	Unchanged []string // files that already held the same text
	Enable    []string // the commands that enable the service
	Shell     string   // the line that points a login shell at the socket
}

// Install writes t's files. An existing file with other contents is
// replaced only with force; then nothing is written at all. On macOS it
// also makes the socket directory (0700): launchd does not.
func Install(t Target, force bool) (Result, error) {
	files, err := Files(t)
	if err != nil {
		return Result{}, err
	}
	if err := checkProgramOwner(t.Program); err != nil {
		return Result{}, err
	}
	dirs := filepath.Dir(files[0].Path)
	base := unitBase(t)
	if err := privateTree(base, dirs); err != nil {
		return Result{}, err
	}
	var r Result
	var todo []File
	for _, f := range files {
		// Only a regular file is read: a FIFO or a device planted there
		// would block or never end.
		if fi, err := os.Stat(f.Path); err == nil && !fi.Mode().IsRegular() {
			if !force {
				return Result{}, fmt.Errorf("%s exists and is not a regular file (%v); remove it, or add --force to replace it", f.Path, fi.Mode().Type())
			}
			todo = append(todo, f)
			continue
		}
		old, err := os.ReadFile(f.Path)
		switch {
		case err == nil && bytes.Equal(old, []byte(f.Text)):
			r.Unchanged = append(r.Unchanged, f.Path)
			continue
		case err == nil && !force:
			return Result{}, fmt.Errorf("%s exists and differs from what llm-agent writes; compare it with --print-service, and add --force to replace it", f.Path)
		case err != nil && !errors.Is(err, os.ErrNotExist):
			return Result{}, err
		}
		todo = append(todo, f)
	}
	if t.OS == "darwin" {
		if err := privateDir(filepath.Dir(LaunchdSock(t.Home))); err != nil {
			return Result{}, err
		}
	}
	for _, f := range todo {
		if err := writeFile(f); err != nil {
			return Result{}, err
		}
		r.Wrote = append(r.Wrote, f.Path)
	}
	switch t.OS {
	case "linux":
		r.Enable = []string{"systemctl --user daemon-reload", "systemctl --user enable --now " + SocketUnit}
		r.Shell = `export LLM_AUTH_SOCK="` + ShellSystemdSock + `"`
	case "darwin":
		r.Enable = []string{"launchctl bootstrap gui/" + strconv.Itoa(t.UID) + " " + shellQuote(plistPath(t))}
		r.Shell = "export LLM_AUTH_SOCK=" + shellQuote(LaunchdSock(t.Home))
	}
	return r, nil
}

// privateTree checks dir and each directory above it up to base, those
// that exist: who else can write one can replace the unit in it, and with
// it what runs at every login.
func privateTree(base, dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d) // a symlink to a directory counts as that directory
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if err == nil {
			if why := othersCanReplace(fi); why != "" {
				return fmt.Errorf("unit directory %s %s, who could then replace the units; fix its owner or mode (chmod 755)", d, why)
			}
		}
		if d == base || d == filepath.Dir(d) {
			return nil
		}
	}
}

// checkProgramOwner checks that no one but this user and root can replace
// the llm-agent the units run, at every login: not the file, nor any
// directory on its path, as written and with its symlinks resolved.
func checkProgramOwner(program string) error {
	paths := []string{program}
	if real, err := filepath.EvalSymlinks(program); err == nil && real != program {
		paths = append(paths, real)
	}
	for _, p := range paths {
		for d := p; ; d = filepath.Dir(d) {
			fi, err := os.Lstat(d)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			if err == nil {
				if why := othersCanReplace(fi); why != "" {
					return fmt.Errorf("%s %s, who could then replace the llm-agent your units run (%s); install llm-agent where only you or root can write (~/.local/bin, /usr/local/bin), or name such a copy with --service-program", d, why, program)
				}
			}
			if d == filepath.Dir(d) {
				break
			}
		}
	}
	return nil
}

// othersCanReplace says why users other than this one and root could
// change fi or what is in it, or "". A symlink's own mode means nothing; a
// sticky directory protects what others do not own. Group write is let be:
// user private groups (umask 002) and admin groups (Homebrew's
// /opt/homebrew) grant it without granting it to others.
func othersCanReplace(fi os.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "has no owner this system reports"
	}
	uid := int(st.Uid)
	if uid != os.Getuid() && uid != 0 {
		return fmt.Sprintf("belongs to uid %d", uid)
	}
	mode := fi.Mode()
	if mode&os.ModeSymlink != 0 || mode.IsDir() && mode&os.ModeSticky != 0 {
		return ""
	}
	if mode.Perm()&0o002 != 0 {
		return fmt.Sprintf("is writable by others (mode %04o)", mode.Perm())
	}
	return ""
}

// privateDir makes dir with mode 0700, or checks that the one there is a
// directory group and others cannot write.
func privateDir(dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() || fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("socket directory %s is not a directory private to you (mode %v); chmod 700 it", dir, fi.Mode())
	}
	return nil
}

// writeFile writes f through a temporary file renamed into place, so a
// reader never sees half a unit; mode 0644, as unit files are.
func writeFile(f File) error {
	dir := filepath.Dir(f.Path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(f.Path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(f.Text); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", f.Path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", f.Path, err)
	}
	if err := os.Rename(tmp.Name(), f.Path); err != nil {
		return fmt.Errorf("writing %s: %w", f.Path, err)
	}
	return nil
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '/' || r == '.' || r == '_' || r == '-' || r == '+' || r == '@') {
			return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	return s
}

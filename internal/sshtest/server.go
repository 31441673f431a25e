package sshtest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

const (
	// privsepDir is sshd's compiled-in privilege separation directory
	// (Debian: /run/sshd). Usually systemd's RuntimeDirectory creates it;
	// without systemd nobody does.
	privsepDir = "/run/sshd"

	readyTimeout = 10 * time.Second
	stopTimeout  = 10 * time.Second
	bindAttempts = 5
)

// hostNameRE is what Options.Name may look like: usable unquoted as an ssh
// Host pattern, HostKeyAlias and known_hosts name.
var hostNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// newerSSHDOptions are sshd_config lines for options that newer OpenSSH
// releases have and 9.2 lacks; each is used only if this sshd accepts it.
// PerSourcePenalties (9.8+) would otherwise throttle 127.0.0.1, the source
// of every test connection, after a few failed or dropped connections.
func newerSSHDOptions() []string {
	return []string{"PerSourcePenalties no"}
}

// errBind marks a start failure caused by the port being taken, which is
// worth retrying with another port.
var errBind = errors.New("sshd could not bind its port")

// Options configures Start.
type Options struct {
	// Name is the host alias, e.g. "hostA". It is the Host in the generated
	// ssh configs, the HostKeyAlias and the name in known_hosts, so it
	// should be unique among the servers of one test. Default "sshtest"
	// followed by the port.
	Name string
	// ExtraConfig holds extra sshd_config lines. In sshd_config the first
	// value given for an option wins, so lines before the first "Match"
	// are put in front of the harness's defaults and override them; a
	// "Match" line and everything after it goes at the end.
	ExtraConfig []string
}

// Server is a running sshd. Its exported fields must not be changed.
type Server struct {
	Name    string
	Addr    string // "127.0.0.1:PORT"
	Port    int
	HostKey ssh.PublicKey // the server's ed25519 host key
	Dir     string        // temp dir with sshd_config, host key, log and client files
	LogPath string        // sshd's log (LogLevel DEBUG1), handy when a test fails

	t          testing.TB // the test that started the server; owns its lifetime
	sshPath    string
	configPath string
	knownHosts string

	proc *sshdProc // the current (last started) sshd

	mu            sync.Mutex
	clientConfigs map[string]string // user name -> laptop-side ssh_config
}

// sshdProc is one started sshd process.
type sshdProc struct {
	cmd     *exec.Cmd
	exited  chan struct{} // closed when sshd has exited
	waitErr error         // sshd's exit status, valid once exited is closed
}

// Start starts sshd on 127.0.0.1 with a free port and a fresh ed25519 host
// key and waits until it accepts connections; see the package
// documentation for its configuration. t.Cleanup stops it (SIGTERM, then
// SIGKILL after 10 s) and removes its files.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	RequireRoot(t)
	if opts.Name != "" && !hostNameRE.MatchString(opts.Name) {
		t.Fatalf("sshtest: bad server name %q: want letters, digits, '.', '_', '-'", opts.Name)
	}
	sshdPath, err := lookPath("sshd", "/usr/sbin/sshd")
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	sshPath, err := lookPath("ssh", "/usr/bin/ssh")
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	if err := ensurePrivsepDir(); err != nil {
		t.Fatalf("sshtest: %v", err)
	}

	dir := t.TempDir()
	if err := checkConfigPath(dir); err != nil {
		t.Fatalf("sshtest: temp dir: %v", err)
	}
	s := &Server{
		Name:          opts.Name,
		Dir:           dir,
		LogPath:       filepath.Join(dir, "sshd.log"),
		t:             t,
		sshPath:       sshPath,
		configPath:    filepath.Join(dir, "sshd_config"),
		knownHosts:    filepath.Join(dir, "known_hosts"),
		clientConfigs: make(map[string]string),
	}

	// sshd refuses host keys that are not root-owned 0600; t.TempDir is
	// root-owned 0700 and WriteFile creates the file as root.
	hostKeyPath := filepath.Join(dir, "ssh_host_ed25519_key")
	priv, pub, err := newEd25519("sshtest host key")
	if err != nil {
		t.Fatalf("sshtest: host key: %v", err)
	}
	if err := os.WriteFile(hostKeyPath, priv, 0o600); err != nil {
		t.Fatalf("sshtest: write host key: %v", err)
	}
	if err := os.WriteFile(hostKeyPath+".pub", ssh.MarshalAuthorizedKey(pub), 0o644); err != nil {
		t.Fatalf("sshtest: write host public key: %v", err)
	}
	s.HostKey = pub

	var optional []string
	for _, line := range newerSSHDOptions() {
		if sshdAccepts(sshdPath, line) {
			optional = append(optional, line)
		}
	}

	// The free port can be taken by someone else between our probe and
	// sshd's bind, so retry with another one.
	for attempt := 1; ; attempt++ {
		s.Port, err = freePort()
		if err != nil {
			t.Fatalf("sshtest: %v", err)
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))
		cfg := s.sshdConfig(hostKeyPath, optional, opts.ExtraConfig)
		if err := os.WriteFile(s.configPath, []byte(cfg), 0o600); err != nil {
			t.Fatalf("sshtest: write sshd_config: %v", err)
		}
		// sshd -t reports config and host key problems precisely, where a
		// failed start would only leave them in the log.
		if out, err := exec.Command(sshdPath, "-t", "-f", s.configPath).CombinedOutput(); err != nil {
			t.Fatalf("sshtest: sshd -t rejected %s: %v\n%s\n--- config ---\n%s", s.configPath, err, out, cfg)
		}
		err = s.launch(sshdPath)
		if err == nil {
			break
		}
		if errors.Is(err, errBind) && attempt < bindAttempts {
			t.Logf("sshtest: port %d was taken, retrying: %v", s.Port, err)
			continue
		}
		t.Fatalf("sshtest: %v\n--- tail of %s ---\n%s", err, s.LogPath, s.LogTail(40))
	}
	t.Cleanup(s.stop)

	if s.Name == "" {
		s.Name = "sshtest" + strconv.Itoa(s.Port)
	}
	if err := os.WriteFile(s.knownHosts, []byte(s.KnownHostsLine()+"\n"), 0o644); err != nil {
		t.Fatalf("sshtest: write known_hosts: %v", err)
	}
	t.Logf("sshtest: sshd %q listening on %s (log %s)", s.Name, s.Addr, s.LogPath)
	return s
}

// sshdConfig renders the server's sshd_config.
func (s *Server) sshdConfig(hostKeyPath string, optional, extra []string) string {
	pre, post := extra, []string(nil)
	for i, line := range extra {
		if f := strings.Fields(line); len(f) > 0 && strings.EqualFold(f[0], "Match") {
			pre, post = extra[:i], extra[i:]
			break
		}
	}
	lines := []string{"# Generated by sshtest."}
	lines = append(lines, pre...)
	lines = append(lines,
		"ListenAddress 127.0.0.1:"+strconv.Itoa(s.Port),
		"AddressFamily inet",
		"HostKey "+quoteConfig(hostKeyPath),
		"PidFile none",
		"LogLevel DEBUG1",
		"UsePAM yes",
		"PermitRootLogin no",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"AuthenticationMethods publickey",
		"AuthorizedKeysFile .ssh/authorized_keys",
		"StrictModes yes",
		"AllowAgentForwarding yes",
		"AllowStreamLocalForwarding yes",
		"AllowTcpForwarding yes",
		"StreamLocalBindUnlink no",
		"X11Forwarding no",
		"PermitUserEnvironment no",
		"UseDNS no",
		"PrintMotd no",
		"PrintLastLog no",
		"Subsystem sftp internal-sftp",
	)
	lines = append(lines, optional...)
	lines = append(lines, post...)
	return strings.Join(lines, "\n") + "\n"
}

// launch starts sshd and waits until it is ready. On error sshd is not
// running.
func (s *Server) launch(sshdPath string) error {
	logf, err := os.OpenFile(s.LogPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create sshd log: %w", err)
	}
	defer logf.Close() // sshd has its own descriptor

	// -D: stay in the foreground so we can wait for it; -e: log to stderr,
	// which is the log file. An *os.File (not a pipe) is handed over as is,
	// so session processes that inherit it cannot make Wait hang.
	cmd := exec.Command(sshdPath, "-D", "-e", "-f", s.configPath)
	cmd.Stdout = logf
	cmd.Stderr = logf
	// Do not leave sshd behind if the test binary dies without cleanup.
	cmd.SysProcAttr = dieWithParent()

	p := &sshdProc{cmd: cmd, exited: make(chan struct{})}
	s.proc = p
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the forking *thread* exits. Keep this
		// goroutine on its thread for sshd's whole life so the runtime
		// cannot retire that thread under it.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start %s: %w", sshdPath, err)
	}
	if err := s.waitReady(readyTimeout); err != nil {
		s.terminate()
		return err
	}
	return nil
}

// waitReady waits until sshd has logged that it listens on our port and a
// connection gets an SSH banner. Both are needed: the banner alone could
// come from another server that grabbed the port.
func (s *Server) waitReady(timeout time.Duration) error {
	listening := fmt.Sprintf("Server listening on 127.0.0.1 port %d.", s.Port)
	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		select {
		case <-s.proc.exited:
			log, _ := os.ReadFile(s.LogPath)
			err := fmt.Errorf("sshd on port %d exited during startup (%v)", s.Port, s.proc.waitErr)
			if strings.Contains(string(log), "Address already in use") ||
				strings.Contains(string(log), "Cannot bind any address") {
				return fmt.Errorf("%w: %w", errBind, err)
			}
			return err
		default:
		}
		if log, err := os.ReadFile(s.LogPath); err == nil && strings.Contains(string(log), listening) {
			if lastErr = readBanner(s.Addr); lastErr == nil {
				return nil
			}
		} else {
			lastErr = fmt.Errorf("sshd has not logged %q yet", listening)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sshd on %s not ready after %v: %w", s.Addr, timeout, lastErr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readBanner connects to addr and checks that it sends an SSH-2.0 banner.
func readBanner(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return fmt.Errorf("set deadline: %w", err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read banner from %s: %w", addr, err)
	}
	if !strings.HasPrefix(line, "SSH-2.0-") {
		return fmt.Errorf("unexpected banner from %s: %q", addr, strings.TrimSpace(line))
	}
	return nil
}

// stop is the Cleanup of Start.
func (s *Server) stop() {
	select {
	case <-s.proc.exited:
		// Nobody but us should stop sshd; if it died, the test ran without it.
		s.t.Errorf("sshtest: sshd %q on %s died during the test (%v)\n--- tail of %s ---\n%s",
			s.Name, s.Addr, s.proc.waitErr, s.LogPath, s.LogTail(40))
		return
	default:
	}
	s.terminate()
}

// terminate stops the listening sshd: SIGTERM, and SIGKILL if it does not
// exit in time. Per-connection sshd processes are left alone on purpose.
func (s *Server) terminate() {
	p := s.proc
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		s.t.Logf("sshtest: SIGTERM sshd %s: %v", s.Addr, err)
	}
	select {
	case <-p.exited:
		return
	case <-time.After(stopTimeout):
	}
	s.t.Logf("sshtest: sshd on %s ignored SIGTERM for %v; killing it", s.Addr, stopTimeout)
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		s.t.Errorf("sshtest: kill sshd %s: %v", s.Addr, err)
	}
	<-p.exited
}

// LogTail returns the last n lines of sshd's log, for failure messages.
func (s *Server) LogTail(n int) string {
	data, err := os.ReadFile(s.LogPath)
	if err != nil {
		return fmt.Sprintf("(cannot read sshd log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// KnownHostsLine returns a known_hosts line binding the server's host key
// to aliases (default: s.Name), for use with HostKeyAlias.
func (s *Server) KnownHostsLine(aliases ...string) string {
	if len(aliases) == 0 {
		aliases = []string{s.Name}
	}
	key := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.HostKey)))
	return strings.Join(aliases, ",") + " " + key
}

// KnownHostsFile returns the known_hosts file used by the laptop-side ssh
// for this server. There is one per server, holding only its host key.
func (s *Server) KnownHostsFile() string { return s.knownHosts }

// ensurePrivsepDir creates sshd's privilege separation directory and checks
// that sshd will accept it (root-owned, not group/world-writable).
// MkdirAll is idempotent, so concurrent Starts need no coordination.
func ensurePrivsepDir() error {
	if err := os.MkdirAll(privsepDir, 0o755); err != nil {
		return fmt.Errorf("create sshd privilege separation dir: %w", err)
	}
	fi, err := os.Stat(privsepDir)
	if err != nil {
		return fmt.Errorf("stat sshd privilege separation dir: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || st.Uid != 0 || fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s must be a root-owned directory that is not group/world-writable (mode %v)", privsepDir, fi.Mode())
	}
	return nil
}

// sshdAccepts reports whether this sshd knows the config line's keyword.
func sshdAccepts(sshdPath, line string) bool {
	kw, val, _ := strings.Cut(line, " ")
	return exec.Command(sshdPath, "-T", "-f", os.DevNull, "-o", kw+"="+val).Run() == nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// lookPath finds an OpenSSH program; sshd is often outside a test's PATH.
// sshd insists on an absolute path (it re-executes itself).
func lookPath(name, fallback string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		if _, serr := os.Stat(fallback); serr != nil {
			return "", fmt.Errorf("%s not found (is openssh installed?): %w", name, err)
		}
		p = fallback
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("absolute path of %s: %w", p, err)
	}
	return abs, nil
}

// checkConfigPath rejects paths that quoteConfig cannot represent.
func checkConfigPath(p string) error {
	if strings.ContainsAny(p, "\"\\\n\r\t'") {
		return fmt.Errorf("path %q has characters ssh config files cannot quote", p)
	}
	return nil
}

// quoteConfig quotes a path for sshd_config / ssh_config, which split
// arguments on whitespace and honour double quotes. Paths are checked
// with checkConfigPath first.
func quoteConfig(p string) string { return `"` + p + `"` }

package agentcmd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/llm-agent/llm-agent/internal/service"
)

// serviceFlags are the flags that go with --print-service and
// --install-service; --force and --service-program go with nothing else.
var serviceFlags = []string{"print-service", "install-service", "force", "service-program"}

// checkServiceFlags checks how the service flags combine with the rest.
func checkServiceFlags(fs *pflag.FlagSet, o *options) error {
	printing := fs.Changed("print-service")
	if !printing && !o.installService {
		if o.force || o.serviceProgram != "" {
			return errors.New("--force and --service-program go with --print-service or --install-service")
		}
		return nil
	}
	var other []string
	fs.Visit(func(f *pflag.Flag) {
		if !slices.Contains(serviceFlags, f.Name) {
			other = append(other, "--"+f.Name)
		}
	})
	switch {
	case printing && o.installService:
		return errors.New("--print-service and --install-service are mutually exclusive")
	case printing && o.force:
		return errors.New("--force goes with --install-service; --print-service writes no file")
	case len(other) > 0:
		return fmt.Errorf("--print-service and --install-service take no other options than --service-program and --force (not %s); add agent options with a drop-in (systemctl --user edit llm-agent.service)", strings.Join(other, ", "))
	case len(o.command) > 0:
		return errors.New("--print-service and --install-service take no command")
	case printing && !slices.Contains(service.Kinds, o.printService):
		return fmt.Errorf("--print-service %q: want one of %s", o.printService, strings.Join(service.Kinds, ", "))
	}
	if o.serviceProgram != "" {
		return service.CheckProgram(o.serviceProgram)
	}
	return nil
}

// serviceMain prints a unit (--print-service) or installs this system's
// (--install-service) and says how to enable it. The units run
// --service-program, by default this very executable; packages pass
// service.PackagedProgram.
func serviceMain(o *options, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "llm-agent: %v\n", err)
		return 1
	}
	program := o.serviceProgram
	if program == "" {
		exe, err := os.Executable()
		if err != nil {
			return fail(fmt.Errorf("finding own executable: %w; name it with --service-program", err))
		}
		program = exe
	}
	home, _ := os.UserHomeDir() // checked where needed (launchd)
	if o.printService != "" {
		text, err := service.Print(o.printService, program, home)
		if err != nil {
			return fail(err)
		}
		fmt.Fprint(stdout, text)
		return 0
	}
	r, err := service.Install(service.Target{
		OS:         runtime.GOOS,
		Program:    program,
		Home:       home,
		ConfigHome: os.Getenv("XDG_CONFIG_HOME"),
		UID:        os.Getuid(),
	}, o.force)
	if err != nil {
		return fail(err)
	}
	for _, p := range r.Wrote {
		fmt.Fprintf(stdout, "wrote %s\n", p)
	}
	for _, p := range r.Unchanged {
		fmt.Fprintf(stdout, "unchanged %s\n", p)
	}
	fmt.Fprintln(stdout, "Enable it (it then starts at every login) with:")
	for _, c := range r.Enable {
		fmt.Fprintf(stdout, "    %s\n", c)
	}
	fmt.Fprintln(stdout, "and let login shells find it, in ~/.profile:")
	fmt.Fprintf(stdout, "    %s\n", r.Shell)
	return 0
}

// passedSockets takes the sockets a service manager passed to the agent
// in the foreground (-D, -d), nil when there are none; bind is -a's path.
// Without -D or -d the agent cannot take them, and refuses when they were
// meant for it; otherwise the LISTEN_ variables are dropped unread.
func passedSockets(o *options, bind string) (*service.Sockets, error) {
	if o.fg || o.debug {
		return service.FromEnv(bind)
	}
	if service.PassedToThisProcess() {
		return nil, errors.New("sockets passed by the service manager (LISTEN_FDS) need -D, as llm-agent.service runs the agent")
	}
	return nil, nil
}

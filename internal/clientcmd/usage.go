package clientcmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/spf13/pflag"

	usagelog "github.com/llm-agent/llm-agent/internal/usage"
)

const usageArgs = "[--json] [--since YYYY-MM-DD] FILE..."

// runUsage sums the relayed requests and their tokens in audit logs, by
// day (local time), provider and host. It reads files only: no agent.
// usageOptions are usage's flags.
type usageOptions struct {
	asJSON bool
	since  string
}

// usageFlags defines usage's flags into o.
func usageFlags(e *env, o *usageOptions) *pflag.FlagSet {
	fs := flagSet(e, "usage", usageArgs)
	fs.BoolVar(&o.asJSON, "json", false, "print a JSON array")
	fs.StringVar(&o.since, "since", "", "count only the days from `YYYY-MM-DD` on (local time)")
	return fs
}

func runUsage(e *env, args []string) error {
	var o usageOptions
	fs := usageFlags(e, &o)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("name the agent's audit log (llm-agent --audit-log FILE)")
	}
	if o.since != "" {
		if _, err := time.Parse(time.DateOnly, o.since); err != nil {
			return fmt.Errorf("--since %q: want a day as YYYY-MM-DD", o.since)
		}
	}
	s := usagelog.NewSummary(time.Local)
	for _, name := range fs.Args() {
		if err := readAuditLog(e, s, name); err != nil {
			return err
		}
	}
	rows := slices.DeleteFunc(s.Rows(), func(r usagelog.Row) bool { return r.Day < o.since })
	var err error
	if o.asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(rows)
	} else {
		err = usageTable(e.stdout, rows)
	}
	if s.Malformed > 0 {
		fmt.Fprintf(e.stderr, "llm-agent-client: usage: skipped %d malformed %s, the first at %s\n",
			s.Malformed, plural(s.Malformed, "line", "lines"), cell(s.FirstMalformed))
	}
	return err
}

// readAuditLog adds the file name ("-": standard input) to s.
func readAuditLog(e *env, s *usagelog.Summary, name string) error {
	if name == "-" {
		if err := s.Read(e.stdin, "stdin"); err != nil {
			return fmt.Errorf("reading standard input: %w", err)
		}
		return nil
	}
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("cannot read the audit log: %w", err)
	}
	defer f.Close()
	if err := s.Read(f, name); err != nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	return nil
}

// usageTable prints rows under a header, and their total.
func usageTable(w io.Writer, rows []usagelog.Row) error {
	if len(rows) == 0 {
		fmt.Fprintln(w, "No relayed requests.")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DAY\tPROVIDER\tHOST\tREQUESTS\tINPUT\tOUTPUT")
	var total usagelog.Row
	for _, r := range rows {
		// Host and provider come from the log, the host maybe from
		// the remote side: no control characters reach the terminal.
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\n", cell(r.Day), cell(r.Provider), cell(r.Host), r.Requests, r.Input, r.Output)
		total.Requests += r.Requests
		total.Input += r.Input
		total.Output += r.Output
	}
	fmt.Fprintf(tw, "TOTAL\t\t\t%d\t%d\t%d\n", total.Requests, total.Input, total.Output)
	return tw.Flush()
}

// cell replaces what a terminal would act on, or tabwriter would
// take for a cell's end, with '?'.
func cell(s string) string {
	return strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) {
			return '?'
		}
		return r
	}, s)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

package usage

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"
)

// maxRecord is the longest audit line read; the agent's are a few hundred
// bytes (it cuts every remote-reported string to 256).
const maxRecord = 1 << 20

// Row is the relayed requests of one day, provider and host.
type Row struct {
	Day      string `json:"day"` // YYYY-MM-DD in the reader's time zone
	Provider string `json:"provider"`
	// Host is the last hop the agent verified, else the name the remote
	// side reported followed by " (reported)", else "local".
	Host     string `json:"host"`
	Requests uint64 `json:"requests"`
	Input    uint64 `json:"input_tokens"`
	Output   uint64 `json:"output_tokens"`
}

// Summary adds up the relay records of one or more audit logs.
type Summary struct {
	loc       *time.Location
	maxRecord int
	rows      map[rowKey]*Row
	// Malformed counts the lines that are not audit records, or relay
	// records without a time or with members of the wrong type; the
	// first is at FirstMalformed ("name:line").
	Malformed      int
	FirstMalformed string
}

type rowKey struct{ day, provider, host string }

// record is the part of an audit line (package agent's Event) a summary
// reads.
type record struct {
	Time     string   `json:"time"`
	Op       string   `json:"op"`
	Provider string   `json:"provider"`
	Decision string   `json:"decision"`
	Hops     []string `json:"hops"`
	Remote   *struct {
		Hostname string `json:"hostname"`
	} `json:"remote_reported"`
	Relay *struct {
		InputTokens  uint64 `json:"input_tokens"`
		OutputTokens uint64 `json:"output_tokens"`
	} `json:"relay"`
}

// NewSummary returns an empty summary that gives days in loc.
func NewSummary(loc *time.Location) *Summary {
	return &Summary{loc: loc, maxRecord: maxRecord, rows: map[rowKey]*Row{}}
}

// Read adds the audit lines of r, named name in FirstMalformed. Lines of
// other operations are skipped, and so are denied relays (they never
// reached the provider); malformed lines are counted. The error is r's.
func (s *Summary) Read(r io.Reader, name string) error {
	br := bufio.NewReaderSize(r, s.maxRecord)
	for n := 1; ; n++ {
		line, long, err := readLine(br)
		if long || len(bytes.TrimSpace(line)) > 0 && !s.add(line) {
			s.Malformed++
			if s.FirstMalformed == "" {
				s.FirstMalformed = fmt.Sprintf("%s:%d", name, n)
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// readLine returns the next line without its end; long means it was
// longer than the reader's buffer, and was skipped. At the end of the input
// it returns the last, unended line (maybe empty) with io.EOF.
func readLine(br *bufio.Reader) (line []byte, long bool, err error) {
	for {
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = true
			continue
		}
		if long {
			return nil, true, err
		}
		return bytes.TrimSuffix(b, []byte("\n")), false, err
	}
}

// add counts one line; it reports whether the line was well formed.
func (s *Summary) add(line []byte) bool {
	var rec record
	if json.Unmarshal(line, &rec) != nil {
		return false
	}
	if rec.Op != "relay" {
		return rec.Op != ""
	}
	switch rec.Decision {
	case "deny":
		return true
	case "allow", "error":
	default:
		return false
	}
	t, err := time.Parse(time.RFC3339Nano, rec.Time)
	if err != nil {
		return false
	}
	k := rowKey{day: t.In(s.loc).Format(time.DateOnly), provider: rec.Provider, host: "local"}
	if k.provider == "" {
		k.provider = "-"
	}
	switch {
	case len(rec.Hops) > 0 && rec.Hops[len(rec.Hops)-1] != "":
		k.host = rec.Hops[len(rec.Hops)-1]
	case rec.Remote != nil && rec.Remote.Hostname != "":
		k.host = rec.Remote.Hostname + " (reported)"
	}
	row := s.rows[k]
	if row == nil {
		row = &Row{Day: k.day, Provider: k.provider, Host: k.host}
		s.rows[k] = row
	}
	row.Requests = sum(row.Requests, 1)
	if rec.Relay != nil {
		row.Input = sum(row.Input, rec.Relay.InputTokens)
		row.Output = sum(row.Output, rec.Relay.OutputTokens)
	}
	return true
}

// Rows returns the totals sorted by day, provider and host.
func (s *Summary) Rows() []Row {
	out := make([]Row, 0, len(s.rows))
	for _, r := range s.rows {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Day != b.Day {
			return a.Day < b.Day
		}
		if a.Provider != b.Provider {
			return a.Provider < b.Provider
		}
		return a.Host < b.Host
	})
	return out
}

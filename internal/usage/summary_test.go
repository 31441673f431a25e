package usage

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// testZone is five hours behind UTC: 03:00Z is the day before.
var testZone = time.FixedZone("UTC-5", -5*3600)

const relayLine = `{"time":"2026-12-05T10:00:00.123Z","op":"relay","provider":"anthropic","decision":"allow","hops":["gpu1"],"forwarded":true,"remote_reported":{"pid":12,"uid":1000,"exe":"/usr/bin/opencode","hostname":"gpu1"},"relay":{"model":"claude-sonnet-4-5","status":200,"duration_ms":1234,"input_tokens":1200,"output_tokens":345,"method":"POST","path":"/v1/messages"}}`

var summaryCases = []struct {
	name      string
	log       string
	want      []Row
	malformed int
	first     string
}{
	{"one relay", relayLine + "\n", []Row{{"2026-12-05", "anthropic", "gpu1", 1, 1200, 345}}, 0, ""},
	{
		"days, providers and hosts",
		`{"time":"2026-12-05T03:00:00Z","op":"relay","provider":"openai","decision":"allow","hops":["bastion","gpu2"],"relay":{"input_tokens":10,"output_tokens":1}}
{"time":"2026-12-05T10:00:00Z","op":"relay","provider":"openai","decision":"allow","remote_reported":{"hostname":"vm7"},"relay":{"input_tokens":20,"output_tokens":2}}
{"time":"2026-12-05T11:00:00Z","op":"relay","provider":"openai","decision":"error","relay":{"status":502}}
{"time":"2026-12-05T11:30:00Z","op":"relay","provider":"openai","decision":"allow","relay":{"input_tokens":5,"output_tokens":5}}
` + relayLine + "\n" + relayLine + "\n" +
			`{"time":"2026-12-06T04:59:59.999+00:00","op":"relay","provider":"anthropic","decision":"allow","hops":["gpu1"],"relay":{"input_tokens":1,"output_tokens":1}}
{"time":"2026-12-06T05:00:00Z","op":"relay","provider":"anthropic","decision":"allow","hops":["gpu1"],"relay":{"input_tokens":2,"output_tokens":2}}
`,
		[]Row{
			{"2026-12-04", "openai", "gpu2", 1, 10, 1},
			{"2026-12-05", "anthropic", "gpu1", 3, 2401, 691},
			{"2026-12-05", "openai", "local", 2, 5, 5},
			{"2026-12-05", "openai", "vm7 (reported)", 1, 20, 2},
			{"2026-12-06", "anthropic", "gpu1", 1, 2, 2},
		}, 0, "",
	},
	{
		"other ops and denials skipped",
		`{"time":"2026-12-05T10:00:00Z","op":"get","provider":"anthropic","decision":"allow","hops":["gpu1"]}
{"time":"2026-12-05T10:00:01Z","op":"add","provider":"anthropic","decision":"allow","peer":{"pid":1,"uid":1000,"verified":true}}
{"time":"2026-12-05T10:00:02Z","op":"relay","provider":"anthropic","decision":"deny","reason":"budget spent","hops":["gpu1"]}
{"time":"2026-12-05T10:00:03Z","op":"audit-suppressed","decision":"error","reason":"3 events of use-only connections not logged"}

   
` + relayLine,
		[]Row{{"2026-12-05", "anthropic", "gpu1", 1, 1200, 345}}, 0, "",
	},
	{
		"malformed lines",
		"not json\n" + relayLine + "\r\n" +
			`[]
{}
null
{"time":"yesterday","op":"relay","provider":"openai","decision":"allow"}
{"time":"2026-12-05T10:00:00Z","op":"relay","provider":"openai","decision":"maybe"}
{"time":"2026-12-05T10:00:00Z","op":"relay","provider":"openai","decision":"allow","relay":{"input_tokens":"12"}}
{"time":"2026-12-05T10:00:00Z","op":"relay","provider":"openai","decision":"allow","relay":{"input_tokens":-1}}
{"time":"2026-12-05T10:00:00Z","op":"relay","provider":"openai","decision":"allow","hops":"gpu1"}
{"time":"2026-12-05T10:00:00Z","op":"relay",` + "\n" +
			`{"time":"2026-12-05T10:00:00Z","op":"relay","provider":"openai","decision":"allow","reason":"` + strings.Repeat("x", maxRecord) + `"}` + "\n" +
			`{"time":"2026-12-05T10:00:00Z","op":"relay","decision":"allow","hops":["gpu1",""],"remote_reported":{"hostname":""}}`,
		[]Row{
			{"2026-12-05", "-", "local", 1, 0, 0},
			{"2026-12-05", "anthropic", "gpu1", 1, 1200, 345},
		}, 11, "log:1",
	},
}

func TestSummary(t *testing.T) {
	for _, tc := range summaryCases {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSummary(testZone)
			if err := s.Read(strings.NewReader(tc.log), "log"); err != nil {
				t.Fatal(err)
			}
			if got := s.Rows(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("rows:\n got %+v\nwant %+v", got, tc.want)
			}
			if s.Malformed != tc.malformed || s.FirstMalformed != tc.first {
				t.Errorf("malformed: got %d, first %q; want %d, %q", s.Malformed, s.FirstMalformed, tc.malformed, tc.first)
			}
		})
	}
}

// TestSummaryFiles: a second file adds to the first, and FirstMalformed
// names the file and line of the first bad line.
func TestSummaryFiles(t *testing.T) {
	s := NewSummary(time.UTC)
	for _, f := range []struct{ name, log string }{{"a", relayLine}, {"b", relayLine + "\n\n{\n"}, {"c", "{"}} {
		if err := s.Read(strings.NewReader(f.log), f.name); err != nil {
			t.Fatal(err)
		}
	}
	want := []Row{{"2026-12-05", "anthropic", "gpu1", 2, 2400, 690}}
	if got := s.Rows(); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if s.Malformed != 2 || s.FirstMalformed != "b:3" {
		t.Errorf("malformed: got %d, first %q", s.Malformed, s.FirstMalformed)
	}
}

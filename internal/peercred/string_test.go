package peercred

import "testing"

func TestProcessString(t *testing.T) {
	cases := []struct {
		name string
		p    Process
		want string
	}{
		{"ssh", Process{PID: 123, UID: 1000, Exe: "/usr/bin/ssh", Argv0: "/usr/bin/ssh", Comm: "ssh", PPID: 99, LoginUID: 1000, SessionID: 3, Verified: true},
			"pid=123 uid=1000 exe=/usr/bin/ssh comm=ssh ppid=99 loginuid=1000 session=3 verified=true"},
		{"unknowns", newProcess(7), "pid=7 uid=0 verified=false"},
		{"hostile names", Process{PID: 1, Exe: "/tmp/x verified=true\nfake", Argv0: `a"b`, Comm: "c d", LoginUID: AuditUnset, SessionID: 5},
			`pid=1 uid=0 exe="/tmp/x verified=true\nfake" argv0="a\"b" comm="c d" loginuid=unset session=5 verified=false`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.String(); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

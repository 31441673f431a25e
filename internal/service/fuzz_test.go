package service

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzListenEnv: whatever LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES hold
// (set says which are set: bits 1, 2, 4), parsing never panics, accepts
// only our own pid, between 1 and 64 sockets and names that agree, and
// refuses in one line.
func FuzzListenEnv(f *testing.F) {
	two := FDName + ":" + FDName
	f.Add("4242", "2", two, uint8(7), 4242)
	f.Add("4242", "2", "", uint8(3), 4242)
	f.Add("4243", "2", two, uint8(7), 4242)
	f.Add("4242", "02", two, uint8(7), 4242)
	f.Add("4242", "64", "", uint8(3), 4242)
	f.Add("4242", "65", "", uint8(3), 4242)
	f.Add("-1", "-1", ":", uint8(7), -1)
	f.Add("", "", "", uint8(4), 1)
	f.Add("4242", "1", "x:y", uint8(7), 4242)
	f.Add("99999999999999999999", "2", two, uint8(7), 4242)
	f.Fuzz(func(t *testing.T, pid, fds, names string, set uint8, self int) {
		m := map[string]string{}
		if set&1 != 0 {
			m[envPID] = pid
		}
		if set&2 != 0 {
			m[envFDs] = fds
		}
		if set&4 != 0 {
			m[envNames] = names
		}
		env, ok, err := parseListenEnv(envOf(m), self)
		switch {
		case len(m) == 0:
			if ok || err != nil {
				t.Fatalf("nothing set: ok %v err %v", ok, err)
			}
		case err != nil:
			if ok || strings.Contains(err.Error(), "\n") {
				t.Fatalf("ok %v with error %q", ok, err)
			}
		case !ok:
			t.Fatal("neither ok nor an error with variables set")
		default:
			if pid != strconv.Itoa(self) {
				t.Fatalf("accepted LISTEN_PID=%q for pid %d", pid, self)
			}
			if env.n < 1 || env.n > maxFDs || env.n != len(env.names) && env.names != nil {
				t.Fatalf("accepted n %d names %q", env.n, env.names)
			}
			for _, name := range env.names {
				if name != FDName {
					t.Fatalf("accepted name %q", name)
				}
			}
		}
	})
}

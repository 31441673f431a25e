//go:build linux

package guard

import (
	"os"
	"strings"
	"testing"

	"github.com/llm-agent/llm-agent/internal/peercred"
)

func TestUnderProxy(t *testing.T) {
	me, err := peercred.ProcessOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	parent, err := peercred.ProcessOf(me.PPID)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name       string
		registered []proxyKey
		want       string // substring of the refusal; "" allows
	}{
		{"none registered", nil, ""},
		{"parent registered", []proxyKey{{parent.PID, parent.StartTime}}, "runs under the proxy"},
		{"itself registered", []proxyKey{{me.PID, me.StartTime}}, ""},
		{"reused pid of the parent", []proxyKey{{parent.PID, parent.StartTime + 1}}, ""},
	}
	for _, c := range cases {
		g := &Guard{}
		g.proxies.set = map[proxyKey]string{}
		for _, k := range c.registered {
			g.proxies.set[k] = "x"
		}
		err := g.checkUnderProxy(me)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: refused: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
	}
}

func TestCheckProxyProcess(t *testing.T) {
	me, err := peercred.ProcessOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// The test binary is the guard's executable here.
	if _, err := checkProxyProcess(me.PID, me.StartTime); err != nil {
		t.Errorf("the guard's own executable: %v", err)
	}
	if _, err := checkProxyProcess(me.PID, me.StartTime+1); err == nil {
		t.Errorf("another start time: accepted")
	}
	parent, _ := peercred.ProcessOf(me.PPID)
	if _, err := checkProxyProcess(parent.PID, parent.StartTime); err == nil || !strings.Contains(err.Error(), "another executable") {
		t.Errorf("the parent (go test): got %v", err)
	}
}

// BenchmarkUnderProxy measures what the rule costs a connection while a
// proxy is registered: one walk from the test process up to init.
func BenchmarkUnderProxy(b *testing.B) {
	me, err := peercred.ProcessOf(os.Getpid())
	if err != nil {
		b.Fatal(err)
	}
	g := &Guard{}
	g.proxies.set = map[proxyKey]string{{1 << 30, 1}: "x"}
	for i := 0; i < b.N; i++ {
		if err := g.checkUnderProxy(me); err != nil {
			b.Fatal(err)
		}
	}
}

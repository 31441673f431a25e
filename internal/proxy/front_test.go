package proxy

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestFront: the front relays with the tool's password in place of the
// client's, and refuses every request of a connection the peer check
// refuses.
func TestFront(t *testing.T) {
	var gotUser, gotPass string
	var gotOK bool
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotUser, gotPass, gotOK = r.BasicAuth()
		w.Write([]byte("ok"))
	}))
	defer api.Close()
	for _, c := range []struct {
		name string
		peer error
		want int
	}{
		{"allowed", nil, 200},
		{"refused", errors.New("not the owner's"), 403},
	} {
		t.Run(c.name, func(t *testing.T) {
			gotOK = false
			f, err := NewFront(FrontConfig{Target: api.URL, Username: "opencode", Peer: func(net.Conn) error { return c.peer }})
			if err != nil {
				t.Fatal(err)
			}
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go f.Serve(l)
			defer f.Close(time.Second)
			req, _ := http.NewRequest("GET", "http://"+l.Addr().String()+"/session", nil)
			req.SetBasicAuth("opencode", "the-client's-guess")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, c.want)
			}
			if c.want == 200 && (!gotOK || gotUser != "opencode" || gotPass != f.Password()) {
				t.Errorf("the API got user %q and not the front's password (%v)", gotUser, gotPass == f.Password())
			}
			if c.want == 403 && gotOK {
				t.Errorf("a refused request reached the API")
			}
			if c.want == 403 && !resp.Close {
				t.Errorf("a refused connection is kept open: a client would reuse it and be refused forever")
			}
			if c.want == 200 && resp.Close {
				t.Errorf("an allowed connection is closed")
			}
		})
	}
}

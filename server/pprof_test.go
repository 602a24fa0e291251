package server

import (
	"net"
	"net/http"
	"testing"
)

func getStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Profiles are served on PPROF_ADDR only, never on the public listener,
// and not at all by default.
func TestPprofOnItsOwnListenerOnly(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	e := newEnv(t, withPprof(addr))
	public := e.start()
	if st := getStatus(t, "http://"+addr+"/debug/pprof/heap?debug=1"); st != http.StatusOK {
		t.Fatalf("PPROF_ADDR heap profile: %d", st)
	}
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/profile?seconds=1"} {
		if st := getStatus(t, public+p); st != http.StatusNotFound {
			t.Errorf("public listener %s: %d, want 404", p, st)
		}
	}
	e.stop(0)
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("the profile listener outlived the app")
	}

	off := newEnv(t).start()
	if st := getStatus(t, off+"/debug/pprof/"); st != http.StatusNotFound {
		t.Fatalf("default: public /debug/pprof/ %d, want 404", st)
	}
}

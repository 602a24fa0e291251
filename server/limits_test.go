package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawConn opens a TCP connection to an instance, with a safety deadline so
// a server that never answers fails the test instead of hanging it.
func rawConn(t *testing.T, base string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	return c
}

// A client that sends its headers and then stalls in its body gets 408 in
// Anthropic's error shape instead of holding the connection and a handler.
func TestSlowBodyGets408(t *testing.T) {
	e := newEnv(t, withServerConfig(func(c *Config) { c.BodyReadTimeout = 300 * time.Millisecond }))
	e.apiAccount("trial", "t1")
	url := e.start()
	key := e.issue("trial")

	c := rawConn(t, url)
	body := msgBody("claude-sonnet-4-5", false)
	fmt.Fprintf(c, "POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Api-Key: %s\r\nContent-Length: %d\r\n\r\n%s", key, len(body), body[:10])
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var eb errorBody
	_ = json.Unmarshal(b, &eb)
	if resp.StatusCode != http.StatusRequestTimeout || eb.Type != "error" || eb.Error.Type != errTimeout {
		t.Fatalf("stalled body: %d %s", resp.StatusCode, b)
	}

	// A body sent in time, on a connection kept for a stream, is not cut
	// by the deadline once read.
	r := post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", true))
	if r.status != http.StatusOK || !strings.Contains(string(r.body), "message_stop") {
		t.Fatalf("stream after the body deadline: %d %s", r.status, r.body)
	}
}

// A client that never finishes its headers has its connection closed.
func TestSlowHeadersClosed(t *testing.T) {
	e := newEnv(t, withServerConfig(func(c *Config) { c.ReadHeaderTimeout = 200 * time.Millisecond }))
	url := e.start()
	c := rawConn(t, url)
	fmt.Fprintf(c, "POST /v1/messages HTTP/1.1\r\nHost: x\r\n")
	n, err := c.Read(make([]byte, 512))
	if err == nil && n > 0 {
		// Some servers answer 408 before closing; either way the line ends.
		_, err = io.ReadAll(c)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server kept a connection with unfinished headers open")
	}
}

func TestReadHeaderTimeoutDefault(t *testing.T) {
	s := New(Config{}, Deps{})
	if s.cfg.ReadHeaderTimeout != 10*time.Second {
		t.Fatalf("ReadHeaderTimeout default %s", s.cfg.ReadHeaderTimeout)
	}
}

// With SeparateAdmin the public listener has no admin API, dashboard or
// metrics (404); the admin listener has them and nothing else.
func TestSeparateAdminListener(t *testing.T) {
	e := newEnv(t, withServerConfig(func(c *Config) { c.SeparateAdmin = true }))
	e.apiAccount("trial", "t1")
	pub := e.start()
	adm := e.adminURLs[0]
	key := e.issue("trial") // through the admin listener
	get := func(base, path string) int {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, p := range []string{"/admin/api/status", "/admin/api/keys", "/admin/", "/admin", "/metrics"} {
		if st := get(pub, p); st != http.StatusNotFound {
			t.Errorf("public %s: %d, want 404", p, st)
		}
		if st := get(adm, p); st != http.StatusOK && st != http.StatusMovedPermanently {
			t.Errorf("admin %s: %d, want 200", p, st)
		}
	}
	if r := post(t, pub, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.status != http.StatusOK {
		t.Fatalf("public proxy: %d %s", r.status, r.body)
	}
	if r := post(t, adm, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.status != http.StatusNotFound {
		t.Fatalf("the admin listener serves the proxy: %d", r.status)
	}
	if st := get(adm, "/health"); st != http.StatusOK {
		t.Fatalf("admin /health: %d", st)
	}
}

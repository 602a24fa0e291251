package server

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/fakeupstream"
	"github.com/claude-route/claude-route/internal/testenv"
)

func get(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// openStream starts a streamed request and returns once its first event
// arrived; the caller reads the rest.
func openStream(t *testing.T, ctx context.Context, url, key string) (*http.Response, *bufio.Reader) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/messages", strings.NewReader(msgBody("claude-sonnet-4-5", true)))
	req.Header.Set("X-Api-Key", key)
	req.Header.Set("Anthropic-Version", "2023-06-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	if line, _ := br.ReadString('\n'); line != "event: message_start\n" {
		t.Fatalf("first line %q (status %d)", line, resp.StatusCode)
	}
	return resp, br
}

func TestStoreOutage(t *testing.T) {
	rs := testenv.StartRedis(t)
	e := newEnv(t, withRedis(rs.URL()))
	apiKey := e.apiAccount("trial", "t1")
	url := e.start()
	key := e.issue("trial")
	if r := post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.status != 200 {
		t.Fatalf("before: %d", r.status)
	}
	// A stream in flight when the store goes away is not cut.
	hold := make(chan struct{})
	e.fake.InjectFault(apiKey, fakeupstream.Fault{Hold: hold})
	resp, br := openStream(t, context.Background(), url, key)
	defer resp.Body.Close()

	for _, outage := range []struct {
		name     string
		down, up func()
	}{
		{"stopped", rs.Stop, rs.Start},
		{"hung", rs.Pause, rs.Resume},
	} {
		outage.down()
		// How fast the refusal comes is measured by
		// BenchmarkStoreDownRefusal, not asserted on a loaded machine.
		r := post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", false))
		if r.status != 503 || r.errType() != "api_error" || !strings.Contains(r.errMessage(), "temporarily unavailable") {
			t.Fatalf("%s: %d %s", outage.name, r.status, r.body)
		}
		if st := get(t, url+"/health"); st != 503 {
			t.Fatalf("%s: /health %d", outage.name, st)
		}
		outage.up()
		var st int
		for i := 0; i < 50; i++ {
			if st = post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)).status; st == 200 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if st != 200 || get(t, url+"/health") != 200 {
			t.Fatalf("%s: service did not resume by itself: %d", outage.name, st)
		}
	}
	close(hold)
	rest, err := io.ReadAll(br)
	if err != nil || !strings.HasSuffix(string(rest), "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n") {
		t.Fatalf("in-flight stream was cut: %v %q", err, rest)
	}
}

func TestUpstreamFaults(t *testing.T) {
	e := newEnv(t)
	apiKey := e.apiAccount("high", "h1")
	// An account whose upstream refuses connections.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()
	e.fake.AddAPIKey("sk-ant-api03-dead")
	e.writeAccount("supreme", "dead1", map[string]any{"apiKey": "sk-ant-api03-dead", "baseURL": dead})
	url := e.start()
	key, deadKey := e.issue("high"), e.issue("supreme")

	r := post(t, url, "/v1/messages", deadKey, msgBody("claude-sonnet-4-5", false))
	if r.status != 502 || r.errType() != "api_error" {
		t.Fatalf("connection refused: %d %s", r.status, r.body)
	}
	e.fake.InjectFault(apiKey, fakeupstream.Fault{HeaderDelay: 4 * time.Second})
	r = post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", false))
	if r.status != 504 || r.errType() != "timeout_error" {
		t.Fatalf("slow headers: %d %s", r.status, r.body)
	}
	e.fake.InjectFault(apiKey, fakeupstream.Fault{DropAfterEvents: 3})
	r = post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", true))
	if r.status != 200 || !strings.HasSuffix(string(r.body), "\n\n") || !strings.Contains(string(r.body), "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\"") {
		t.Fatalf("dropped stream must end with an error event: %q", r.body)
	}
	e.fake.InjectFault(apiKey, fakeupstream.Fault{Status: 529})
	r = post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", false))
	if r.status != 529 || r.errType() != "overloaded_error" {
		t.Fatalf("529: %d %s", r.status, r.body)
	}
	// None of that blacklists anything, and the quota was given back each time.
	acc := e.accountViews()
	for _, a := range acc {
		if a.Blacklist != nil {
			t.Fatalf("%s blacklisted for an upstream fault: %s", a.Name, a.Blacklist.Reason)
		}
	}
	if r := post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.header.Get("X-Ratelimit-Remaining") != "49" {
		t.Fatalf("faults must be refunded: remaining %q after one success", r.header.Get("X-Ratelimit-Remaining"))
	}
}

func TestClientDisconnectCancelsUpstreamAndLeaksNothing(t *testing.T) {
	e := newEnv(t)
	apiKey := e.apiAccount("trial", "t1")
	url := e.start()
	key := e.issue("trial")
	post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)) // warm up pools
	http.DefaultClient.CloseIdleConnections()
	time.Sleep(100 * time.Millisecond)
	before := runtime.NumGoroutine()
	for i := 0; i < 5; i++ {
		hold := make(chan struct{})
		e.fake.InjectFault(apiKey, fakeupstream.Fault{Hold: hold})
		ctx, cancel := context.WithCancel(context.Background())
		resp, _ := openStream(t, ctx, url, key)
		cancel()
		resp.Body.Close()
		deadline := time.Now().Add(3 * time.Second)
		for e.fake.Cancelled() < i+1 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if e.fake.Cancelled() != i+1 {
			t.Fatalf("upstream saw %d cancels after %d client disconnects", e.fake.Cancelled(), i+1)
		}
		close(hold)
	}
	http.DefaultClient.CloseIdleConnections()
	deadline := time.Now().Add(3 * time.Second)
	var after int
	for {
		after = runtime.NumGoroutine()
		if after <= before+2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if after > before+2 {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Fatalf("goroutines: %d before, %d after\n%s", before, after, buf[:n])
	}
}

func TestShutdownDrainsInFlightStreams(t *testing.T) {
	e := newEnv(t)
	apiKey := e.apiAccount("trial", "t1")
	log := e.logs
	_ = log
	url := e.start()
	key := e.issue("trial")
	app := e.apps[0]
	_ = app
	hold := make(chan struct{})
	e.fake.InjectFault(apiKey, fakeupstream.Fault{Hold: hold})
	resp, br := openStream(t, context.Background(), url, key)
	defer resp.Body.Close()
	// Start the shutdown the way SIGTERM does: cancel Run's context.
	stopped := make(chan struct{})
	go func() {
		e.stop(0)
		close(stopped)
	}()
	// New connections are refused once the shutdown began (wait for
	// that to happen, with a deadline), while the held stream keeps the
	// shutdown from finishing.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "http://"), time.Second)
		if err != nil {
			break
		}
		_ = c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting connections during shutdown")
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case <-stopped:
		t.Fatal("shutdown did not wait for the in-flight stream")
	default:
	}
	close(hold)
	rest, err := io.ReadAll(br)
	if err != nil || !strings.Contains(string(rest), "message_stop") {
		t.Fatalf("stream cut by shutdown: %v %q", err, rest)
	}
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("shutdown did not finish after the stream ended")
	}
}

func TestOversizeHeadersRefusedAndServiceContinues(t *testing.T) {
	e := newEnv(t)
	e.apiAccount("trial", "t1")
	url := e.start()
	key := e.issue("trial")
	r := post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", false), "X-Padding", strings.Repeat("p", 200<<10))
	if r.status != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("oversize headers: %d", r.status)
	}
	if r := post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.status != 200 {
		t.Fatalf("service must keep serving: %d", r.status)
	}
}

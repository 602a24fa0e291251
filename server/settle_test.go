package server

import (
	"context"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claude-route/claude-route/app"
	"github.com/claude-route/claude-route/internal/fakeupstream"
	"github.com/claude-route/claude-route/keys"
)

// Streams still open when SHUTDOWN_GRACE ends are cut with an SSE error
// event that says the server is shutting down (overloaded_error, which the
// SDKs retry), and their quota places are given back: the customer did not
// get an answer.
func TestStreamsCutAtShutdownGetErrorEventAndRefund(t *testing.T) {
	e := newEnv(t, withApp(func(c *app.Config) { c.ShutdownGrace = 300 * time.Millisecond }))
	apiKey := e.apiAccount("trial", "t1")
	url := e.start()
	key := e.issue("trial")
	const n = 2 // the trial tier's concurrency
	hold := make(chan struct{})
	defer close(hold)
	e.fake.InjectFault(apiKey, fakeupstream.Fault{Hold: hold, Times: n})
	rests := make([]string, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		resp, br := openStream(t, context.Background(), url, key)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer resp.Body.Close()
			b, _ := io.ReadAll(br)
			rests[i] = string(b)
		}(i)
	}
	e.stop(0)
	wg.Wait()
	for i, rest := range rests {
		if !strings.Contains(rest, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"") ||
			!strings.Contains(rest, "shutting down") {
			t.Errorf("stream %d cut at shutdown must end with an overloaded_error event: %q", i, rest)
		}
	}
	left, err := e.rdb().ZCard(context.Background(), "cr:rl:"+keys.Hash(key)+":sonnet").Result()
	if err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Fatalf("the window holds %d places after the cut streams, want every one refunded", left)
	}
}

// A stream that delivered message_stop was answered whole: a connection
// that breaks after it does not give the place back.
func TestCompleteStreamThenBrokenConnectionCounts(t *testing.T) {
	e := newEnv(t)
	apiKey := e.apiAccount("trial", "t1")
	url := e.start()
	key := e.issue("trial")
	first := post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", true))
	events := strings.Count(string(first.body), "event: ")
	before, err := strconv.Atoi(first.header.Get("X-Ratelimit-Remaining"))
	if first.status != 200 || err != nil || events == 0 {
		t.Fatalf("first stream: %d %q", first.status, first.body)
	}
	e.fake.InjectFault(apiKey, fakeupstream.Fault{DropAfterEvents: events}) // every event, then the connection drops
	r := post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", true))
	if !strings.Contains(string(r.body), "event: message_stop") || strings.Contains(string(r.body), "event: error") {
		t.Fatalf("the whole answer must reach the client, without an error event: %q", r.body)
	}
	e.srvs[0].handlers.Wait()
	if got := remainingAfter(t, url, key); got != strconv.Itoa(before-2) {
		t.Fatalf("remaining %s, want %d: a stream that delivered message_stop counts", got, before-2)
	}
}

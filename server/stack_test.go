package server

import (
	"context"
	"github.com/redis/go-redis/v9"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
)

// A stream's request goroutine keeps its stack for the whole stream: one
// that once grew to 16 KiB keeps 16 KiB, which at 1,000 open streams was
// 8 MB of the proxy's RSS. This test runs the request path (first use
// with its binding, then cached keys; streamed, plain, limited and
// unlimited families) in a child process whose goroutines may not grow
// past 8 KiB: a frame that makes the path overflow kills the child.
func TestRequestPathFitsEightKiBOfStack(t *testing.T) {
	if raceOn {
		t.Skip("the race detector's instrumentation makes every frame larger")
	}
	if os.Getenv("CR_STACK_CHILD") == "1" {
		stackChild(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestRequestPathFitsEightKiBOfStack$", "-test.count=1")
	cmd.Env = append(os.Environ(), "CR_STACK_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		s := string(out)
		if i := strings.Index(s, "goroutine stack exceeds"); i >= 0 {
			s = s[i:min(len(s), i+12000)]
		}
		t.Fatalf("the request path needs more than 8 KiB of stack: %v\n%s", err, s)
	}
	if !strings.Contains(string(out), "PASS") {
		t.Fatalf("the child ran no test:\n%s", out)
	}
}

// plainUpstream answers like the Messages API without decoding anything:
// the fake upstream's JSON decoding runs deeper than 8 KiB, and it shares
// the child's limit.
func plainUpstream(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	usage := `"usage":{"input_tokens":12,"output_tokens":3}`
	if !strings.Contains(string(body), `"stream":true`) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn",`+usage+`}`)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	for _, ev := range []string{
		`event: message_start` + "\n" + `data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5",` + usage + `}}`,
		`event: content_block_delta` + "\n" + `data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}`,
		`event: message_delta` + "\n" + `data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},` + usage + `}`,
		`event: message_stop` + "\n" + `data: {"type":"message_stop"}`,
	} {
		_, _ = io.WriteString(w, ev+"\n\n")
		w.(http.Flusher).Flush()
	}
}

func stackChild(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(plainUpstream))
	defer up.Close()
	e := newEnv(t, withUpstream(up.URL))
	e.apiAccount("high", "h1")
	url := e.start()
	key := e.issue("high")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	defer client.CloseIdleConnections()
	do := func(target, key, model string, stream bool) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, target+"/v1/messages", strings.NewReader(msgBody(model, stream)))
		req.Header.Set("X-Api-Key", key)
		req.Header.Set("Anthropic-Version", "2023-06-01")
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s stream=%v: status %d: %s", model, stream, resp.StatusCode, b)
		}
	}
	// Steady state first: every Redis node's pool holds a few ready
	// connections. A new connection's handshake (HELLO) runs go-redis's
	// deepest frames, once per connection, on whichever goroutine needs
	// it, and background work (quota spares, usage flushes) holds idle
	// ones now and then.
	warmPools(t, e.apps[0].Store.Client, 4)
	// From here on no goroutine of this process may need more than 8 KiB
	// (the proxy's, the upstream's, this client's).
	debug.SetMaxStack(8 << 10)
	defer debug.SetMaxStack(1 << 30)
	for range 3 {
		for _, c := range []struct {
			model  string
			stream bool
		}{
			{"claude-sonnet-4-5", true},
			{"claude-sonnet-4-5", false},
			{"claude-haiku-4-5", true},
			{"claude-haiku-4-5", false},
		} {
			do(url, key, c.model, c.stream)
		}
	}
}

// warmPools opens and readies n connections to every master: n commands at
// once that each hold their connection 20 ms (WAIT for more replicas than
// there are returns at its timeout).
func warmPools(t *testing.T, c redis.UniversalClient, n int) {
	t.Helper()
	warm := func(ctx context.Context, node redis.UniversalClient) error {
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for range n {
			wg.Go(func() { errs <- node.Do(ctx, "WAIT", 100, 20).Err() })
		}
		wg.Wait()
		close(errs)
		return <-errs
	}
	ctx := context.Background()
	var err error
	if cc, ok := c.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error { return warm(ctx, m) })
	} else {
		err = warm(ctx, c)
	}
	if err != nil {
		t.Fatalf("warming the Redis pools: %v", err)
	}
}

package server

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/claude-route/claude-route/internal/testenv"
)

// BenchmarkProxy measures a whole customer request through the proxy
// (auth, binding, quota admission, forwarding, relay, usage tap) against the
// same request sent straight to the fake upstream in the same run: the
// "direct" sub-benchmark is the baseline, and the proxy's cost is the ratio.
func BenchmarkProxy(b *testing.B) {
	e := newEnvB(b)
	apiKey := e.apiAccount("high", "h1")
	url := e.start()
	key := e.issue("high")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	for _, c := range []struct {
		name, model string
		stream      bool
	}{
		{"plain-unlimited", "claude-haiku-4-5", false},
		{"stream-unlimited", "claude-haiku-4-5", true},
	} {
		body := msgBody(c.model, c.stream)
		do := func(b *testing.B, target, hdr, val string) {
			req, _ := http.NewRequest(http.MethodPost, target, strings.NewReader(body))
			req.Header.Set(hdr, val)
			req.Header.Set("Anthropic-Version", "2023-06-01")
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
		b.Run(c.name+"/direct", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				do(b, e.fake.URL()+"/v1/messages", "X-Api-Key", apiKey)
			}
		})
		b.Run(c.name+"/proxy", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				do(b, url+"/v1/messages", "X-Api-Key", key)
			}
		})
	}
}

// BenchmarkStoreDownRefusal measures how long a customer waits for the 503
// when the store hangs (SIGSTOP) or is gone: the target is well under a
// second (the request's store budget). Timing lives here, not in a unit
// test on a loaded machine.
func BenchmarkStoreDownRefusal(b *testing.B) {
	rs := testenv.StartRedis(b)
	e := newEnvB(b, withRedis(rs.URL()))
	e.apiAccount("trial", "t1")
	url := e.start()
	key := e.issue("trial")
	for _, c := range []struct {
		name     string
		down, up func()
	}{{"hung", rs.Pause, rs.Resume}, {"stopped", rs.Stop, rs.Start}} {
		b.Run(c.name, func(b *testing.B) {
			c.down()
			defer c.up()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if r := post(b, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.status != 503 {
					b.Fatalf("status %d", r.status)
				}
			}
		})
	}
}

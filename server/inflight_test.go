package server

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/internal/fakeupstream"
)

// padded is a sonnet request of about size bytes.
func padded(size int, stream bool) string {
	return fmt.Sprintf(`{"model":"claude-sonnet-4-5","max_tokens":5,"stream":%v,"messages":[{"role":"user","content":"%s"}]}`,
		stream, strings.Repeat("x", size))
}

// MAX_INFLIGHT_BODY_BYTES: a request whose body does not fit in the
// process's budget waits InflightWait, then gets 503 overloaded_error;
// once the bytes in flight are released, requests fit again.
func TestInflightBodyBudget(t *testing.T) {
	clk := clock.NewFake(time.Now())
	e := newEnv(t, withClock(clk), withServerConfig(func(c *Config) {
		c.MaxInflightBodyBytes = 256 << 10
		c.InflightWait = 2 * time.Second
	}))
	apiKey := e.apiAccount("high", "h1")
	url := e.start()
	key := e.issue("high")
	hold := make(chan struct{})
	e.fake.InjectFault(apiKey, fakeupstream.Fault{Hold: hold})
	first := make(chan reply, 1)
	go func() { first <- post(t, url, "/v1/messages", key, padded(180<<10, true)) }()
	srv := e.srvs[0]
	until(t, "the first body held upstream", func() bool { return e.fake.InFlight() == 1 })
	second := make(chan reply, 1)
	go func() { second <- post(t, url, "/v1/messages", key, padded(180<<10, false)) }()
	until(t, "the second body waiting for room", func() bool { return srv.inflight.Waiting() == 1 })
	clk.Advance(2 * time.Second)
	r := <-second
	if r.status != http.StatusServiceUnavailable || r.errType() != "overloaded_error" {
		t.Fatalf("over the budget: %d %s", r.status, r.body)
	}
	close(hold)
	if r := <-first; r.status != http.StatusOK {
		t.Fatalf("held request: %d %s", r.status, r.body)
	}
	srv.handlers.Wait()
	if n := srv.inflight.InUse(); n != 0 {
		t.Fatalf("%d bytes still held after every request ended", n)
	}
	if r := post(t, url, "/v1/messages", key, padded(180<<10, false)); r.status != http.StatusOK {
		t.Fatalf("after the budget freed: %d %s", r.status, r.body)
	}
}

// rss reads this process's resident set size.
func rss(t testing.TB) int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skipf("no /proc/self/statm: %v", err)
	}
	f := strings.Fields(string(b))
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// xs reads n bytes of 'x' without holding them: the attacker's side of the
// test must not be what the RSS measures.
type xs struct{ n int64 }

func (r *xs) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	n := 0
	for n < len(p) {
		n += copy(p[n:], xBlock)
	}
	r.n -= int64(len(p))
	return len(p), nil
}

var xBlock = []byte(strings.Repeat("x", 64<<10))

// Issue 12 (medium): 20 concurrent 30 MiB bodies sent with a valid but
// quota-exhausted key took RSS from 33 MiB to 1.37 GiB, each body read
// whole before admission. The key's concurrency place and the in-flight
// byte budget come first now, so at most N bodies of one key are held.
func TestLargeBodiesOnExhaustedKeyKeepRSSBounded(t *testing.T) {
	e := newEnv(t)
	trial, _ := e.tiers.Get("trial")
	trial.Quotas = map[string]int{"sonnet": 1}
	e.apiAccount("trial", "t1")
	url := e.start()
	key := e.issue("trial")
	if r := post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.status != http.StatusOK {
		t.Fatalf("first request: %d %s", r.status, r.body)
	}
	const bodies, size = 20, 30 << 20
	runtime.GC()
	debug.FreeOSMemory()
	base := rss(t)
	peak := base
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heapBase, heapPeak := int64(ms.HeapInuse), int64(ms.HeapInuse)
	upstreamBefore := e.fake.MessageCount()
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			if v := rss(t); v > peak {
				peak = v
			}
			runtime.ReadMemStats(&ms)
			if v := int64(ms.HeapInuse); v > heapPeak {
				heapPeak = v
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	prefix := `{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"user","content":"`
	suffix := `"}]}`
	var wg sync.WaitGroup
	statuses := make([]int, bodies)
	for i := 0; i < bodies; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			body := io.MultiReader(strings.NewReader(prefix), &xs{n: size}, strings.NewReader(suffix))
			req, _ := http.NewRequest(http.MethodPost, url+"/v1/messages", body)
			req.ContentLength = int64(len(prefix) + size + len(suffix))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Api-Key", key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}(i)
	}
	wg.Wait()
	close(stop)
	<-sampled
	for i, st := range statuses {
		// 429: quota exhausted or too many concurrent; 503: the store or
		// the byte budget was too slow for this machine's load. Never 200.
		if st != http.StatusTooManyRequests && st != http.StatusServiceUnavailable {
			t.Errorf("request %d: %d, want a refusal", i, st)
		}
	}
	if n := e.fake.MessageCount() - upstreamBefore; n != 0 {
		t.Fatalf("%d refused requests reached the upstream", n)
	}
	grew, heapGrew := peak-base, heapPeak-heapBase
	t.Logf("RSS base %d MiB, peak %d MiB (×%.2f of base), growth %d MiB; Go heap growth %d MiB; %d × %d MiB bodies (race detector: %v)",
		base>>20, peak>>20, float64(peak)/float64(base), grew>>20, heapGrew>>20, bodies, size>>20, raceOn)
	// Without the bound, all 20 bodies (600 MiB) are held at once. The
	// race detector's shadow memory inflates RSS, not the Go heap.
	if heapGrew > 320<<20 {
		t.Fatalf("Go heap grew by %d MiB: request bodies are not bounded", heapGrew>>20)
	}
	if !raceOn && grew > 320<<20 {
		t.Fatalf("RSS grew by %d MiB: request bodies are not bounded", grew>>20)
	}
}

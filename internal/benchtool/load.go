package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

func newFlags(name string) *flag.FlagSet { return flag.NewFlagSet(name, flag.ContinueOnError) }

// bufPool is httputil's BufferPool over sync.Pool.
type bufPool struct{ p sync.Pool }

func newBufPool() *bufPool {
	return &bufPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
}
func (b *bufPool) Get() []byte  { return *(b.p.Get().(*[]byte)) }
func (b *bufPool) Put(x []byte) { b.p.Put(&x) }

// body is a typical small Messages request.
func body(stream bool) []byte {
	b, _ := json.Marshal(map[string]any{"model": "claude-sonnet-4-5", "max_tokens": 256, "stream": stream,
		"messages": []map[string]any{{"role": "user", "content": strings.Repeat("Tell me about proxies. ", 40)}}})
	return b
}

// result is one request's outcome.
type result struct {
	lat, ttfb time.Duration
	err       string // "" when ok
}

type client struct {
	http   *http.Client
	url    string
	key    string
	stream bool
	body   []byte
}

func newClient(url, key string, c int, stream bool) *client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost, tr.MaxConnsPerHost = c, c, c
	tr.DisableCompression = true
	return &client{http: &http.Client{Transport: tr, Timeout: 2 * time.Minute}, url: url, key: key, stream: stream, body: body(stream)}
}

var messageStop = []byte("event: message_stop")

// do sends one request and reads the whole answer. A stream is ok only
// if it ends with message_stop; anything else is cut.
func (c *client) do(ctx context.Context) result {
	t0 := time.Now()
	var first time.Time
	trace := &httptrace.ClientTrace{GotFirstResponseByte: func() { first = time.Now() }}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodPost, c.url, bytes.NewReader(c.body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Anthropic-Version", "2023-06-01")
	req.Header.Set("X-Api-Key", c.key)
	resp, err := c.http.Do(req)
	if err != nil {
		return result{err: "transport"}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return result{err: "status_" + strconv.Itoa(resp.StatusCode)}
	}
	if !c.stream {
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return result{err: "body"}
		}
		return result{lat: time.Since(t0), ttfb: first.Sub(t0)}
	}
	// The first event is the stream's time to first byte.
	br := bufio.NewReaderSize(resp.Body, 8<<10)
	var last []byte
	gotFirst := false
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			if !gotFirst {
				first, gotFirst = time.Now(), true
			}
			if bytes.HasPrefix(line, []byte("event: ")) {
				last = append(last[:0], line...)
			}
		}
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if !errors.Is(err, io.EOF) || !bytes.HasPrefix(last, messageStop) {
				return result{err: "cut"}
			}
			return result{lat: time.Since(t0), ttfb: first.Sub(t0)}
		}
	}
}

type dist struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
}

func percentiles(ds []time.Duration) dist {
	if len(ds) == 0 {
		return dist{}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	at := func(q float64) float64 {
		return float64(ds[int(q*float64(len(ds)-1))]) / float64(time.Millisecond)
	}
	return dist{P50: at(0.50), P99: at(0.99)}
}

// loadResult is one cell's figures.
type loadResult struct {
	URL         string         `json:"url"`
	Stream      bool           `json:"stream"`
	Concurrency int            `json:"concurrency"`
	Seconds     float64        `json:"seconds"`
	Requests    int            `json:"requests"`
	OK          int            `json:"ok"`
	Errors      map[string]int `json:"errors"`
	RPS         float64        `json:"rps"`
	LatencyMS   dist           `json:"latency_ms"`
	TTFBMS      dist           `json:"ttfb_ms"`
	// AllocsPerRequest is the target's heap allocations per request.
	AllocsPerRequest float64 `json:"allocs_per_request"`
	// RedisPerRequest is Redis commands per request (INFO commandstats).
	RedisPerRequest float64 `json:"redis_per_request"`
	RSSMB           float64 `json:"rss_mb"`
}

// runLoad is closed-loop load: c workers, each sending its next request
// when the previous answer is complete, for d after an uncounted warm-up.
func runLoad(ctx context.Context, args []string) error {
	fs := newFlags("load")
	u := fs.String("url", "", "target URL")
	key := fs.String("key", "", "client key")
	c := fs.Int("c", 10, "concurrency")
	d := fs.Duration("d", 3*time.Second, "measured time")
	warm := fs.Duration("warmup", 500*time.Millisecond, "uncounted warm-up")
	stream := fs.Bool("stream", false, "streamed requests")
	stats := fs.String("stats", "", "URL of the target's /metrics or /bench/stats (allocations)")
	pid := fs.Int("pid", 0, "target's process id (RSS)")
	redisAddr := fs.String("redis", "", "host:port of the target's redis-server (commands per request)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cl := newClient(*u, *key, *c, *stream)
	var measuring atomic.Bool
	stopAt := time.Now().Add(*warm + *d)
	var mu sync.Mutex
	var lats, ttfbs []time.Duration
	errs := map[string]int{}
	var wg sync.WaitGroup
	for range *c {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(stopAt) {
				r := cl.do(ctx)
				if !measuring.Load() {
					continue
				}
				mu.Lock()
				if r.err != "" {
					errs[r.err]++
				} else {
					lats, ttfbs = append(lats, r.lat), append(ttfbs, r.ttfb)
				}
				mu.Unlock()
			}
		})
	}
	time.Sleep(*warm)
	m0, r0 := mallocs(*stats), redisCalls(ctx, *redisAddr)
	measuring.Store(true)
	t0 := time.Now()
	wg.Wait()
	el := time.Since(t0).Seconds()
	m1, r1 := mallocs(*stats), redisCalls(ctx, *redisAddr)
	n := len(lats)
	for _, v := range errs {
		n += v
	}
	res := loadResult{URL: *u, Stream: *stream, Concurrency: *c, Seconds: el, Requests: n, OK: len(lats), Errors: errs,
		RPS: float64(len(lats)) / el, LatencyMS: percentiles(lats), TTFBMS: percentiles(ttfbs), RSSMB: float64(rssKB(*pid)) / 1024}
	if n > 0 {
		// The requests of the warm-up's tail and the drain overlap the
		// window a little: a few per cent on c/n, no more.
		if m0 > 0 && m1 > m0 {
			res.AllocsPerRequest = float64(m1-m0) / float64(n)
		}
		if *redisAddr != "" {
			res.RedisPerRequest = float64(r1-r0-1) / float64(n) // minus the second INFO
		}
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// runHold keeps c streams open at once until total streams have run, and
// samples the target's RSS and goroutines while all c are open.
func runHold(ctx context.Context, args []string) error {
	fs := newFlags("hold")
	u := fs.String("url", "", "target URL")
	key := fs.String("key", "", "client key")
	c := fs.Int("c", 1000, "streams open at once")
	total := fs.Int("total", 1000, "streams to run in all")
	stats := fs.String("stats", "", "URL of the target's /metrics or /bench/stats (goroutines)")
	pid := fs.Int("pid", 0, "target's process id (RSS)")
	ramp := fs.Duration("ramp", 0, "spread the first streams' starts over this long (0: all at once)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cl := newClient(*u, *key, *c, true)
	var next, open, done atomic.Int64
	var mu sync.Mutex
	errs := map[string]int{}
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := range *c {
		wg.Go(func() {
			time.Sleep(*ramp * time.Duration(w) / time.Duration(*c))
			for ctx.Err() == nil && next.Add(1) <= int64(*total) {
				open.Add(1)
				r := cl.do(ctx)
				open.Add(-1)
				done.Add(1)
				if r.err != "" {
					mu.Lock()
					errs[r.err]++
					mu.Unlock()
				}
			}
		})
	}
	var maxRSS, maxG int64
	var samples int
	fin := make(chan struct{})
	go func() { wg.Wait(); close(fin) }()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
loop:
	for {
		select {
		case <-fin:
			break loop
		case <-tick.C:
		}
		if open.Load() < int64(*c)*95/100 {
			continue // ramping up or draining: not all streams open
		}
		samples++
		if r := rssKB(*pid); r > maxRSS {
			maxRSS = r
		}
		if g := goroutines(*stats); g > maxG {
			maxG = g
		}
	}
	cut := 0
	for _, v := range errs {
		cut += v
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"url": *u, "open": *c, "streams": done.Load(), "cut_or_failed": cut, "errors": errs,
		"seconds": time.Since(t0).Seconds(), "samples": samples,
		"rss_mb": float64(maxRSS) / 1024, "goroutines": maxG,
	})
}

// rssKB reads VmRSS of pid from /proc (Linux).
func rssKB(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// goroutines reads go_goroutines from Prometheus text, or "goroutines"
// from benchtool's own /bench/stats JSON.
func goroutines(url string) int64 {
	if url == "" {
		return 0
	}
	b := get(url)
	if strings.HasSuffix(url, "/metrics") {
		return int64(promValue(b, "go_goroutines"))
	}
	var s struct{ Goroutines int64 }
	_ = json.Unmarshal(b, &s)
	return s.Goroutines
}

// mallocs reads go_memstats_mallocs_total from Prometheus text, or
// "mallocs" from benchtool's /bench/stats JSON.
func mallocs(url string) uint64 {
	if url == "" {
		return 0
	}
	b := get(url)
	if strings.HasSuffix(url, "/metrics") {
		return uint64(promValue(b, "go_memstats_mallocs_total"))
	}
	var s struct{ Mallocs uint64 }
	_ = json.Unmarshal(b, &s)
	return s.Mallocs
}

func get(url string) []byte {
	resp, err := http.Get(url)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

func promValue(b []byte, name string) float64 {
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

// redisCalls sums the calls of every command in INFO commandstats (which
// counts the commands scripts run too).
func redisCalls(ctx context.Context, addr string) int64 {
	if addr == "" {
		return 0
	}
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		return 0
	}
	var n int64
	for _, line := range strings.Split(info, "\n") {
		_, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				x, _ := strconv.ParseInt(v, 10, 64)
				n += x
			}
		}
	}
	return n
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/keys"
)

// runScale is `scripts/bench scale`: n keys through claude-route's real
// paths (bulk issue by the admin batch endpoint, first requests through
// the proxy, sync after a FLUSHALL), with the figures of issue 27 as one
// JSON object on stdout.
func runScale(ctx context.Context, args []string) error {
	fs := newFlags("scale")
	base := fs.String("url", "", "claude-route base URL")
	admin := fs.String("admin", "", "admin token")
	redisAddr := fs.String("redis", "", "redis-server address")
	product := fs.String("product", "", "PRODUCT_DIR (read with the ledger's own reader)")
	tier := fs.String("tier", "bench", "tier to issue keys of")
	n := fs.Int("n", 100000, "keys")
	batch := fs.Int("batch", 1000, "keys per bulk issue")
	c := fs.Int("c", 50, "concurrent first requests")
	keyFile := fs.String("key-file", "", "write one issued key here (for the load that follows)")
	populate := fs.Bool("populate", false, "only issue the keys and make their first requests (a big ledger for scripts/perf-at-scale), then print those figures")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rdb := redis.NewClient(&redis.Options{Addr: *redisAddr})
	defer rdb.Close()
	hc := &http.Client{Timeout: 10 * time.Minute}
	out := map[string]any{"keys": *n}
	say := func(f string, a ...any) { fmt.Fprintf(os.Stderr, "scale: "+f+"\n", a...) }

	baseMem := usedMemory(ctx, rdb)

	// 1. Bulk issue, batch after batch: the first and the last take the
	// same time if a change costs the same at any ledger size.
	var raw []string
	var took []float64
	retried := 0
	for len(raw) < *n {
		cnt := min(*batch, *n-len(raw))
		t := time.Now()
		var res struct {
			Keys []struct {
				Key string `json:"key"`
			} `json:"keys"`
		}
		// A failed batch issued nothing (all or none): it is tried again,
		// and counted, as an operator would.
		var err error
		for try := range 3 {
			if err = adminCall(ctx, hc, *base, *admin, http.MethodPost, "/admin/api/keys/batch", map[string]any{"tier": *tier, "count": cnt}, &res); err == nil {
				break
			}
			retried++
			say("bulk issue at %d keys, try %d: %v", len(raw), try+1, err)
		}
		if err != nil {
			return fmt.Errorf("bulk issue at %d keys: %w", len(raw), err)
		}
		took = append(took, time.Since(t).Seconds())
		for _, k := range res.Keys {
			raw = append(raw, k.Key)
		}
		if len(took)%20 == 0 {
			say("issued %d keys (last batch %.3f s)", len(raw), took[len(took)-1])
		}
	}
	out["issue_batch_s"] = map[string]float64{"first": took[0], "last": took[len(took)-1], "median": median(took), "max": maxOf(took)}
	out["issue_total_s"] = sum(took)
	out["issue_batches_retried"] = retried
	out["redis_bytes_per_issued_key"] = float64(usedMemory(ctx, rdb)-baseMem) / float64(*n)
	if *keyFile != "" {
		if err := os.WriteFile(*keyFile, []byte(raw[0]), 0o600); err != nil {
			return err
		}
	}

	// The ledger as it is before the burst, read once: polls after the
	// burst then read only what the burst appended.
	watch, err := newLedgerWatch(ctx, *product)
	if err != nil {
		return err
	}

	// 2. First requests: every key binds on its first request.
	say("first requests of %d keys at c=%d", *n, *c)
	var next, failed atomic.Int64
	var firstErr sync.Once
	var wg sync.WaitGroup
	body := body(false)
	stopFollow := watch.follow(ctx)
	t := time.Now()
	for range *c {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(raw) || ctx.Err() != nil {
					return
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, *base+"/v1/messages", bytes.NewReader(body))
				req.Header.Set("x-api-key", raw[i])
				req.Header.Set("anthropic-version", "2023-06-01")
				req.Header.Set("content-type", "application/json")
				resp, err := hc.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
					firstErr.Do(func() { say("first failed request: %d %s", resp.StatusCode, b) })
				}
			}
		})
	}
	wg.Wait()
	burst := time.Since(t).Seconds()
	burstEnd := time.Now()
	// 3. The bindings in the ledger: first the writer's own count of
	// changes not yet written, then the files, read by a reader that read
	// the issued keys before the burst and followed it (scale_ledger.go).
	figs := map[string]any{}
	writerFigures(ctx, hc, *base, *admin, burstEnd, figs)
	stopFollow()
	out["first_use_s"] = burst
	out["first_use_per_s"] = float64(*n) / burst
	out["first_use_failed"] = failed.Load()

	ledgerBound, err := watch.filesFigures(ctx, rdb, burstEnd, figs)
	if err != nil {
		return err
	}
	out["bindings_in_ledger"] = figs

	if *populate {
		b, _ := json.MarshalIndent(out, "", "  ")
		fmt.Println(string(b))
		return nil
	}

	// 4. Redis memory per active key, once usage totals are flushed.
	time.Sleep(2 * time.Second)
	out["redis_bytes_per_active_key"] = float64(usedMemory(ctx, rdb)-baseMem) / float64(*n)
	// What one active key holds, Redis key by Redis key (MEMORY USAGE).
	h := keys.Hash(raw[1])
	perKey := map[string]int64{}
	it := rdb.Scan(ctx, 0, "*"+h+"*", 1000).Iterator()
	for it.Next(ctx) {
		name := it.Val()
		m, _ := rdb.MemoryUsage(ctx, name).Result()
		perKey[strings.ReplaceAll(name, h, "<h>")] = m
	}
	out["redis_keys_of_one_active_key"] = perKey

	// 5. Key list latency at n keys.
	lat := func(path string) (float64, error) {
		var ds []float64
		for range 5 {
			t := time.Now()
			if err := adminCall(ctx, hc, *base, *admin, http.MethodGet, path, nil, nil); err != nil {
				return 0, err
			}
			ds = append(ds, time.Since(t).Seconds()*1000)
		}
		return median(ds), nil
	}
	list := map[string]float64{}
	id := keys.ID(keys.Hash(raw[len(raw)/2]))
	for name, path := range map[string]string{
		"first_page_100":    "/admin/api/keys?limit=100",
		"page_1000":         "/admin/api/keys?limit=1000",
		"search_id":         "/admin/api/keys?q=" + url.QueryEscape(id),
		"search_no_match":   "/admin/api/keys?q=nothing-matches-this",
		"filter_account_10": "/admin/api/keys?limit=10&account=acct1",
	} {
		ms, err := lat(path)
		if err != nil {
			return fmt.Errorf("list %s: %w", name, err)
		}
		list[name] = ms
	}
	// The whole list, page after page.
	t = time.Now()
	pages, cursor := 0, ""
	for {
		var res struct {
			NextCursor *string `json:"next_cursor"`
		}
		p := "/admin/api/keys?limit=1000"
		if cursor != "" {
			p += "&cursor=" + url.QueryEscape(cursor)
		}
		if err := adminCall(ctx, hc, *base, *admin, http.MethodGet, p, nil, &res); err != nil {
			return err
		}
		pages++
		if res.NextCursor == nil {
			break
		}
		cursor = *res.NextCursor
	}
	list["all_pages_of_1000_s"] = time.Since(t).Seconds()
	out["key_list_ms"] = list
	out["key_list_pages"] = pages

	// 6. FLUSHALL, then a sync restores every key and binding.
	before, err := rdb.HGetAll(ctx, "cr:{pool}:bind").Result()
	if err != nil {
		return err
	}
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		return err
	}
	t = time.Now()
	// The server's store watchdog starts a sync as soon as it sees the
	// store emptied; this call runs one or joins that one. The figure is
	// the time until every binding is back and the sync has reported.
	if err := adminCall(ctx, hc, *base, *admin, http.MethodPost, "/admin/api/sync", nil, nil); err != nil {
		out["sync_call_error"] = err.Error()
	}
	for {
		nb, _ := rdb.HLen(ctx, "cr:{pool}:bind").Result()
		done, _ := rdb.Exists(ctx, "cr:sync:last").Result()
		// Every binding the ledger holds (a binding whose answer was
		// lost never reached it; the next sync writes it back).
		if int(nb) >= ledgerBound && done == 1 {
			break
		}
		if time.Since(t) > 5*time.Minute {
			out["sync_incomplete_bindings"] = nb
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	out["sync_after_flushall_s"] = time.Since(t).Seconds()
	after, err := rdb.HGetAll(ctx, "cr:{pool}:bind").Result()
	if err != nil {
		return err
	}
	same := 0
	for h, a := range before {
		if after[h] == a {
			same++
		}
	}
	out["bindings_before_flush"] = len(before)
	out["bindings_same_after_sync"] = same
	restored := 0
	it = rdb.Scan(ctx, 0, "cr:key:*", 1000).Iterator()
	for it.Next(ctx) {
		restored++
	}
	out["key_records_after_sync"] = restored

	b, _ := json.MarshalIndent(out, "", "  ")
	fmt.Println(string(b))
	return nil
}

func adminCall(ctx context.Context, hc *http.Client, base, token, method, path string, in, out any) error {
	var rd io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("content-type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// usedMemory is Redis's used_memory in bytes.
func usedMemory(ctx context.Context, rdb *redis.Client) int64 {
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0
	}
	for _, ln := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(ln, "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func maxOf(xs []float64) float64 {
	m := 0.0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

func sum(xs []float64) float64 {
	t := 0.0
	for _, x := range xs {
		t += x
	}
	return t
}

package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/keys"
)

// ledgerWatch measures issue 27's "every binding is in the ledger within
// 1 s of the burst's end" against what the writer did, not how fast a
// reader parses the files. Its reader reads the files once before the
// burst (the issued keys, tens of MB at 100,000 keys) and follows them
// during it, so a poll after the burst reads only the last appends, and
// every poll's read time is reported: the figure's resolution.
type ledgerWatch struct {
	reader *keys.Ledger
	first  time.Duration // the reader's first read, before the burst
}

func newLedgerWatch(ctx context.Context, product string) (*ledgerWatch, error) {
	w := &ledgerWatch{reader: keys.NewLedger(product, nil)}
	t := time.Now()
	if _, err := w.reader.All(ctx); err != nil {
		return nil, fmt.Errorf("ledger first read: %w", err)
	}
	w.first = time.Since(t)
	return w, nil
}

// follow keeps the reader up to date (it reads what was appended since
// its last look) once a second until the returned stop is called.
func (w *ledgerWatch) follow(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				// A lookup of no key: the reader catches up, nothing is copied.
				_, _ = w.reader.Get(ctx, "")
			}
		}
	}()
	return func() { cancel(); <-done }
}

// writerFigures polls, from burstEnd on, the replica's own count of
// ledger changes not yet written (/metrics: queued, or in the commit
// being fsynced) until it is 0: the writer's state, exact to one scrape
// (milliseconds). Called first thing after the burst.
func writerFigures(ctx context.Context, hc *http.Client, base, admin string, burstEnd time.Time, out map[string]any) {
	var scrapes []float64
	for i := 0; ; i++ {
		t := time.Now()
		n, err := pendingChanges(ctx, hc, base, admin)
		d := time.Since(t)
		scrapes = append(scrapes, d.Seconds())
		if err != nil {
			out["writer_pending_error"] = err.Error()
			break
		}
		if i == 0 {
			out["writer_pending_at_first_scrape"] = n
		}
		if n == 0 {
			out["writer_idle_after_s"] = time.Since(burstEnd).Seconds()
			break
		}
		if time.Since(burstEnd) > 30*time.Second {
			out["writer_pending_after_30s"] = n
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	out["metrics_scrape_s"] = map[string]float64{"median": median(scrapes), "max": maxOf(scrapes), "scrapes": float64(len(scrapes))}
}

// filesFigures polls the ledger's files until they hold every binding
// the pool holds in Redis (the keys actually bound: a key whose first
// request failed may have none), each key on the same account. It
// returns how many bindings the files hold.
func (w *ledgerWatch) filesFigures(ctx context.Context, rdb *redis.Client, burstEnd time.Time, out map[string]any) (int, error) {
	pool, err := rdb.HGetAll(ctx, "cr:{pool}:bind").Result()
	if err != nil {
		return 0, fmt.Errorf("pool bindings: %w", err)
	}
	out["pool_bindings"] = len(pool)
	out["reader_first_read_s"] = w.first.Seconds()
	var reads []float64
	held := 0
	for {
		t := time.Now()
		n := 0
		// In place (no copy, no sort): the poll costs the read of what
		// was appended since the last one, and one pass over the records.
		err := w.reader.Each(ctx, keys.Filter{}, time.Now(), func(r keys.Record) {
			if a, ok := pool[r.Hash]; ok && r.Account == a {
				n++
			}
		})
		if err != nil {
			return 0, err
		}
		d := time.Since(t)
		reads = append(reads, d.Seconds())
		held = n
		if held == len(pool) {
			out["all_in_files_after_s"] = time.Since(burstEnd).Seconds()
			out["all_in_files_poll_read_s"] = d.Seconds()
			break
		}
		if time.Since(burstEnd) > 30*time.Second {
			out["in_files_after_30s"] = held
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	out["in_files"] = held
	out["poll_read_s"] = map[string]float64{"median": median(reads), "max": maxOf(reads), "polls": float64(len(reads))}
	return held, nil
}

// pendingChanges reads claude_route_ledger_pending_changes from /metrics.
func pendingChanges(ctx context.Context, hc *http.Client, base, admin string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("/metrics: %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "claude_route_ledger_pending_changes "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return int(f), err
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("/metrics has no claude_route_ledger_pending_changes")
}

package usage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/internal/testenv"
)

// t0 is mid-bucket (buckets start on multiples of 5 minutes).
var t0 = time.Date(2026, 1, 1, 12, 2, 30, 0, time.UTC)

func newMini(t *testing.T) (*Recorder, *clock.Fake, func() []string) {
	t.Helper()
	rdb, m := testenv.Mini(t)
	clk := clock.NewFake(t0)
	return NewRecorder(rdb, clk), clk, m.Keys
}

// mustRecord records and flushes at once, so these tests read the store's
// layout; flush_test.go checks that unflushed totals read the same.
func mustRecord(t *testing.T, r *Recorder, key, acct, family string, u Usage) {
	t.Helper()
	if err := r.Record(context.Background(), key, acct, family, u); err != nil {
		t.Fatalf("Record: %v", err)
	}
	if err := r.Flush(context.Background()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

func mustSummary(t *testing.T, f func(context.Context) (Summary, error)) Summary {
	t.Helper()
	s, err := f(context.Background())
	if err != nil {
		t.Fatalf("summary: %v", err)
	}
	return s
}

func tot(req, in, out, cc, cr int64) Totals {
	return Totals{Requests: req, Usage: Usage{InputTokens: in, OutputTokens: out, CacheCreationInputTokens: cc, CacheReadInputTokens: cr}}
}

func TestRecorderTotals(t *testing.T) {
	r, clk, _ := newMini(t)
	mustRecord(t, r, "ka", "acct1", "sonnet", Usage{10, 20, 3, 4, 0})
	clk.Advance(time.Minute)
	mustRecord(t, r, "ka", "acct1", "opus", Usage{1, 2, 0, 0, 0})
	mustRecord(t, r, "kb", "acct1", "sonnet", Usage{100, 200, 0, 50, 0})
	mustRecord(t, r, "kc", "acct2", "sonnet", Usage{}) // usage unknown: still a request

	tests := []struct {
		name       string
		get        func(context.Context) (Summary, error)
		want       Totals
		wantFamily map[string]Totals
	}{
		{"key a", func(c context.Context) (Summary, error) { return r.Key(c, "ka") }, tot(2, 11, 22, 3, 4),
			map[string]Totals{"sonnet": tot(1, 10, 20, 3, 4), "opus": tot(1, 1, 2, 0, 0)}},
		{"key b", func(c context.Context) (Summary, error) { return r.Key(c, "kb") }, tot(1, 100, 200, 0, 50),
			map[string]Totals{"sonnet": tot(1, 100, 200, 0, 50)}},
		{"unknown key", func(c context.Context) (Summary, error) { return r.Key(c, "nope") }, Totals{}, nil},
		{"account 1", func(c context.Context) (Summary, error) { return r.Account(c, "acct1") }, tot(3, 111, 222, 3, 54),
			map[string]Totals{"sonnet": tot(2, 110, 220, 3, 54), "opus": tot(1, 1, 2, 0, 0)}},
		{"account 2", func(c context.Context) (Summary, error) { return r.Account(c, "acct2") }, tot(1, 0, 0, 0, 0),
			map[string]Totals{"sonnet": tot(1, 0, 0, 0, 0)}},
		{"overall", r.Overall, tot(4, 111, 222, 3, 54),
			map[string]Totals{"sonnet": tot(3, 110, 220, 3, 54), "opus": tot(1, 1, 2, 0, 0)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := mustSummary(t, tc.get)
			if s.Total != tc.want || s.Last5h != tc.want || s.Last24h != tc.want {
				t.Fatalf("got %+v, want all three = %+v", s, tc.want)
			}
			if fmt.Sprint(s.ByFamily) != fmt.Sprint(tc.wantFamily) {
				t.Fatalf("by family %v, want %v", s.ByFamily, tc.wantFamily)
			}
		})
	}
}

func TestRecorderRollingWindows(t *testing.T) {
	// Recorded at 12:02:30, in the 12:00 bucket. The 5h window keeps the
	// bucket while it overlaps [now-5h, now]: until now reaches 17:05.
	tests := []struct {
		after       time.Duration
		in5h, in24h bool
	}{
		{0, true, true},
		{4*time.Hour + 59*time.Minute, true, true},
		{5*time.Hour + 2*time.Minute + 29*time.Second, true, true},
		{5*time.Hour + 2*time.Minute + 30*time.Second, false, true},
		{6 * time.Hour, false, true},
		{24*time.Hour + 2*time.Minute + 29*time.Second, false, true},
		{24*time.Hour + 2*time.Minute + 30*time.Second, false, false},
		{48 * time.Hour, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.after.String(), func(t *testing.T) {
			r, clk, _ := newMini(t)
			u := Usage{InputTokens: 7, OutputTokens: 9}
			mustRecord(t, r, "k", "a", "sonnet", u)
			clk.Advance(tc.after)
			// Traffic now is always in both windows.
			mustRecord(t, r, "k", "a", "sonnet", Usage{InputTokens: 1})
			want := func(in bool) Totals {
				if in {
					return tot(2, 8, 9, 0, 0)
				}
				return tot(1, 1, 0, 0, 0)
			}
			for name, get := range map[string]func(context.Context) (Summary, error){
				"key":     func(c context.Context) (Summary, error) { return r.Key(c, "k") },
				"account": func(c context.Context) (Summary, error) { return r.Account(c, "a") },
				"overall": r.Overall,
			} {
				s := mustSummary(t, get)
				if s.Total != tot(2, 8, 9, 0, 0) {
					t.Errorf("%s: total %+v lost data", name, s.Total)
				}
				if s.Last5h != want(tc.in5h) || s.Last24h != want(tc.in24h) {
					t.Errorf("%s: 5h %+v (want %+v), 24h %+v (want %+v)", name, s.Last5h, want(tc.in5h), s.Last24h, want(tc.in24h))
				}
			}
		})
	}
}

func TestRecorderBucketsExpire(t *testing.T) {
	rdb, m := testenv.Mini(t)
	clk := clock.NewFake(t0)
	r := NewRecorder(rdb, clk)
	mustRecord(t, r, "k", "a", "sonnet", Usage{InputTokens: 5})
	clk.Advance(10 * time.Minute)
	mustRecord(t, r, "k", "a", "sonnet", Usage{InputTokens: 5})

	var buckets, totals, days int
	for _, k := range m.Keys() {
		if strings.Contains(k, ":flushed:") {
			if ttl := m.TTL(k); ttl != markerTTL {
				t.Errorf("flush marker %s TTL %v, want %v", k, ttl, markerTTL)
			}
			continue
		}
		if strings.HasSuffix(k, "}") {
			totals++
			if ttl := m.TTL(k); ttl != 0 {
				t.Errorf("totals %s has TTL %v; lifetime totals must persist", k, ttl)
			}
			continue
		}
		if strings.Contains(k, ":d:") {
			days++
			if ttl := m.TTL(k); ttl != DayTTL {
				t.Errorf("day %s TTL %v, want %v", k, ttl, DayTTL)
			}
			continue
		}
		buckets++
		if ttl := m.TTL(k); ttl <= 24*time.Hour+BucketSize || ttl > BucketTTL {
			t.Errorf("bucket %s TTL %v, want just over the 24h window", k, ttl)
		}
	}
	if totals != 3 || buckets != 6 || days != 3 {
		t.Fatalf("%d totals, %d buckets, %d days, want 3, 6 and 3: %v", totals, buckets, days, m.Keys())
	}
	m.FastForward(BucketTTL)
	if keys := m.Keys(); len(keys) != 6 {
		t.Fatalf("after the TTL %v remain, want only the 3 totals and 3 days", keys)
	}
	s := mustSummary(t, func(c context.Context) (Summary, error) { return r.Key(c, "k") })
	if s.Total != tot(2, 10, 0, 0, 0) {
		t.Fatalf("total %+v", s.Total)
	}
}

func TestRecorderForget(t *testing.T) {
	r, clk, keys := newMini(t)
	for range 30 { // spread over a day of buckets
		mustRecord(t, r, "gone", "a", "sonnet", Usage{InputTokens: 1})
		mustRecord(t, r, "kept", "a", "sonnet", Usage{InputTokens: 1})
		clk.Advance(47 * time.Minute)
	}
	if err := r.Forget(context.Background(), "gone"); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys() {
		if strings.Contains(k, "key:gone") {
			t.Errorf("%s survived Forget", k)
		}
	}
	if s := mustSummary(t, func(c context.Context) (Summary, error) { return r.Key(c, "gone") }); s.Total != (Totals{}) || s.Last24h != (Totals{}) {
		t.Errorf("forgotten key still reports %+v", s)
	}
	if s := mustSummary(t, func(c context.Context) (Summary, error) { return r.Key(c, "kept") }); s.Total.Requests != 30 {
		t.Errorf("other key lost data: %+v", s)
	}
	if s := mustSummary(t, func(c context.Context) (Summary, error) { return r.Account(c, "a") }); s.Total.Requests != 60 {
		t.Errorf("account usage must stay (the traffic happened): %+v", s)
	}
}

func TestRecorderRejectsInvalid(t *testing.T) {
	r, _, keys := newMini(t)
	tests := []struct {
		name, key, acct string
		u               Usage
	}{
		{"no key", "", "a", Usage{}},
		{"no account", "k", "", Usage{}},
		{"negative", "k", "a", Usage{OutputTokens: -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := r.Record(context.Background(), tc.key, tc.acct, "sonnet", tc.u)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
	if k := keys(); len(k) != 0 {
		t.Fatalf("invalid records wrote %v", k)
	}
}

func TestRecorderStoreDown(t *testing.T) {
	m := miniredis.RunT(t)
	// No retries: the failure is what is tested, not the client's backoff.
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{m.Addr()}, MaxRetries: -1, DialerRetries: 1, DialerRetryTimeout: time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })
	r := NewRecorder(rdb, clock.NewFake(t0))
	m.Close()
	if err := r.Record(context.Background(), "k", "a", "sonnet", Usage{}); err != nil {
		t.Fatalf("Record needs no store: %v", err)
	}
	if err := r.Flush(context.Background()); err == nil {
		t.Fatal("Flush succeeded with the store down")
	}
	if r.Unflushed() != 3 {
		t.Fatalf("%d subjects kept after a failed flush, want 3", r.Unflushed())
	}
	if _, err := r.Overall(context.Background()); err == nil {
		t.Fatal("Overall succeeded with the store down")
	}
}

func TestRecorderHonoursContext(t *testing.T) {
	r, _, _ := newMini(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Record(ctx, "k", "a", "sonnet", Usage{}); err != nil {
		t.Fatalf("Record: %v (it only counts in memory)", err)
	}
	if err := r.Flush(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Flush: %v, want context.Canceled", err)
	}
	if _, err := r.Key(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Key: %v, want context.Canceled", err)
	}
	if err := r.Forget(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Forget: %v, want context.Canceled", err)
	}
}

// Concurrent Record calls from many goroutines (as from many proxy
// handlers) must sum exactly on a real Redis.
func TestRecorderConcurrentRealRedis(t *testing.T) {
	rdb := testenv.Redis(t, 5)
	clk := clock.NewFake(t0)
	r := NewRecorder(rdb, clk)
	const workers, each = 8, 40
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				u := Usage{InputTokens: int64(i), OutputTokens: 2, CacheCreationInputTokens: int64(w), CacheReadInputTokens: 1}
				if err := r.Record(ctx, fmt.Sprintf("key%d", w%2), fmt.Sprintf("acct%d", w%3), "sonnet", u); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	r = NewRecorder(rdb, clk) // another replica: reads the store only
	sumI := int64(each * (each - 1) / 2)
	// Workers 0,2,4,6 use key0; 1,3,5,7 use key1.
	want0 := tot(4*each, 4*sumI, 4*each*2, each*(0+2+4+6), 4*each)
	want1 := tot(4*each, 4*sumI, 4*each*2, each*(1+3+5+7), 4*each)
	all := want0
	all.add(want1)
	for name, c := range map[string]struct {
		get  func(context.Context) (Summary, error)
		want Totals
	}{
		"key0":    {func(c context.Context) (Summary, error) { return r.Key(c, "key0") }, want0},
		"key1":    {func(c context.Context) (Summary, error) { return r.Key(c, "key1") }, want1},
		"overall": {r.Overall, all},
	} {
		s := mustSummary(t, c.get)
		if s.Total != c.want || s.Last5h != c.want || s.Last24h != c.want {
			t.Errorf("%s: %+v, want %+v", name, s, c.want)
		}
	}
	var accts Totals
	for a := range 3 {
		s := mustSummary(t, func(c context.Context) (Summary, error) { return r.Account(c, fmt.Sprintf("acct%d", a)) })
		accts.add(s.Total)
	}
	if accts != all {
		t.Errorf("accounts sum to %+v, want %+v", accts, all)
	}
	if ttl := rdb.TTL(ctx, bucketKey(overallSubject(), bucketStart(t0))).Val(); ttl <= 24*time.Hour {
		t.Errorf("bucket TTL %v", ttl)
	}
}

// Last30d and the per-day export read the same daily buckets, split by
// family; a day older than the window drops out of Last30d but stays in
// the export until DayTTL.
func TestRecorderDays(t *testing.T) {
	rdb, _ := testenv.Mini(t)
	clk := clock.NewFake(t0)
	r := NewRecorder(rdb, clk)
	mustRecord(t, r, "k", "a", "opus", Usage{InputTokens: 5, OutputTokens: 1})
	clk.Advance(29 * DaySize)
	mustRecord(t, r, "k", "a", "sonnet", Usage{InputTokens: 7})
	s := mustSummary(t, func(c context.Context) (Summary, error) { return r.Key(c, "k") })
	if s.Last30d != tot(2, 12, 1, 0, 0) || s.Families.Last30d["opus"] != tot(1, 5, 1, 0, 0) || s.Families.Last24h["sonnet"] != tot(1, 7, 0, 0, 0) {
		t.Fatalf("30d %+v families %+v", s.Last30d, s.Families)
	}
	clk.Advance(DaySize)
	s = mustSummary(t, func(c context.Context) (Summary, error) { return r.Key(c, "k") })
	if s.Last30d != tot(1, 7, 0, 0, 0) {
		t.Fatalf("30d after a day %+v, want only the sonnet day", s.Last30d)
	}
	days, err := r.KeyDays(context.Background(), "k", t0, clk.Now())
	if err != nil || len(days) != 31 {
		t.Fatalf("%d days, %v", len(days), err)
	}
	if days[0].Totals != tot(1, 5, 1, 0, 0) || days[29].ByFamily["sonnet"] != tot(1, 7, 0, 0, 0) || days[30].Totals != (Totals{}) {
		t.Fatalf("days %+v", days)
	}
	if !days[0].Start.Equal(time.Unix(dayStart(t0), 0)) {
		t.Fatalf("first day starts %v", days[0].Start)
	}
}

// Hashes written before the short field names (requests, input, …) read
// as before, and new traffic recorded into the same hashes adds to them.
func TestOldFieldNamesStillCount(t *testing.T) {
	rdb, _ := testenv.Mini(t)
	clk := clock.NewFake(t0)
	r := NewRecorder(rdb, clk)
	ctx := context.Background()
	old := []any{"requests", 2, "input", 10, "output", 4, "cache_read", 7,
		"f:sonnet:requests", 2, "f:sonnet:input", 10, "f:sonnet:output", 4, "f:sonnet:cache_read", 7,
		"m:claude-sonnet-4-5:requests", 2, "m:claude-sonnet-4-5:input", 10, "m:claude-sonnet-4-5:output", 4, "m:claude-sonnet-4-5:cache_read", 7}
	sub := keySubject("k")
	for _, k := range []string{totalsKey(sub), bucketKey(sub, bucketStart(clk.Now())), dayKey(sub, dayStart(clk.Now()))} {
		if err := rdb.HSet(ctx, k, old...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.RecordModel(ctx, "k", "a", "sonnet", "claude-sonnet-4-5", Usage{InputTokens: 1, OutputTokens: 1, CacheReadInputTokens: 1}); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	s, err := NewRecorder(rdb, clk).Key(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	want := tot(3, 11, 5, 0, 8)
	for name, got := range map[string]Totals{"total": s.Total, "5h": s.Last5h, "24h": s.Last24h, "30d": s.Last30d,
		"family": s.ByFamily["sonnet"], "model": s.ByModel["claude-sonnet-4-5"], "family 5h": s.Families.Last5h["sonnet"],
		"model 30d": s.Models.Last30d["claude-sonnet-4-5"]} {
		if got != want {
			t.Errorf("%s: %+v, want %+v", name, got, want)
		}
	}
}

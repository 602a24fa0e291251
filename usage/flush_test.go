package usage

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/internal/testenv"
)

// record adds without flushing.
func record(t *testing.T, r *Recorder, key, acct, family string, u Usage) {
	t.Helper()
	if err := r.Record(context.Background(), key, acct, family, u); err != nil {
		t.Fatalf("Record: %v", err)
	}
}

func flush(t *testing.T, r *Recorder) {
	t.Helper()
	if err := r.Flush(context.Background()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

// views is every read a view makes of the recorder, for comparison.
func views(t *testing.T, r *Recorder, now time.Time) map[string]any {
	t.Helper()
	ctx := context.Background()
	out := map[string]any{}
	for _, k := range []string{"ka", "kb"} {
		s, err := r.Key(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		out["key "+k] = s
		days, err := r.KeyDays(ctx, k, now.Add(-40*DaySize), now)
		if err != nil {
			t.Fatal(err)
		}
		out["days "+k] = days
	}
	for _, a := range []string{"a1", "a2"} {
		s, err := r.Account(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		out["account "+a] = s
	}
	s, err := r.Overall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out["overall"] = s
	return out
}

// Unflushed totals read exactly as flushed ones: the replica that holds
// them adds them to every view (windows, families, days), and after the
// flush any replica reads the same from the store, with nothing counted
// twice by the one that flushed.
func TestUnflushedReadsAsFlushed(t *testing.T) {
	rdb, _ := testenv.Mini(t)
	clk := clock.NewFake(t0)
	r := NewRecorder(rdb, clk)
	// Spread over buckets, days and windows; some usage flushed early.
	steps := []struct {
		key, acct, fam string
		u              Usage
		after          time.Duration
		flush          bool
	}{
		{"ka", "a1", "sonnet", Usage{10, 20, 3, 4, 0}, 0, true},
		{"ka", "a1", "opus", Usage{1, 2, 0, 0, 0}, 40 * DaySize, false},
		{"kb", "a2", "", Usage{5, 0, 0, 0, 0}, 20 * DaySize, false},
		{"ka", "a2", "sonnet", Usage{7, 7, 7, 7, 0}, 20 * time.Hour, false},
		{"kb", "a1", "opus", Usage{3, 1, 0, 2, 0}, 3 * time.Hour, false},
		{"ka", "a1", "sonnet", Usage{2, 2, 0, 0, 0}, 7 * time.Minute, false},
		{"ka", "a1", "sonnet", Usage{1, 1, 0, 0, 0}, time.Second, false},
	}
	for _, s := range steps {
		clk.Advance(s.after)
		record(t, r, s.key, s.acct, s.fam, s.u)
		if s.flush {
			flush(t, r)
		}
	}
	now := clk.Now()
	other := NewRecorder(rdb, clk)
	before := views(t, r, now)
	if reflect.DeepEqual(before, views(t, other, now)) {
		t.Fatal("another replica already sees the unflushed totals: nothing was held back")
	}
	flush(t, r)
	if r.Unflushed() != 0 {
		t.Fatalf("%d subjects left after a flush", r.Unflushed())
	}
	for name, got := range map[string]map[string]any{"same replica": views(t, r, now), "other replica": views(t, other, now)} {
		if !reflect.DeepEqual(got, before) {
			t.Errorf("%s after flush:\n got %+v\nwant %+v", name, got, before)
		}
	}
	// A few windows later the held-back figures agree with the store's too.
	clk.Advance(6 * time.Hour)
	record(t, r, "ka", "a1", "sonnet", Usage{1, 0, 0, 0, 0})
	held := views(t, r, clk.Now())
	flush(t, r)
	if got := views(t, other, clk.Now()); !reflect.DeepEqual(got, held) {
		t.Errorf("after 6 h:\n got %+v\nwant %+v", got, held)
	}
}

// lossyHook counts pipelines and reports the first lose of them as
// failed once run, as a connection cut after Redis applied them would.
type lossyHook struct {
	mu    sync.Mutex
	lose  int
	trips int
}

func (h *lossyHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *lossyHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return next
}
func (h *lossyHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		switch cmds[0].Name() {
		case "hello", "select", "client", "auth":
			return err // a new connection's set-up, not a flush
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		h.trips++
		if err == nil && h.lose > 0 {
			h.lose--
			return errors.New("read tcp: i/o timeout (answer lost)")
		}
		return err
	}
}

// A flush whose answer is lost is sent again as the same batch, and the
// store applies it once: totals stay exact (real Redis: the script's
// check-and-apply is atomic there).
func TestFlushRetryNeverCountsTwice(t *testing.T) {
	rdb := testenv.Redis(t, 5)
	hook := &lossyHook{lose: 2}
	rdb.AddHook(hook)
	clk := clock.NewFake(t0)
	r := NewRecorder(rdb, clk)
	ctx := context.Background()
	record(t, r, "k", "a", "sonnet", Usage{InputTokens: 10, OutputTokens: 1})
	if err := r.Flush(ctx); err == nil {
		t.Fatal("the lost answer was not reported")
	}
	// New traffic while the batch is in doubt goes to the next batch.
	record(t, r, "k", "a", "sonnet", Usage{InputTokens: 5})
	if err := r.Flush(ctx); err == nil {
		t.Fatal("the second lost answer was not reported")
	}
	flush(t, r) // the in-doubt batch, applied already: skipped
	flush(t, r) // the second batch
	if r.Unflushed() != 0 {
		t.Fatalf("%d subjects unflushed", r.Unflushed())
	}
	want := tot(2, 15, 1, 0, 0)
	other := NewRecorder(rdb, clk)
	for name, get := range map[string]func(context.Context) (Summary, error){
		"key":     func(c context.Context) (Summary, error) { return other.Key(c, "k") },
		"account": func(c context.Context) (Summary, error) { return other.Account(c, "a") },
		"overall": other.Overall,
	} {
		s := mustSummary(t, get)
		if s.Total != want || s.Last5h != want || s.Last30d != want || s.ByFamily["sonnet"] != want {
			t.Errorf("%s: %+v, want %+v once", name, s, want)
		}
	}
}

// A store that lost its scripts (restart, failover) gets the batch by
// EVAL: no flush fails for it.
func TestFlushAfterScriptFlush(t *testing.T) {
	rdb := testenv.Redis(t, 5)
	r := NewRecorder(rdb, clock.NewFake(t0))
	record(t, r, "k", "a", "sonnet", Usage{InputTokens: 1})
	flush(t, r)
	if err := rdb.ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	record(t, r, "k", "a", "sonnet", Usage{InputTokens: 1})
	flush(t, r)
	if s := mustSummary(t, func(c context.Context) (Summary, error) { return NewRecorder(rdb, clock.NewFake(t0)).Key(c, "k") }); s.Total != tot(2, 2, 0, 0, 0) {
		t.Fatalf("total %+v", s.Total)
	}
}

// One flush is one round trip, however many requests and subjects it
// carries, and no request costs a command of its own.
func TestFlushIsOnePipeline(t *testing.T) {
	rdb := testenv.Redis(t, 5)
	ctx := context.Background()
	r := NewRecorder(rdb, clock.NewFake(t0))
	if err := applyScript.Load(ctx, rdb).Err(); err != nil {
		t.Fatal(err)
	}
	hook := &lossyHook{}
	rdb.AddHook(hook)
	for i := range 500 {
		record(t, r, fmt.Sprintf("k%d", i%20), fmt.Sprintf("a%d", i%3), "sonnet", Usage{InputTokens: 3, OutputTokens: 2})
	}
	if hook.trips != 0 {
		t.Fatalf("Record made %d round trips", hook.trips)
	}
	flush(t, r)
	if hook.trips != 1 {
		t.Fatalf("flush made %d round trips, want 1", hook.trips)
	}
	s := mustSummary(t, func(c context.Context) (Summary, error) { return NewRecorder(rdb, clock.NewFake(t0)).Overall(c) })
	if s.Total != tot(500, 1500, 1000, 0, 0) {
		t.Fatalf("overall %+v", s.Total)
	}
}

// Forget drops the key's unflushed totals as well: a flush after it does
// not bring the key back.
func TestForgetDropsUnflushed(t *testing.T) {
	r, _, keys := newMini(t)
	record(t, r, "gone", "a", "sonnet", Usage{InputTokens: 1})
	if err := r.Forget(context.Background(), "gone"); err != nil {
		t.Fatal(err)
	}
	flush(t, r)
	for _, k := range keys() {
		if strings.Contains(k, "key:gone") {
			t.Errorf("%s written after Forget", k)
		}
	}
	if s := mustSummary(t, func(c context.Context) (Summary, error) { return r.Account(c, "a") }); s.Total.Requests != 1 {
		t.Errorf("the account's usage must stay: %+v", s.Total)
	}
}

// BenchmarkRecord is the hot path's whole cost of usage accounting.
func BenchmarkRecord(b *testing.B) {
	rdb, _ := testenv.Mini(b)
	r := NewRecorder(rdb, clock.Real{})
	ctx := context.Background()
	u := Usage{InputTokens: 100, OutputTokens: 20}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = r.Record(ctx, "key", "acct", "sonnet", u)
		}
	})
}

// A flush marker outlives its batch only until the next flush: once a
// batch is confirmed no retry of it can come, so the next batch deletes
// the markers it does not overwrite, and a replica with nothing more to
// write makes one last round trip for them, then none. (Issue 27: 152
// bytes of Redis per key for 25 hours after its last request.)
func TestFlushMarkersGoOnceTheBatchIsConfirmed(t *testing.T) {
	rdb := testenv.Redis(t, 5)
	ctx := context.Background()
	r := NewRecorder(rdb, clock.NewFake(t0))
	hook := &lossyHook{lose: 1}
	rdb.AddHook(hook)
	marker := func(key string) bool {
		t.Helper()
		n, err := rdb.Exists(ctx, markerKey(keySubject(key), r.buf.replica)).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	record(t, r, "k1", "a", "sonnet", Usage{InputTokens: 1})
	if err := r.Flush(ctx); err == nil {
		t.Fatal("the lost answer was not reported")
	}
	flush(t, r) // the retry: the marker made it count once
	if !marker("k1") {
		t.Fatal("no marker after the batch")
	}
	record(t, r, "k2", "a", "sonnet", Usage{InputTokens: 2})
	flush(t, r)
	if marker("k1") || !marker("k2") {
		t.Fatalf("after the next batch: k1's marker %v (want gone), k2's %v (want there)", marker("k1"), marker("k2"))
	}
	flush(t, r) // nothing recorded: deletes k2's marker
	if marker("k2") {
		t.Fatal("k2's marker outlived an empty flush")
	}
	trips := hook.trips
	flush(t, r)
	if hook.trips != trips {
		t.Fatalf("an idle flush made %d round trips", hook.trips-trips)
	}
	other := NewRecorder(rdb, clock.NewFake(t0))
	for key, want := range map[string]Totals{"k1": tot(1, 1, 0, 0, 0), "k2": tot(1, 2, 0, 0, 0)} {
		if s := mustSummary(t, func(c context.Context) (Summary, error) { return other.Key(c, key) }); s.Total != want {
			t.Fatalf("%s: %+v, want %+v", key, s.Total, want)
		}
	}
}

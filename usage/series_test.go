package usage

import (
	"context"
	"testing"
	"time"
)

// TestSeries: 288 five-minute points ending with the current bucket,
// flushed and unflushed traffic in its own bucket, older traffic gone.
func TestSeries(t *testing.T) {
	r, clk, _ := newMini(t)
	ctx := context.Background()
	mustRecord(t, r, "ka", "a1", "sonnet", Usage{10, 20, 3, 4, 0}) // 37 tokens at t0
	clk.Advance(25 * time.Hour)                                    // out of the series
	mustRecord(t, r, "ka", "a1", "sonnet", Usage{1, 1, 0, 0, 0})
	clk.Advance(10 * time.Minute)
	mustRecord(t, r, "kb", "a1", "sonnet", Usage{5, 5, 0, 0, 0})
	// Not flushed: counted from this replica's memory.
	if err := r.Record(ctx, "ka", "a1", "sonnet", Usage{2, 2, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		key        string
		reqs, toks int64
		at         []int // indexes from the end: 0 is the current bucket
	}{
		{"ka", 2, 6, []int{0, 2}},
		{"kb", 1, 10, []int{0}},
		{"", 3, 16, []int{0, 2}},
	} {
		pts, err := r.Series(ctx, c.key)
		if err != nil {
			t.Fatal(err)
		}
		if len(pts) != SeriesPoints || SeriesPoints != 288 {
			t.Fatalf("%q: %d points, want 288", c.key, len(pts))
		}
		last := pts[len(pts)-1]
		if !last.Start.Equal(time.Unix(bucketStart(clk.Now()), 0)) || !pts[0].Start.Equal(last.Start.Add(-287*BucketSize)) {
			t.Fatalf("%q: series from %v to %v", c.key, pts[0].Start, last.Start)
		}
		var reqs, toks int64
		nonzero := map[int]bool{}
		for i, p := range pts {
			reqs += p.Requests
			toks += p.Tokens
			if p.Requests > 0 {
				nonzero[len(pts)-1-i] = true
			}
		}
		if reqs != c.reqs || toks != c.toks || len(nonzero) != len(c.at) {
			t.Fatalf("%q: %d requests, %d tokens in buckets %v; want %d, %d in %v", c.key, reqs, toks, nonzero, c.reqs, c.toks, c.at)
		}
		for _, i := range c.at {
			if !nonzero[i] {
				t.Fatalf("%q: no traffic in bucket -%d: %v", c.key, i, nonzero)
			}
		}
	}
}

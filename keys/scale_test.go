package keys

import (
	"context"
	"slices"
	"testing"
	"time"
)

// BenchmarkIssueBatchAtSize: a commit of 1,000 issues on a ledger that
// already holds 100,000 keys costs what it does on an empty one (issue 27).
func BenchmarkIssueBatchAtSize(b *testing.B) {
	for _, size := range []int{0, 100000} {
		b.Run(map[int]string{0: "empty", 100000: "100k"}[size], func(b *testing.B) {
			ctx := context.Background()
			l := NewLedger(b.TempDir(), nil)
			defer l.Close(ctx)
			batch := func() []Change {
				cs := make([]Change, 1000)
				for i := range cs {
					cs[i] = Change{Op: OpIssue, Record: testRecord("trial")}
				}
				return cs
			}
			for range size / 1000 {
				if _, err := l.Commit(ctx, batch()...); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				cs := batch()
				b.StartTimer()
				if _, err := l.Commit(ctx, cs...); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkIssueBatchGrowing: batch after batch of 1,000 issues onto one
// ledger (b.N batches: -benchtime 100x grows it to 100,000 keys), as a
// bulk sale does. It reports the worst batch against the median, and the
// batches of the last tenth against those of the first: compactions run
// off the commit path, so neither ratio grows with the ledger (issue 27:
// the worst batch took 3.3 s at 88,000 keys when a compaction's 30 MB
// snapshot was written inside the commit).
func BenchmarkIssueBatchGrowing(b *testing.B) {
	ctx := context.Background()
	l := NewLedger(b.TempDir(), nil)
	defer l.Close(ctx)
	took := make([]float64, 0, b.N)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		cs := make([]Change, 1000)
		for i := range cs {
			cs[i] = Change{Op: OpIssue, Record: testRecord("trial")}
		}
		b.StartTimer()
		t := time.Now()
		if _, err := l.Commit(ctx, cs...); err != nil {
			b.Fatal(err)
		}
		took = append(took, float64(time.Since(t).Microseconds())/1000)
	}
	b.StopTimer()
	l.waitCompactions()
	med := func(xs []float64) float64 {
		s := slices.Clone(xs)
		slices.Sort(s)
		return s[len(s)/2]
	}
	tenth := max(1, len(took)/10)
	b.ReportMetric(slices.Max(took), "worst-ms")
	b.ReportMetric(med(took), "median-ms")
	b.ReportMetric(slices.Max(took)/med(took), "worst/median")
	b.ReportMetric(med(took[len(took)-tenth:])/med(took[:tenth]), "last/first")
}

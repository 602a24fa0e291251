package keys

import (
	"context"
	"testing"
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

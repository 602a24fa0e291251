package accounts

import (
	"net/http"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// BenchmarkObserveHeaders is the response path's cost of the utilization
// tap per answer. An answer without rate-limit headers (API-key accounts)
// must cost no allocation and no lock; one with them reuses the account's
// buffer.
func BenchmarkObserveHeaders(b *testing.B) {
	plain := http.Header{"Content-Type": {"application/json"}, "Request-Id": {"req_1"}, "Date": {"Mon"}}
	limited := plain.Clone()
	limited.Set("Anthropic-Ratelimit-Unified-5h-Utilization", "0.4")
	limited.Set("Anthropic-Ratelimit-Unified-Status", "allowed")
	for _, c := range []struct {
		name      string
		h         http.Header
		maxAllocs float64
	}{{"without", plain, 0}, {"with", limited, 0}} {
		b.Run(c.name, func(b *testing.B) {
			w := NewUtilWriter(nil, time.Second, logrus.New())
			at := time.Unix(1, 0)
			w.ObserveHeaders("a", c.h, at) // the account's buffer exists from now on
			if n := testing.AllocsPerRun(100, func() { w.ObserveHeaders("a", c.h, at) }); n > c.maxAllocs {
				b.Fatalf("%v allocations per answer, want at most %v", n, c.maxAllocs)
			}
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				w.ObserveHeaders("a", c.h, at)
			}
		})
	}
}

package ratelimit

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/internal/testenv"
)

// Run against a real server:
//
//	REDIS_URL=redis://127.0.0.1:6390 go test -bench . -run '^$' ./ratelimit/
//
// BenchmarkPingBaseline is the unit: admission's cost reads as a multiple
// of one PING round trip.

// roundTrips counts what goes over the wire: one per command, one per
// pipeline.
type roundTrips struct{ n atomic.Int64 }

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return next(ctx, network, addr)
	}
}

func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// benchClient is a flushed real-Redis client with a round-trip counter.
// Benchmarks run one untimed operation before zeroing the counter, so that
// connection set-up (HELLO, SELECT, CLIENT SETINFO) is not counted.
func benchClient(b *testing.B) (redis.UniversalClient, *roundTrips) {
	b.Helper()
	rdb := testenv.Redis(b, 3)
	h := &roundTrips{}
	rdb.AddHook(h)
	return rdb, h
}

func report(b *testing.B, h *roundTrips) {
	b.ReportMetric(float64(h.n.Load())/float64(b.N), "roundtrips/op")
}

func BenchmarkPingBaseline(b *testing.B) {
	ctx := context.Background()
	rdb, h := benchClient(b)
	_ = rdb.Ping(ctx)
	h.n.Store(0)
	for b.Loop() {
		if err := rdb.Ping(ctx).Err(); err != nil {
			b.Fatal(err)
		}
	}
	report(b, h)
}

func BenchmarkAdmit(b *testing.B) {
	cases := []struct {
		name  string
		limit int
	}{
		// Every request admitted: the window grows by one each time.
		{"admitted", 1 << 30},
		// A full window of a realistic quota: the refusal path.
		{"refused", 42},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			rdb, h := benchClient(b)
			l := New(rdb) // Redis TIME, as in production
			if err := l.Preload(ctx); err != nil {
				b.Fatal(err)
			}
			r := Request{Subject: "bench", Family: "sonnet", Limit: c.limit, Window: 5 * time.Hour}
			_, _ = l.Admit(ctx, r)
			h.n.Store(0)
			for b.Loop() {
				if _, err := l.Admit(ctx, r); err != nil {
					b.Fatal(err)
				}
			}
			report(b, h)
		})
	}
}

// BenchmarkQueueAdmit is the hot path's second round trip: the admission
// pipelined with the account's HGETALL.
func BenchmarkQueueAdmit(b *testing.B) {
	ctx := context.Background()
	rdb, h := benchClient(b)
	l := New(rdb)
	if err := l.Preload(ctx); err != nil {
		b.Fatal(err)
	}
	rdb.HSet(ctx, "cr:acct:a1", "alias", "one", "kind", "oauth")
	r := Request{Subject: "bench", Family: "sonnet", Limit: 1 << 30, Window: 5 * time.Hour}
	admit := func() error {
		pipe := rdb.Pipeline()
		p := l.QueueAdmit(ctx, pipe, r)
		pipe.HGetAll(ctx, "cr:acct:a1")
		_, _ = pipe.Exec(ctx)
		_, err := p.Result(ctx)
		return err
	}
	_ = admit()
	h.n.Store(0)
	for b.Loop() {
		if err := admit(); err != nil {
			b.Fatal(err)
		}
	}
	report(b, h)
}

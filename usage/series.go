package usage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// SeriesPoints is the number of 5-minute buckets in a 24-hour series: the
// current (partial) bucket and the 287 before it.
const SeriesPoints = int(24 * time.Hour / BucketSize)

// Point is one 5-minute bucket of traffic: its start, requests and tokens
// (all four kinds summed).
type Point struct {
	Start    time.Time `json:"start"`
	Requests int64     `json:"requests"`
	Tokens   int64     `json:"tokens"`
}

// Series returns the last 24 hours of a key's traffic (all traffic when
// keyHash is empty), oldest bucket first, SeriesPoints long; buckets
// without traffic are zero. It reads the buckets the windows are made of,
// plus what this replica has not flushed yet.
func (r *Recorder) Series(ctx context.Context, keyHash string) ([]Point, error) {
	subject := overallSubject()
	if keyHash != "" {
		subject = keySubject(keyHash)
	}
	step := int64(BucketSize / time.Second)
	cur := bucketStart(r.clk.Now())
	first := cur - int64(SeriesPoints-1)*step
	pipe := r.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, 0, SeriesPoints)
	for s := first; s <= cur; s += step {
		cmds = append(cmds, pipe.HGetAll(ctx, bucketKey(subject, s)))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("usage: read series of %s: %w", subject, err)
	}
	out := make([]Point, len(cmds))
	for i, c := range cmds {
		t, _, err := parseTotals(c.Val())
		if err != nil {
			return nil, fmt.Errorf("usage: read series of %s: %w", subject, err)
		}
		out[i] = Point{Start: time.Unix(first+int64(i)*step, 0).UTC(), Requests: t.Requests, Tokens: t.Usage.Total()}
	}
	r.buf.each(subject, func(sl slot, t Totals) {
		if sl.bucket < first || sl.bucket > cur {
			return
		}
		p := &out[(sl.bucket-first)/step]
		p.Requests += t.Requests
		p.Tokens += t.Usage.Total()
	})
	return out, nil
}

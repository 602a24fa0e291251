package usage

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/internal/clock"
)

// Redis layout. Each subject (a key, an account, all traffic) has one totals
// HASH and one HASH per 5-minute bucket. The subject sits in a hash tag, so
// all of a subject's keys share a cluster slot (Forget deletes them with one
// command), while different subjects spread over the cluster:
//
//	cr:usage:{key:<keyhash>}            lifetime totals, no TTL
//	cr:usage:{key:<keyhash>}:<unix>     bucket starting at <unix>, TTL 25h
//	cr:usage:{key:<keyhash>}:d:<unix>   UTC day starting at <unix>, TTL DayTTL
//	cr:usage:{acct:<name>}[:<unix>]
//	cr:usage:{all}[:<unix>]
//
// Fields: r (requests), i (input), o (output), cw (cache_creation), cr
// (cache_read), c1 (cache_1h: the part of cache_creation written with the
// 1-hour TTL); every hash also keeps f:<family>:<field> per model family
// and m:<model>:<field> per model, so any window can be priced. Hashes
// written before issue 27 spell the fields out (requests, input, output,
// cache_creation, cache_read, cache_1h); readers add both spellings, so
// old and new data in one hash sum up. The short names save about 50 bytes
// per hash, three hashes per active key.
const (
	keyPrefix = "cr:usage:"

	// BucketSize is the granularity of the rolling windows.
	BucketSize = 5 * time.Minute
	// BucketTTL keeps a bucket a little longer than the longest window
	// reads it, so bucket data never grows without bound.
	BucketTTL = 25 * time.Hour

	// DaySize is the granularity of the 30-day window and of the export.
	DaySize = 24 * time.Hour
	// DayTTL keeps daily buckets long enough for a monthly billing export
	// run late; `usage export` reaches back this far.
	DayTTL = 100 * 24 * time.Hour
	// Days30 is the number of daily buckets in Last30d (today included).
	Days30 = 30

	window5h  = 5 * time.Hour
	window24h = 24 * time.Hour

	familyPrefix = "f:"
	modelPrefix  = "m:"
)

// fields are the names written, in the order of Totals.values.
var fields = [...]string{"r", "i", "o", "cw", "cr", "c1"}

// ErrInvalid reports a Record call with a missing subject or negative counts.
var ErrInvalid = errors.New("usage: invalid record")

// Totals is a request count with the tokens of those requests.
type Totals struct {
	Requests int64 `json:"requests"`
	Usage
}

func (t *Totals) add(o Totals) {
	t.Requests += o.Requests
	t.InputTokens += o.InputTokens
	t.OutputTokens += o.OutputTokens
	t.CacheCreationInputTokens += o.CacheCreationInputTokens
	t.CacheReadInputTokens += o.CacheReadInputTokens
	t.CacheCreation1hInputTokens += o.CacheCreation1hInputTokens
}

// values lists t in the order of fields.
func (t Totals) values() [len(fields)]int64 {
	return [...]int64{t.Requests, t.InputTokens, t.OutputTokens, t.CacheCreationInputTokens, t.CacheReadInputTokens, t.CacheCreation1hInputTokens}
}

// addField adds v to the count a hash field names, in either spelling.
func (t *Totals) addField(name string, v int64) {
	switch name {
	case "r", "requests":
		t.Requests += v
	case "i", "input":
		t.InputTokens += v
	case "o", "output":
		t.OutputTokens += v
	case "cw", "cache_creation":
		t.CacheCreationInputTokens += v
	case "cr", "cache_read":
		t.CacheReadInputTokens += v
	case "c1", "cache_1h":
		t.CacheCreation1hInputTokens += v
	}
}

// Summary is a subject's usage: lifetime, and over the rolling windows.
//
// The windows are made of 5-minute buckets: a window sums every bucket that
// overlaps [now-window, now], so it covers at least the full window and at
// most BucketSize more (traffic up to 5h05m old may appear in Last5h).
//
// Last30d sums the 30 UTC days ending today (so between 29 and 30 days).
type Summary struct {
	Total   Totals `json:"total"`
	Last5h  Totals `json:"last_5h"`
	Last24h Totals `json:"last_24h"`
	Last30d Totals `json:"last_30d"`
	// ByFamily splits Total by model family.
	ByFamily map[string]Totals `json:"by_family"`
	// Families splits each window by model family, for pricing.
	Families Windows `json:"-"`
	// ByModel and Models split Total and each window by model, for
	// pricing per model; traffic recorded without a model is in neither.
	ByModel map[string]Totals `json:"-"`
	Models  Windows           `json:"-"`
}

// Windows holds a per-family split of each window.
type Windows struct {
	Last5h, Last24h, Last30d map[string]Totals
}

// Day is one UTC day of a subject's usage.
type Day struct {
	Start    time.Time
	Totals   Totals
	ByFamily map[string]Totals
	ByModel  map[string]Totals
}

func addFamilies(dst *map[string]Totals, src map[string]Totals) {
	for f, t := range src {
		if *dst == nil {
			*dst = make(map[string]Totals)
		}
		cur := (*dst)[f]
		cur.add(t)
		(*dst)[f] = cur
	}
}

// Recorder keeps usage totals in Redis. It is safe for concurrent use.
// Record only adds to totals held in memory; Flush (driven by Run, at most
// once a second) writes them in one pipeline, so a request costs no Redis
// command of its own. Every counter is a Redis increment, so several
// replicas share the same totals, and every read adds what this replica
// has not flushed yet.
type Recorder struct {
	rdb redis.UniversalClient
	clk clock.Clock
	buf buffer
}

// NewRecorder returns a Recorder on rdb that picks buckets by clk.
func NewRecorder(rdb redis.UniversalClient, clk clock.Clock) *Recorder {
	return &Recorder{rdb: rdb, clk: clk, buf: newBuffer()}
}

func keySubject(keyHash string) string { return "key:" + keyHash }
func acctSubject(name string) string   { return "acct:" + name }
func overallSubject() string           { return "all" }
func totalsKey(subject string) string  { return keyPrefix + "{" + subject + "}" }
func bucketStart(t time.Time) int64    { return t.Unix() - t.Unix()%int64(BucketSize/time.Second) }
func bucketKey(subject string, start int64) string {
	return totalsKey(subject) + ":" + strconv.FormatInt(start, 10)
}
func dayStart(t time.Time) int64 { return t.Unix() - t.Unix()%int64(DaySize/time.Second) }
func dayKey(subject string, start int64) string {
	return totalsKey(subject) + ":d:" + strconv.FormatInt(start, 10)
}

// Record counts one request of keyHash served by account for a model of
// family, with its usage (zero when unknown). It only adds to this
// replica's unflushed totals: no Redis command, no allocation once the
// subject and bucket have been seen in the current second.
func (r *Recorder) Record(ctx context.Context, keyHash, account, family string, u Usage) error {
	return r.RecordModel(ctx, keyHash, account, family, "", u)
}

// RecordModel is Record with the model too, so cost can be priced per
// model (a model of "" records as Record does).
func (r *Recorder) RecordModel(_ context.Context, keyHash, account, family, model string, u Usage) error {
	if keyHash == "" || account == "" {
		return fmt.Errorf("%w: key hash and account are required", ErrInvalid)
	}
	t := Totals{Requests: 1, Usage: u}
	for _, v := range t.values() {
		if v < 0 {
			return fmt.Errorf("%w: negative count in %+v", ErrInvalid, u)
		}
	}
	now := r.clk.Now()
	r.buf.add(keyHash, account, slot{bucket: bucketStart(now), day: dayStart(now), family: family, model: model}, t)
	return nil
}

// Key returns the usage of one client key.
func (r *Recorder) Key(ctx context.Context, keyHash string) (Summary, error) {
	return r.summary(ctx, keySubject(keyHash))
}

// Account returns the usage of one upstream account.
func (r *Recorder) Account(ctx context.Context, name string) (Summary, error) {
	return r.summary(ctx, acctSubject(name))
}

// Overall returns the usage of all traffic.
func (r *Recorder) Overall(ctx context.Context) (Summary, error) {
	return r.summary(ctx, overallSubject())
}

// summary reads the totals and the last 24 hours of buckets in one pipeline.
func (r *Recorder) summary(ctx context.Context, subject string) (Summary, error) {
	now := r.clk.Now()
	cur := bucketStart(now)
	first5h, first24h := bucketStart(now.Add(-window5h)), bucketStart(now.Add(-window24h))
	step := int64(BucketSize / time.Second)

	pipe := r.rdb.Pipeline()
	totals := pipe.HGetAll(ctx, totalsKey(subject))
	buckets := make([]*redis.MapStringStringCmd, 0, (cur-first24h)/step+1)
	for s := cur; s >= first24h; s -= step {
		buckets = append(buckets, pipe.HGetAll(ctx, bucketKey(subject, s)))
	}
	today, dstep := dayStart(now), int64(DaySize/time.Second)
	days := make([]*redis.MapStringStringCmd, 0, Days30)
	for i := int64(0); i < Days30; i++ {
		days = append(days, pipe.HGetAll(ctx, dayKey(subject, today-i*dstep)))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return Summary{}, fmt.Errorf("usage: read %s: %w", subject, err)
	}

	var sum Summary
	var err error
	if sum.Total, sum.ByFamily, err = parseTotals(totals.Val()); err != nil {
		return Summary{}, fmt.Errorf("usage: read %s: %w", subject, err)
	}
	sum.ByModel = parseModels(totals.Val())
	for i, b := range buckets {
		t, fam, err := parseTotals(b.Val())
		if err != nil {
			return Summary{}, fmt.Errorf("usage: read %s: %w", subject, err)
		}
		mod := parseModels(b.Val())
		sum.Last24h.add(t)
		addFamilies(&sum.Families.Last24h, fam)
		addFamilies(&sum.Models.Last24h, mod)
		if cur-int64(i)*step >= first5h {
			sum.Last5h.add(t)
			addFamilies(&sum.Families.Last5h, fam)
			addFamilies(&sum.Models.Last5h, mod)
		}
	}
	for _, d := range days {
		t, fam, err := parseTotals(d.Val())
		if err != nil {
			return Summary{}, fmt.Errorf("usage: read %s: %w", subject, err)
		}
		sum.Last30d.add(t)
		addFamilies(&sum.Families.Last30d, fam)
		addFamilies(&sum.Models.Last30d, parseModels(d.Val()))
	}
	r.addUnflushed(subject, &sum, cur, first5h, first24h, today-(Days30-1)*dstep)
	return sum, nil
}

// parseModels reads the per-model fields (m:<model>:<field>) of a hash.
// Model names may contain ':'; the field is after the last one.
func parseModels(h map[string]string) map[string]Totals {
	var out map[string]Totals
	for k, s := range h {
		rest, ok := strings.CutPrefix(k, modelPrefix)
		if !ok {
			continue
		}
		i := strings.LastIndexByte(rest, ':')
		v, err := strconv.ParseInt(s, 10, 64)
		if i < 0 || err != nil {
			continue
		}
		if out == nil {
			out = make(map[string]Totals)
		}
		t := out[rest[:i]]
		t.addField(rest[i+1:], v)
		out[rest[:i]] = t
	}
	return out
}

// parseTotals reads a totals or bucket hash; family fields go to the map
// (model fields are parseModels').
func parseTotals(h map[string]string) (Totals, map[string]Totals, error) {
	var t Totals
	var fam map[string]Totals
	for k, s := range h {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return Totals{}, nil, fmt.Errorf("field %q: %w", k, err)
		}
		if strings.HasPrefix(k, modelPrefix) {
			continue
		}
		if rest, ok := strings.CutPrefix(k, familyPrefix); ok {
			i := strings.LastIndexByte(rest, ':')
			if i < 0 {
				continue
			}
			if fam == nil {
				fam = make(map[string]Totals)
			}
			ft := fam[rest[:i]]
			ft.addField(rest[i+1:], v)
			fam[rest[:i]] = ft
			continue
		}
		t.addField(k, v)
	}
	return t, fam, nil
}

// KeyDays returns a key's usage per UTC day from the day of since to the
// day of until, both included, oldest first; days without traffic are
// zero. Days older than DayTTL read as zero.
func (r *Recorder) KeyDays(ctx context.Context, keyHash string, since, until time.Time) ([]Day, error) {
	subject := keySubject(keyHash)
	first, last, step := dayStart(since), dayStart(until), int64(DaySize/time.Second)
	if last < first {
		return nil, nil
	}
	pipe := r.rdb.Pipeline()
	var cmds []*redis.MapStringStringCmd
	for d := first; d <= last; d += step {
		cmds = append(cmds, pipe.HGetAll(ctx, dayKey(subject, d)))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("usage: read days of %s: %w", subject, err)
	}
	out := make([]Day, 0, len(cmds))
	for i, c := range cmds {
		t, fam, err := parseTotals(c.Val())
		if err != nil {
			return nil, fmt.Errorf("usage: read days of %s: %w", subject, err)
		}
		out = append(out, Day{Start: time.Unix(first+int64(i)*step, 0).UTC(), Totals: t, ByFamily: fam, ByModel: parseModels(c.Val())})
	}
	r.buf.each(subject, func(sl slot, t Totals) {
		if sl.day < first || sl.day > last {
			return
		}
		d := &out[(sl.day-first)/step]
		d.Totals.add(t)
		if sl.family != "" {
			addFamilies(&d.ByFamily, map[string]Totals{sl.family: t})
		}
		if sl.model != "" {
			addFamilies(&d.ByModel, map[string]Totals{sl.model: t})
		}
	})
	return out, nil
}

// Forget drops a key's usage: its totals and every bucket that may still be
// alive. Buckets are found by time rather than by scanning, so the range
// reaches past BucketTTL and a little into the future, for instances whose
// clocks run ahead. A request still in flight may record again afterwards.
func (r *Recorder) Forget(ctx context.Context, keyHash string) error {
	subject := keySubject(keyHash)
	r.buf.drop(subject)
	now := r.clk.Now()
	step := int64(BucketSize / time.Second)
	last, first := bucketStart(now.Add(time.Hour)), bucketStart(now.Add(-BucketTTL-time.Hour))
	keys := make([]string, 0, (last-first)/step+2)
	// This replica's flush marker too (other replicas' expire with markerTTL).
	keys = append(keys, totalsKey(subject), markerKey(subject, r.buf.replica))
	for s := last; s >= first; s -= step {
		keys = append(keys, bucketKey(subject, s))
	}
	dstep := int64(DaySize / time.Second)
	for d := dayStart(now.Add(DaySize)); d >= dayStart(now.Add(-DayTTL-DaySize)); d -= dstep {
		keys = append(keys, dayKey(subject, d))
	}
	// All the keys carry the subject's hash tag: one slot, one command.
	if err := r.rdb.Del(ctx, keys...).Err(); err != nil {
		return fmt.Errorf("usage: forget: %w", err)
	}
	return nil
}

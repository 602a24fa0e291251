package usage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// FlushEvery is how often Run writes this replica's totals: the most a
// crash can lose.
const FlushEvery = time.Second

// markerTTL keeps a subject's last applied batch number (per replica) long
// enough for any retry of that batch: a batch stays in flight until the
// store answers, and a store down for a day is an outage, not a retry.
// Markers rarely live that long: once a batch is confirmed no retry of it
// can come, and the next flush deletes the markers it left on subjects
// that batch does not touch (152 bytes of Redis per key that had a request
// in the last 25 hours otherwise; issue 27).
const markerTTL = 25 * time.Hour

// slot is where a count lands within a subject: its 5-minute bucket, its
// UTC day, its model family and its model ("" when unknown).
type slot struct {
	bucket, day   int64
	family, model string
}

// totalsBySubject holds unflushed totals: subject → slot → totals.
type totalsBySubject map[string]map[slot]Totals

func (m totalsBySubject) add(subject string, sl slot, t Totals) {
	s := m[subject]
	if s == nil {
		s = make(map[slot]Totals, 1)
		m[subject] = s
	}
	cur := s[sl]
	cur.add(t)
	s[sl] = cur
}

// batch is a set of totals under one number. A batch never changes once
// numbered: a retry sends the same increments under the same number, and
// each subject's script skips a number it has already applied.
type batch struct {
	seq    uint64
	totals totalsBySubject
	// forget: subjects whose markers the previous (confirmed) batch left
	// and this one does not overwrite; deleted with this batch.
	forget []string
}

// buffer is a replica's unflushed totals: pending collects new records,
// inflight is the batch being written (kept until the store confirms it).
type buffer struct {
	replica string // random per process: batch numbers are per replica

	mu       sync.Mutex
	pending  totalsBySubject
	inflight *batch
	seq      uint64
	// marked: the subjects of the last confirmed batch, whose markers are
	// no longer needed (the next batch deletes them).
	marked []string

	flushMu sync.Mutex // one flush at a time, so batches apply in order
}

func newBuffer() buffer {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on supported platforms
	return buffer{replica: hex.EncodeToString(b[:]), pending: make(totalsBySubject)}
}

// add counts t for a request of keyHash served by account.
func (b *buffer) add(keyHash, account string, sl slot, t Totals) {
	b.mu.Lock()
	b.pending.add(keySubject(keyHash), sl, t)
	b.pending.add(acctSubject(account), sl, t)
	b.pending.add(overallSubject(), sl, t)
	b.mu.Unlock()
}

// each calls f for every unflushed slot of subject, in flight or pending.
func (b *buffer) each(subject string, f func(slot, Totals)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inflight != nil {
		for sl, t := range b.inflight.totals[subject] {
			f(sl, t)
		}
	}
	for sl, t := range b.pending[subject] {
		f(sl, t)
	}
}

// drop forgets a subject's unflushed totals (its usage is being deleted).
// Removing a whole subject from the in-flight batch keeps the batch's
// retry exact for every other subject.
func (b *buffer) drop(subject string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.pending, subject)
	if b.inflight != nil {
		delete(b.inflight.totals, subject)
	}
}

// Unflushed reports how many subjects hold totals not yet in the store.
func (r *Recorder) Unflushed() int {
	r.buf.mu.Lock()
	defer r.buf.mu.Unlock()
	n := len(r.buf.pending)
	if r.buf.inflight != nil {
		n += len(r.buf.inflight.totals)
	}
	return n
}

// Flush writes this replica's unflushed totals to the store in one
// pipeline: one script call per subject. On failure the batch is kept
// as it is and the next Flush sends it again; a subject that had already
// applied it skips it, so a retried flush never counts twice.
func (r *Recorder) Flush(ctx context.Context) error {
	b := &r.buf
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	b.mu.Lock()
	if b.inflight == nil {
		if len(b.pending) == 0 && len(b.marked) == 0 {
			b.mu.Unlock()
			return nil
		}
		b.seq++
		b.inflight = &batch{seq: b.seq, totals: b.pending}
		for _, s := range b.marked {
			if _, ok := b.pending[s]; !ok {
				b.inflight.forget = append(b.inflight.forget, s)
			}
		}
		b.marked = nil
		b.pending = make(totalsBySubject, len(b.inflight.totals))
	}
	bt := b.inflight
	calls := r.scriptCalls(bt)
	b.mu.Unlock()

	err := r.run(ctx, calls, bt.forget, false)
	if isNoScript(err) {
		// The store lost its scripts (restart, failover): load and send the
		// whole batch again; subjects that applied it skip it.
		if lerr := applyScript.Load(ctx, r.rdb).Err(); lerr != nil {
			return fmt.Errorf("usage: flush: %w", lerr)
		}
		err = r.run(ctx, calls, bt.forget, true)
	}
	if err != nil {
		return fmt.Errorf("usage: flush: %w", err)
	}
	b.mu.Lock()
	if b.inflight == bt {
		b.inflight = nil
		b.marked = make([]string, 0, len(bt.totals))
		for s := range bt.totals {
			b.marked = append(b.marked, s)
		}
	}
	b.mu.Unlock()
	return nil
}

// Run flushes every interval (FlushEvery when 0) until ctx ends. It does
// not flush at the end: the owner does, once the requests that record have
// drained. onErr hears each failed flush (the batch is retried on the next
// tick).
func (r *Recorder) Run(ctx context.Context, every time.Duration, onErr func(error)) {
	if every <= 0 {
		every = FlushEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := r.Flush(ctx); err != nil && ctx.Err() == nil && onErr != nil {
			onErr(err)
		}
	}
}

// markerKey holds the last batch number of replica applied to subject.
func markerKey(subject, replica string) string { return totalsKey(subject) + ":flushed:" + replica }

// scriptCall is one subject's share of a batch.
type scriptCall struct {
	keys []string
	args []any
}

// scriptCalls lays a batch out as one applyScript call per subject. All of
// a call's keys carry the subject's hash tag: one cluster slot.
func (r *Recorder) scriptCalls(bt *batch) []scriptCall {
	subjects := make([]string, 0, len(bt.totals))
	for s := range bt.totals {
		subjects = append(subjects, s)
	}
	sort.Strings(subjects) // stable order: easier to read in MONITOR
	calls := make([]scriptCall, 0, len(subjects))
	for _, subject := range subjects {
		calls = append(calls, r.subjectCall(subject, bt.seq, bt.totals[subject]))
	}
	return calls
}

func (r *Recorder) subjectCall(subject string, seq uint64, slots map[slot]Totals) scriptCall {
	keys := []string{markerKey(subject, r.buf.replica), totalsKey(subject)}
	index := map[string]int{totalsKey(subject): 2}
	var expires []any
	keyIndex := func(k string, ttl time.Duration) int {
		if i, ok := index[k]; ok {
			return i
		}
		keys = append(keys, k)
		i := len(keys)
		index[k] = i
		expires = append(expires, i, int64(ttl/time.Second))
		return i
	}
	// Sum per hash and field first: one HINCRBY per field, however many
	// requests the batch holds.
	type hashField struct {
		key   int
		field string
	}
	sums := make(map[hashField]int64)
	order := make([]hashField, 0, 32)
	inc := func(k int, field string, v int64) {
		if v == 0 {
			return // an absent field reads as zero; save the command
		}
		hf := hashField{k, field}
		if _, ok := sums[hf]; !ok {
			order = append(order, hf)
		}
		sums[hf] += v
	}
	sls := make([]slot, 0, len(slots))
	for sl := range slots {
		sls = append(sls, sl)
	}
	sort.Slice(sls, func(i, j int) bool {
		a, b := sls[i], sls[j]
		if a.bucket != b.bucket {
			return a.bucket < b.bucket
		}
		if a.day != b.day {
			return a.day < b.day
		}
		if a.family != b.family {
			return a.family < b.family
		}
		return a.model < b.model
	})
	for _, sl := range sls {
		vals := slots[sl].values()
		hashes := [...]int{2, keyIndex(bucketKey(subject, sl.bucket), BucketTTL), keyIndex(dayKey(subject, sl.day), DayTTL)}
		for i, f := range fields {
			for _, h := range hashes {
				inc(h, f, vals[i])
				if sl.family != "" {
					inc(h, familyPrefix+sl.family+":"+f, vals[i])
				}
				if sl.model != "" {
					inc(h, modelPrefix+sl.model+":"+f, vals[i])
				}
			}
		}
	}
	args := make([]any, 0, 3+3*len(order)+len(expires))
	args = append(args, seq, int64(markerTTL/time.Second), len(order))
	for _, hf := range order {
		args = append(args, hf.key, hf.field, sums[hf])
	}
	args = append(args, expires...)
	return scriptCall{keys: keys, args: args}
}

// applyScript applies one subject's share of a batch unless this replica's
// marker says the batch (or a later one) is already in.
//
// KEYS[1] marker, KEYS[2..] hashes. ARGV: seq, marker TTL, n, then n
// triples (key index, field, increment), then pairs (key index, TTL).
var applyScript = redis.NewScript(`
local seen = tonumber(redis.call('GET', KEYS[1]) or '0')
local seq = tonumber(ARGV[1])
if seen >= seq then return 0 end
local n = tonumber(ARGV[3])
local i = 4
for _ = 1, n do
  redis.call('HINCRBY', KEYS[tonumber(ARGV[i])], ARGV[i+1], ARGV[i+2])
  i = i + 3
end
while i < #ARGV do
  redis.call('EXPIRE', KEYS[tonumber(ARGV[i])], ARGV[i+1])
  i = i + 2
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
`)

// run sends the calls in one pipeline (EVALSHA, or EVAL after a NOSCRIPT),
// with the deletion of the markers of forget: the batch before this one
// was confirmed, so no retry needs them, and this batch leaves them alone
// (batches are sent one at a time, so no later one can have set them).
func (r *Recorder) run(ctx context.Context, calls []scriptCall, forget []string, eval bool) error {
	pipe := r.rdb.Pipeline()
	for _, s := range forget {
		pipe.Del(ctx, markerKey(s, r.buf.replica))
	}
	for _, c := range calls {
		if eval {
			applyScript.Eval(ctx, pipe, c.keys, c.args...)
		} else {
			applyScript.EvalSha(ctx, pipe, c.keys, c.args...)
		}
	}
	cmds, err := pipe.Exec(ctx)
	if err != nil {
		for _, c := range cmds {
			if isNoScript(c.Err()) {
				return c.Err()
			}
		}
		return err
	}
	return nil
}

func isNoScript(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") }

// addUnflushed adds this replica's unflushed totals of subject to sum.
func (r *Recorder) addUnflushed(subject string, sum *Summary, cur, first5h, first24h, firstDay int64) {
	r.buf.each(subject, func(sl slot, t Totals) {
		sum.Total.add(t)
		fam, mod := map[string]Totals(nil), map[string]Totals(nil)
		if sl.family != "" {
			fam = map[string]Totals{sl.family: t}
			addFamilies(&sum.ByFamily, fam)
		}
		if sl.model != "" {
			mod = map[string]Totals{sl.model: t}
			addFamilies(&sum.ByModel, mod)
		}
		if sl.bucket >= first24h && sl.bucket <= cur {
			sum.Last24h.add(t)
			addFamilies(&sum.Families.Last24h, fam)
			addFamilies(&sum.Models.Last24h, mod)
			if sl.bucket >= first5h {
				sum.Last5h.add(t)
				addFamilies(&sum.Families.Last5h, fam)
				addFamilies(&sum.Models.Last5h, mod)
			}
		}
		if sl.day >= firstDay && sl.day <= cur {
			sum.Last30d.add(t)
			addFamilies(&sum.Families.Last30d, fam)
			addFamilies(&sum.Models.Last30d, mod)
		}
	})
}

package ratelimit

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Spares take the quota's round trip off a request's way to the upstream.
//
// After a key's first admission in a window, this Limiter takes a place or
// a few ahead of the key's next requests ("spares"), in the background. The
// next request finds its place already taken in Redis and is admitted at
// once; the background then makes the spare an ordinary admission scored at
// the time it was used, and takes the next spare. Nothing overshoots: a
// spare is a place in the window like any other, counted by every replica.
//
// What it costs, and the bounds that keep it small:
//   - Spares are taken only while the window is at most half full, so
//     near its limit a key is admitted one by one, exactly as without them.
//   - A spare is used within spareUse of asking for it, or given back; its
//     lease in Redis ends at spareLease. Never more admitted than the
//     quota, whatever crashes: a spare whose lease ended may have been
//     used by a replica that died (or that the store answers late), so it
//     is never handed out again. It turns into an admission scored at the
//     lease's end (never earlier than its use) and leaves the window as
//     one. The price of a crash is on the safe side: a killed replica's
//     unused spares (spareMax at most per window) count until they leave
//     the window; a live replica gives its unused spares back a tick after
//     spareUse, well before their lease ends.
//   - A request refused while another replica holds spares learns how long
//     they can be held (Result.Held) and may ask again after that: by then
//     they are used, given back or counted for good.
//   - Views (Peek) count admissions, not spares: a used spare counts once
//     it is rescored, or at once on the replica that used it; another
//     replica's used spares show up within a tick (spareTick) or so.
const (
	spareLease = 2 * time.Second
	spareUse   = time.Second
	spareMax   = 8                      // spares per window and replica
	spareTick  = 250 * time.Millisecond // how often unused spares are returned
	spareIdle  = time.Minute            // a quiet window's bookkeeping is dropped
	spareRun   = 2 * time.Second        // one background run's budget
)

// spares is a Limiter's bookkeeping of its spares, one spareSet per window.
type spares struct {
	mu     sync.Mutex
	on     bool // Run is running: spares are taken and used
	sets   map[string]*spareSet
	wg     sync.WaitGroup // background runs
	script *redis.Script
}

type spare struct {
	id     string
	usable time.Time // use it before this, or give it back
}

type spareSet struct {
	key           string
	subject       string
	limit         int
	window        time.Duration
	free          []spare   // taken, unused; oldest first
	used          []string  // used, not yet rescored as admissions
	remove        []string  // returned unused, not yet removed
	want          int       // how many to keep free
	reserve       bool      // take more at the next run
	busy          bool      // a background run is on its way
	rescoring     []string  // used spares in the run on its way
	last          time.Time // the window's last admission
	count         int       // the window's admissions at the last answer
	oldest, nowMS int64     // the last answer's oldest admission and time
}

// Run enables spares and keeps them until ctx ends: it returns spares
// nobody used in time, then, once ctx is done, settles every spare (used
// ones become admissions, the rest are given back) and returns. Run it for
// the Limiter's life; a Limiter that is not running admits every request
// with a round trip, as it always did.
func (l *Limiter) Run(ctx context.Context) {
	l.sp.mu.Lock()
	l.sp.on = true
	l.sp.mu.Unlock()
	t := time.NewTicker(spareTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			l.closeSpares()
			return
		case <-t.C:
			l.tidySpares(l.now())
		}
	}
}

// SpareHash is the SHA1 of the spares' background script, for tools that
// tell a request's own round trips from the background's.
func (l *Limiter) SpareHash() string { return l.sp.script.Hash() }

// takeSpare admits r on a free spare, or returns nil.
func (l *Limiter) takeSpare(r Request) *Result {
	l.sp.mu.Lock()
	defer l.sp.mu.Unlock()
	s := l.sp.sets[r.Key()]
	if !l.sp.on || s == nil {
		return nil
	}
	if s.limit != r.Limit || s.window != r.Window {
		// The tier changed: spares taken under the old quota go back.
		s.giveBackLocked(len(s.free))
		s.limit, s.window = r.Limit, r.Window
		l.kickLocked(s)
		return nil
	}
	s.expireLocked(l.now())
	if len(s.free) == 0 {
		return nil
	}
	sp := s.free[0]
	s.free = s.free[1:]
	s.used = append(s.used, sp.id)
	s.last = l.now()
	if len(s.free) == 0 && s.want < spareMax {
		s.want *= 2 // the requests used every spare: keep more
	}
	// Take more once few are left; the used ones are rescored then, or
	// by the next tick, well within their lease.
	if len(s.free) <= s.want/4 {
		s.reserve = true
		l.kickLocked(s)
	}
	// The last answer counted admissions; the spares used since (this
	// one included) are not among them yet. Other replicas' admissions
	// since that answer are seen at the next.
	count := s.count + len(s.rescoring) + len(s.used)
	res := &Result{Allowed: true, ID: sp.id, spare: true, Count: count, Limit: r.Limit,
		Remaining: max(r.Limit-count, 0), Subject: r.Subject, Family: r.Family}
	res.Reset = time.UnixMilli(s.nowMS).UTC()
	if s.oldest > 0 {
		res.Reset = time.UnixMilli(s.oldest).UTC().Add(r.Window)
	}
	return res
}

// noteAdmit keeps spares for a window whose requests come close together:
// after an admission that came within spareUse of the window's previous
// one and left it at most half full. A key used now and then never has
// spares: they would only expire unused. Every admission's count is noted
// for a window that has spares, the upper half's too: a spare used next
// builds on it (it was left out above half, and the request after an
// admission there was told one place more than it had).
func (l *Limiter) noteAdmit(r Request, res *Result, err error) {
	if err != nil || !res.Allowed {
		return
	}
	lower := res.Count+1 <= r.Limit/2
	l.sp.mu.Lock()
	defer l.sp.mu.Unlock()
	if !l.sp.on {
		return
	}
	now := l.now()
	s := l.sp.sets[r.Key()]
	if s == nil {
		if !lower {
			return
		}
		if l.sp.sets == nil {
			l.sp.sets = map[string]*spareSet{}
		}
		s = &spareSet{key: r.Key(), subject: r.Subject, limit: r.Limit, window: r.Window, want: 1, last: now}
		l.sp.sets[s.key] = s
		return
	}
	if s.limit != r.Limit || s.window != r.Window {
		return // takeSpare settles a tier change
	}
	if s.newer(res.at, res.Count) {
		s.count, s.oldest, s.nowMS = res.Count, res.Reset.Add(-r.Window).UnixMilli(), res.at
	}
	if !lower {
		return
	}
	gap := now.Sub(s.last)
	s.last = now
	if gap < spareUse {
		s.reserve = true
		l.kickLocked(s)
	}
}

// newer reports whether an answer made at ms (the script's clock) with
// count admissions is at least as new as the one the set holds. A run's
// answer and an admission's come back on separate connections, in either
// order; an older one settled last undid a newer count, and the next
// request on a spare was told it had one place more than it had. Within
// one millisecond the larger count is the later (admissions only add; a
// refund there errs on the side of fewer places).
func (s *spareSet) newer(ms int64, count int) bool {
	return ms > s.nowMS || ms == s.nowMS && count >= s.count
}

// forgetUsed drops a spare a request used from the rescoring queue: its
// place is being refunded. (A rescoring already on its way is harmless:
// it only updates a member that still exists, ZADD XX.)
func (l *Limiter) forgetUsed(res Result) {
	l.sp.mu.Lock()
	defer l.sp.mu.Unlock()
	if s := l.sp.sets[windowKey(res.Subject, res.Family)]; s != nil {
		if i := slices.Index(s.used, res.ID); i >= 0 {
			s.used = slices.Delete(s.used, i, i+1)
		}
	}
}

// unsettled names this Limiter's spares in a window that were used but
// may not be admissions in Redis yet (a rescoring queued or on its way).
func (l *Limiter) unsettled(key string) []string {
	l.sp.mu.Lock()
	defer l.sp.mu.Unlock()
	if s := l.sp.sets[key]; s != nil {
		return append(slices.Clone(s.used), s.rescoring...)
	}
	return nil
}

// forgetSubject drops the bookkeeping of a subject whose windows were
// deleted: its spares went with them.
func (l *Limiter) forgetSubject(subject string) {
	l.sp.mu.Lock()
	defer l.sp.mu.Unlock()
	for k, s := range l.sp.sets {
		if s.subject == subject {
			s.free, s.used, s.remove, s.reserve = nil, nil, nil, false
			if !s.busy {
				delete(l.sp.sets, k)
			}
		}
	}
}

// expireLocked moves spares past their use-by time to the give-back list;
// the window then keeps fewer.
func (s *spareSet) expireLocked(now time.Time) {
	n := 0
	for n < len(s.free) && !now.Before(s.free[n].usable) {
		n++
	}
	if n > 0 {
		s.giveBackLocked(n)
		s.want = max(s.want/2, 1)
	}
}

func (s *spareSet) giveBackLocked(n int) {
	for _, sp := range s.free[:n] {
		s.remove = append(s.remove, sp.id)
	}
	s.free = s.free[n:]
}

func (s *spareSet) pendingLocked() bool {
	return len(s.used) > 0 || len(s.remove) > 0
}

// kickLocked starts the window's background run unless one is on its way
// (it picks up whatever is queued when it comes back).
func (l *Limiter) kickLocked(s *spareSet) {
	if s.busy || !l.sp.on || (!s.pendingLocked() && !s.reserve) {
		return
	}
	s.busy = true
	l.sp.wg.Add(1)
	go l.spareLoop(s)
}

// spareJob is one background run's share of a set's work.
type spareJob struct {
	used, remove, reserve []string
	sent                  time.Time
}

// spareLoop runs the set's queued work until none is left.
func (l *Limiter) spareLoop(s *spareSet) {
	defer l.sp.wg.Done()
	for {
		l.sp.mu.Lock()
		j := l.nextJobLocked(s)
		if j == nil {
			s.busy = false
			l.sp.mu.Unlock()
			return
		}
		limit, window := s.limit, s.window
		s.rescoring = j.used
		l.sp.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), spareRun)
		v, err := l.runSpares(ctx, s.key, limit, window, j)
		cancel()
		l.sp.mu.Lock()
		s.rescoring = nil
		l.settleLocked(s, j, v, err)
		if err != nil {
			// The store is away: the ticker tries again.
			s.busy = false
			l.sp.mu.Unlock()
			return
		}
		l.sp.mu.Unlock()
	}
}

func (l *Limiter) nextJobLocked(s *spareSet) *spareJob {
	j := &spareJob{used: s.used, remove: s.remove}
	s.used, s.remove = nil, nil
	if s.reserve && l.sp.on {
		s.reserve = false
		for range s.want - len(s.free) {
			j.reserve = append(j.reserve, "s"+l.newID())
		}
	}
	if len(j.used)+len(j.remove)+len(j.reserve) == 0 {
		return nil
	}
	j.sent = l.now()
	return j
}

func (l *Limiter) runSpares(ctx context.Context, key string, limit int, window time.Duration, j *spareJob) ([]int64, error) {
	args := make([]any, 0, 6+len(j.used)+len(j.remove)+len(j.reserve))
	args = append(args, limit, window.Milliseconds(), l.nowArg(), spareLease.Milliseconds(), len(j.used), len(j.remove))
	for _, ids := range [][]string{j.used, j.remove, j.reserve} {
		for _, id := range ids {
			args = append(args, id)
		}
	}
	v, err := l.sp.script.Run(ctx, l.rdb, []string{key}, args...).Int64Slice()
	if err == nil && len(v) != 4 {
		err = fmt.Errorf("script returned %d values, want 4", len(v))
	}
	if err != nil {
		return nil, fmt.Errorf("ratelimit: spares: %w", err)
	}
	return v, nil
}

// settleLocked takes a run's answer. On an error the run may or may not
// have landed: the used spares are rescored next time (rescoring twice is
// harmless), removals are sent again (idempotent) and the reserved ids are
// removed too, in case they were taken with the answer lost.
func (l *Limiter) settleLocked(s *spareSet, j *spareJob, v []int64, err error) {
	if err != nil {
		s.used = append(j.used, s.used...)
		s.remove = append(append(s.remove, j.remove...), j.reserve...)
		return
	}
	taken := int(v[0])
	usable := j.sent.Add(spareUse)
	for _, id := range j.reserve[:taken] {
		s.free = append(s.free, spare{id: id, usable: usable})
	}
	if s.newer(v[3], int(v[1])) {
		s.count, s.oldest, s.nowMS = int(v[1]), v[2], v[3]
	}
	if !l.sp.on {
		s.giveBackLocked(len(s.free)) // taken while the Limiter stopped
	}
}

// tidySpares gives back spares past their use-by time, retries work a
// failed run left, and forgets quiet windows.
func (l *Limiter) tidySpares(now time.Time) {
	l.sp.mu.Lock()
	defer l.sp.mu.Unlock()
	for k, s := range l.sp.sets {
		s.expireLocked(now)
		l.kickLocked(s)
		if !s.busy && len(s.free) == 0 && !s.pendingLocked() && now.Sub(s.last) > spareIdle {
			delete(l.sp.sets, k)
		}
	}
}

// closeSpares stops taking spares, waits for the runs on their way and
// settles everything left, in one pipeline.
func (l *Limiter) closeSpares() {
	l.sp.mu.Lock()
	l.sp.on = false
	l.sp.mu.Unlock()
	l.sp.wg.Wait()
	l.sp.mu.Lock()
	sets := l.sp.sets
	l.sp.sets = nil
	l.sp.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range sets {
		s.giveBackLocked(len(s.free)) // no one else holds s now
		if !s.pendingLocked() {
			continue
		}
		j := &spareJob{used: s.used, remove: s.remove}
		if _, err := l.runSpares(ctx, s.key, s.limit, s.window, j); err != nil {
			// Their leases end within spareLease; then they count as
			// admissions (scored at the lease's end): a used spare is
			// never counted early, an unused one is a place lost for a
			// window, never one admitted twice.
			continue
		}
	}
}

// now is the Limiter's clock (WithClock in tests), else the wall clock.
func (l *Limiter) now() time.Time {
	if l.clock != nil {
		return l.clock.Now()
	}
	return time.Now()
}

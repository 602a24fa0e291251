package ratelimit

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/internal/testenv"
)

// running starts l.Run for the test; stop ends it and waits until its
// spares are settled.
func running(t *testing.T, l *Limiter) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	waitFor(t, "Run to start", func() bool {
		l.sp.mu.Lock()
		defer l.sp.mu.Unlock()
		return l.sp.on
	})
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// onRunningLimiter runs f on each backend with a running Limiter.
func onRunningLimiter(t *testing.T, f func(t *testing.T, rdb redis.UniversalClient, l *Limiter)) {
	for _, tc := range testenv.Backends(3) {
		t.Run(tc.Name, func(t *testing.T) {
			rdb := tc.Open(t)
			l := New(rdb)
			running(t, l)
			f(t, rdb, l)
		})
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); !ok(); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// settled waits until l holds want free spares of r's window (-1: any
// number) and has nothing on its way.
func settled(t *testing.T, l *Limiter, r Request, want int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d spares", want), func() bool {
		l.sp.mu.Lock()
		defer l.sp.mu.Unlock()
		s := l.sp.sets[r.Key()]
		return s != nil && !s.busy && !s.pendingLocked() && !s.reserve && (want < 0 || len(s.free) == want)
	})
}

// admissionCounter counts the scripts a client runs that are not the
// spares' own background runs: the round trips a request waits for.
type admissionCounter struct {
	spareSHA string
	n        atomic.Int64
}

func (a *admissionCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (a *admissionCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		switch cmd.Name() {
		case "evalsha":
			if fmt.Sprint(cmd.Args()[1]) != a.spareSHA {
				a.n.Add(1)
			}
		case "eval": // the NOSCRIPT fallback
			if fmt.Sprint(cmd.Args()[1]) != spareScript {
				a.n.Add(1)
			}
		}
		return next(ctx, cmd)
	}
}
func (a *admissionCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// scores returns the window's members and scores.
func scores(t *testing.T, rdb redis.UniversalClient, r Request) map[string]float64 {
	t.Helper()
	zs, err := rdb.ZRangeWithScores(context.Background(), r.Key(), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]float64{}
	for _, z := range zs {
		m[z.Member.(string)] = z.Score
	}
	return m
}

func admitMerged(t *testing.T, l *Limiter, r Request) *Result {
	t.Helper()
	res, err := l.AdmitMerged(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// A key's second request is admitted on a spare: no round trip of its own;
// in the background the spare becomes an admission scored when it was used.
func TestSpareAdmitsWithoutARoundTrip(t *testing.T) {
	for _, tc := range testenv.Backends(3) {
		t.Run(tc.Name, func(t *testing.T) {
			rdb := tc.Open(t)
			l := New(rdb)
			counter := &admissionCounter{spareSHA: l.sp.script.Hash()}
			rdb.AddHook(counter)
			running(t, l)
			r := req("spare-rt", "sonnet", 100)

			// The first two requests: a key used twice within spareUse.
			for i := range 2 {
				if res := admitMerged(t, l, r); !res.Allowed || res.spare {
					t.Fatalf("request %d: %+v, want an admission of its own", i+1, res)
				}
			}
			trips := counter.n.Load() // 2, or more with NOSCRIPT fallbacks
			settled(t, l, r, 1)
			if m := scores(t, rdb, r); len(m) != 3 {
				t.Fatalf("window holds %v, want the two admissions and one spare", m)
			}
			for i := 3; i <= 7; i++ {
				res := admitMerged(t, l, r)
				if !res.Allowed || !res.spare || res.ID == "" || res.Count != i || res.Remaining != r.Limit-i {
					t.Fatalf("request %d: %+v, want admitted on a spare", i, res)
				}
				if n := counter.n.Load(); n != trips {
					t.Fatalf("request %d waited for %d admission scripts, want none", i, n-trips)
				}
				settled(t, l, r, -1)
				if s := scores(t, rdb, r)[res.ID]; s == 0 || s >= spareBase {
					t.Fatalf("used spare %s scored %v, want an admission's time", res.ID, s)
				}
			}
			// Peek shows admissions, not this replica's unused spares.
			p, err := l.Peek(context.Background(), r)
			if err != nil || p.Count != 7 || p.Remaining != 93 {
				t.Fatalf("peek: %+v %v, want 7 used", p, err)
			}
		})
	}
}

// Two running replicas, most requests on spares, many at once: never more
// than the limit, a refusal only once no spare can free a place, and once
// both stop the window holds exactly the admitted requests.
func TestRealSparesNeverOvershootAcrossReplicas(t *testing.T) {
	rdb := testenv.Redis(t, 3)
	const limit = 42
	replicas := []*Limiter{New(testenv.Redis(t, 3)), New(testenv.Redis(t, 3))}
	stops := []func(){running(t, replicas[0]), running(t, replicas[1])}
	for round := range 3 {
		r := req("spare-many"+strconv.Itoa(round), "sonnet", limit)
		// Each replica has admitted the key twice before, so holds spares.
		for _, l := range replicas {
			admitMerged(t, l, r)
			admitMerged(t, l, r)
			settled(t, l, r, -1)
		}
		var allowed, refused, onSpares atomic.Int64
		ids := sync.Map{}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 80 {
			wg.Go(func() {
				<-start
				l := replicas[i%2]
				// One by one per caller, as a client's requests come.
				for range 2 {
					res, err := l.AdmitMerged(context.Background(), r)
					for try := 0; err == nil && !res.Allowed && res.Held > 0 && try < 3; try++ {
						time.Sleep(res.Held + 10*time.Millisecond) // what the server does
						res, err = l.AdmitMerged(context.Background(), r)
					}
					switch {
					case err != nil:
						t.Error(err)
						return
					case res.Allowed:
						allowed.Add(1)
						if _, dup := ids.LoadOrStore(res.ID, true); dup {
							t.Errorf("id %s admitted twice", res.ID)
						}
						if res.spare {
							onSpares.Add(1)
						}
					default:
						refused.Add(1)
						if res.Count != limit || res.Remaining != 0 || res.RetryAfter <= 0 {
							t.Errorf("refusal %+v", res)
						}
					}
				}
			})
		}
		close(start)
		wg.Wait()
		if got := allowed.Load() + 4; got != limit || refused.Load() != 160-(limit-4) {
			t.Fatalf("round %d: %d admitted, %d refused; want %d and %d", round, got, refused.Load(), limit, 160-(limit-4))
		}
		if onSpares.Load() == 0 {
			t.Errorf("round %d: no request used a spare", round)
		}
		t.Logf("round %d: %d of %d admissions on spares", round, onSpares.Load(), limit-4)
		if round == 2 {
			for _, stop := range stops {
				stop() // settles what each holds
			}
		} else {
			for _, l := range replicas {
				settled(t, l, r, -1)
			}
		}
		m := scores(t, rdb, r)
		live := 0
		for id, s := range m {
			if s < spareBase {
				live++
			} else if round == 2 {
				t.Errorf("spare %s left in the window after Run stopped", id)
			}
		}
		if live != limit {
			t.Fatalf("round %d: window holds %d admissions, want %d", round, live, limit)
		}
	}
}

// Spares are taken only while the window is at most half full: a small
// quota is admitted one by one near its end, and exactly.
func TestSparesOnlyInTheLowerHalf(t *testing.T) {
	onRunningLimiter(t, func(t *testing.T, rdb redis.UniversalClient, l *Limiter) {
		r := req("spare-half", "opus", 6)
		var kinds []string
		for range 8 {
			res := admitMerged(t, l, r)
			settled(t, l, r, -1)
			switch {
			case !res.Allowed:
				if res.Held != 0 {
					t.Fatalf("refused with held %v and no spare anywhere", res.Held)
				}
				kinds = append(kinds, "refused")
			case res.spare:
				kinds = append(kinds, "spare")
			default:
				kinds = append(kinds, "admitted")
			}
		}
		// The second admission takes the one spare that keeps the
		// window at half (3 of 6); after that, one by one.
		want := "[admitted admitted spare admitted admitted admitted refused refused]"
		if fmt.Sprint(kinds) != want {
			t.Fatalf("got %v, want %s", kinds, want)
		}
		if n := len(scores(t, rdb, r)); n != 6 {
			t.Fatalf("window holds %d, want 6", n)
		}
	})
}

// A spare used and then refunded (the upstream never answered) is gone;
// spares nobody used in time are given back.
func TestSpareRefundAndGiveBack(t *testing.T) {
	onRunningLimiter(t, func(t *testing.T, rdb redis.UniversalClient, l *Limiter) {
		r := req("spare-refund", "sonnet", 100)
		admitMerged(t, l, r)
		admitMerged(t, l, r)
		settled(t, l, r, 1)
		res := admitMerged(t, l, r)
		if !res.spare {
			t.Fatalf("not on a spare: %+v", res)
		}
		if err := l.Refund(context.Background(), *res); err != nil {
			t.Fatal(err)
		}
		settled(t, l, r, -1)
		m := scores(t, rdb, r)
		if _, ok := m[res.ID]; ok {
			t.Fatalf("refunded spare still in the window: %v", m)
		}
		l.tidySpares(time.Now().Add(spareUse)) // past every spare's use-by time
		settled(t, l, r, 0)
		if m := scores(t, rdb, r); len(m) != 2 {
			t.Fatalf("window holds %v, want the first two admissions alone", m)
		}
	})
}

// A refusal caused by another replica's spares says how long they can be
// held. A spare whose holder died may have been used: once its lease ends
// it counts as an admission, scored at the lease's end, and is never
// handed out again.
func TestHeldSparesAndDeadHolders(t *testing.T) {
	for _, tc := range testenv.Backends(3) {
		t.Run(tc.Name, func(t *testing.T) {
			rdb := tc.Open(t)
			holder, other := New(rdb), New(rdb)
			running(t, holder)
			r := req("spare-held", "sonnet", 8)
			admitMerged(t, holder, r)
			admitMerged(t, holder, r)
			settled(t, holder, r, 1) // 2 admissions + 1 spare
			for range 5 {
				if res := admitMerged(t, other, r); !res.Allowed {
					t.Fatalf("refused: %+v", res)
				}
			}
			res := admitMerged(t, other, r)
			if res.Allowed || res.Held <= 0 || res.Held > spareLease {
				t.Fatalf("want a refusal held at most %v: %+v", spareLease, res)
			}
			// The holder dies without giving back: its spare's lease ends
			// (moved a second into the past here).
			ended := time.Now().Add(-time.Second).UnixMilli()
			spareID := ""
			for id, s := range scores(t, rdb, r) {
				if s >= spareBase {
					spareID = id
					rdb.ZAdd(context.Background(), r.Key(), redis.Z{Score: float64(spareBase + ended), Member: id})
				}
			}
			res = admitMerged(t, other, r)
			if res.Allowed || res.Held != 0 || res.Count != 8 || res.RetryAfter <= 0 {
				t.Fatalf("after the lease: %+v, want a refusal counting the dead holder's spare", res)
			}
			if s := scores(t, rdb, r)[spareID]; s != float64(ended) {
				t.Fatalf("the dead holder's spare scored %v, want an admission at its lease's end %d", s, ended)
			}
		})
	}
}

// A key used now and then never gets spares (they would expire unused and
// cost two more scripts per request); one used in quick succession does.
func TestSparesOnlyForRequestsCloseTogether(t *testing.T) {
	l, clk, m := newMini(t)
	running(t, l)
	r := req("spare-gap", "sonnet", 100)
	spares := func() int {
		n := 0
		for _, k := range m.Keys() {
			if k != r.Key() {
				continue
			}
			members, _ := m.ZMembers(k)
			for _, id := range members {
				if sc, _ := m.ZScore(k, id); sc >= spareBase {
					n++
				}
			}
		}
		return n
	}
	for i := range 3 {
		admitMerged(t, l, r)
		settled(t, l, r, 0) // nothing asked for, or its run landed
		if n := spares(); n != 0 {
			t.Fatalf("after admission %d, %v apart: %d spares", i+1, spareUse+time.Second, n)
		}
		clk.Advance(spareUse + time.Second)
	}
	admitMerged(t, l, r)
	clk.Advance(100 * time.Millisecond)
	admitMerged(t, l, r)
	settled(t, l, r, 1)
	if n := spares(); n != 1 {
		t.Fatalf("two admissions 100ms apart: %d spares, want 1", n)
	}
}

// An admission that does not use a spare (another replica's, or this one's
// while its spares are on their way) is told the number of requests
// admitted: spares are places taken, not requests made.
func TestCountsLeaveSparesOut(t *testing.T) {
	onRunningLimiter(t, func(t *testing.T, rdb redis.UniversalClient, l *Limiter) {
		r := req("spare-count", "sonnet", 100)
		admitMerged(t, l, r)
		admitMerged(t, l, r)
		settled(t, l, r, 1) // 2 admissions and a spare
		res, err := New(rdb).Admit(context.Background(), r)
		if err != nil || res.Count != 3 || res.Remaining != 97 {
			t.Fatalf("third admission: %+v %v, want count 3", res, err)
		}
	})
}

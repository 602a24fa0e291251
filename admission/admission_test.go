package admission

import (
	"context"
	"errors"
	"testing"

	"github.com/claude-route/claude-route/ratelimit"
)

type countLease struct{ n int }

func (l *countLease) Release(context.Context) { l.n++ }

type countRefunder struct {
	n   int
	err error
}

func (r *countRefunder) Refund(context.Context, ratelimit.Result) error {
	r.n++
	return r.err
}

func TestAdmission(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name        string
		quota       *ratelimit.Result
		refundErr   error
		wantRefunds int  // calls reaching the limiter over two Refunds
		wantBack    bool // the first Refund reports a place given back
	}{
		{"allowed: refunded once", &ratelimit.Result{Allowed: true, Limit: 5, Remaining: 2}, nil, 1, true},
		{"refused by the quota: nothing to give back", &ratelimit.Result{Allowed: false}, nil, 0, false},
		{"uncounted request", nil, nil, 0, false},
		{"store down: tried again next time", &ratelimit.Result{Allowed: true}, errors.New("down"), 2, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := NewBudget(100)
			h := b.NewHold("k", 100)
			if !h.TryGrow(40) {
				t.Fatal("40 of an empty budget of 100")
			}
			lease, ref := &countLease{}, &countRefunder{err: c.refundErr}
			var tk Admission
			tk.holdLease(lease)
			tk.holdBody(h)
			if c.quota != nil {
				tk.holdQuota(*c.quota, ref)
			}
			back, err := tk.Refund(ctx)
			if back != c.wantBack || (err != nil) != (c.refundErr != nil) {
				t.Fatalf("refund: %v %v", back, err)
			}
			_, _ = tk.Refund(ctx)
			if ref.n != c.wantRefunds {
				t.Fatalf("limiter refunds %d, want %d", ref.n, c.wantRefunds)
			}
			if q := tk.Quota(); c.wantBack && (q.Allowed || q.Remaining != 3) {
				t.Fatalf("the quota shown is not updated: %+v", q)
			}
			tk.Release()
			tk.Release()
			if lease.n != 1 || b.InUse() != 0 {
				t.Fatalf("release: lease released %d times, %d bytes still held", lease.n, b.InUse())
			}
		})
	}
}

// Whatever path a request takes, its quota place ends exactly once:
// counted, refunded, or (when neither was decided, as after a panic)
// given back by Release.
func TestAdmissionEndsItsPlaceOnce(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name        string
		settle      func(*Admission)
		wantRefunds int
	}{
		{"counted: kept", func(tk *Admission) { tk.Count() }, 0},
		{"refunded: once", func(tk *Admission) { _, _ = tk.Refund(ctx) }, 1},
		{"counted, then a refund: kept", func(tk *Admission) { tk.Count(); _, _ = tk.Refund(ctx) }, 0},
		{"no verdict (a panic): given back by Release", func(*Admission) {}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			ref := &countRefunder{}
			var tk Admission
			tk.holdQuota(ratelimit.Result{Allowed: true, Limit: 5, Remaining: 2}, ref)
			c.settle(&tk)
			tk.Release()
			tk.Release()
			if ref.n != c.wantRefunds {
				t.Fatalf("refunds %d, want %d", ref.n, c.wantRefunds)
			}
		})
	}
}

// BenchmarkReleaseCounted is the end of the common request: its place
// counted, no lease. It needs no store, so no context or timer either.
func BenchmarkReleaseCounted(b *testing.B) {
	run := func() {
		var tk Admission
		tk.holdQuota(ratelimit.Result{Allowed: true, Limit: 5, Remaining: 2}, &countRefunder{})
		tk.Count()
		tk.Release()
	}
	if n := testing.AllocsPerRun(100, run); n > 2 {
		b.Fatalf("%v allocations, want at most 2 (the admission and its refunder; 6 with a context and timer)", n)
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		run()
	}
}

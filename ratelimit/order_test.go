package ratelimit

import (
	"testing"
	"time"
)

// A spare run's answer and an admission's answer can come back in either
// order (separate connections). The count a spare reports builds on the
// newest one: an older answer settled last used to undo a newer count, and
// the next request on a spare was told one place more than it had
// (TestHighTierOpusQuotaOthersUnlimited: "opus 5: remaining 6" or "opus 6:
// remaining 5", 4 runs in 40).
func TestOlderAnswerDoesNotUndoANewerCount(t *testing.T) {
	l, clk, _ := newMini(t)
	l.sp.on = true
	r := Request{Subject: "k", Family: "opus", Limit: 10, Window: 5 * time.Hour}
	const t0 = int64(1_800_000_000_000)
	s := &spareSet{key: r.Key(), subject: r.Subject, limit: r.Limit, window: r.Window, want: 1, last: clk.Now()}
	l.sp.sets = map[string]*spareSet{r.Key(): s}

	// The admission of request 4 ran after the spare run and its answer is
	// noted first ...
	l.noteAdmit(r, &Result{Allowed: true, Count: 4, Reset: time.UnixMilli(t0).Add(r.Window), at: t0 + 1}, nil)
	// ... then the run's answer (3 admissions then, one spare taken).
	l.sp.mu.Lock()
	s.busy = false
	l.settleLocked(s, &spareJob{reserve: []string{"s1"}, sent: clk.Now()}, []int64{1, 3, t0, t0}, nil)
	l.sp.mu.Unlock()

	res := l.takeSpare(r)
	l.sp.wg.Wait() // the run it started to take more
	if res == nil {
		t.Fatal("no spare to take")
	}
	if res.Count != 5 || res.Remaining != 5 {
		t.Fatalf("the fifth request on a spare: count %d remaining %d, want 5 and 5", res.Count, res.Remaining)
	}
}

// An admission in the upper half of the window takes no spares, but the
// next request on a spare builds on its count (the flake's other cause:
// request 5 admitted by the script, request 6 on a spare told 5 remained).
func TestUpperHalfAdmissionIsNotedForTheNextSpare(t *testing.T) {
	l, clk, _ := newMini(t)
	l.sp.on = true
	r := Request{Subject: "k", Family: "opus", Limit: 10, Window: 5 * time.Hour}
	const t0 = int64(1_800_000_000_000)
	s := &spareSet{key: r.Key(), subject: r.Subject, limit: r.Limit, window: r.Window, want: 1, last: clk.Now()}
	l.sp.sets = map[string]*spareSet{r.Key(): s}
	l.sp.mu.Lock()
	l.settleLocked(s, &spareJob{reserve: []string{"s1"}, sent: clk.Now()}, []int64{1, 4, t0, t0}, nil)
	l.sp.mu.Unlock()
	// Request 5, admitted by the script: the window is half full.
	l.noteAdmit(r, &Result{Allowed: true, Count: 5, Reset: time.UnixMilli(t0).Add(r.Window), at: t0 + 1}, nil)

	res := l.takeSpare(r)
	l.sp.wg.Wait()
	if res == nil {
		t.Fatal("no spare to take")
	}
	if res.Count != 6 || res.Remaining != 4 {
		t.Fatalf("the sixth request on a spare: count %d remaining %d, want 6 and 4", res.Count, res.Remaining)
	}
}

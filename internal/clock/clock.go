// Package clock is an injectable source of time, so that 5-hour windows,
// refresh timers and cooldowns are tested without sleeping.
package clock

import (
	"sort"
	"sync"
	"time"
)

// Clock is what time-dependent code asks for the time and for timers.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has passed.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a stoppable pending call.
type Timer interface {
	// Stop prevents the call; it reports whether it was still pending.
	Stop() bool
}

// Real is the wall clock.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// AfterFunc wraps time.AfterFunc.
func (Real) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// Fake is a manual clock for tests: time moves only through Advance or Set.
type Fake struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

// NewFake returns a fake clock set at t.
func NewFake(t time.Time) *Fake { return &Fake{now: t} }

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// AfterFunc registers f to run when the fake time reaches now+d.
func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	f.mu.Lock()
	t := &fakeTimer{clock: f, at: f.now.Add(d), fn: fn}
	f.timers = append(f.timers, t)
	f.mu.Unlock()
	if d <= 0 {
		f.Advance(0)
	}
	return t
}

// Advance moves time forward by d and fires, in time order, every timer
// that falls due. Each fired function runs synchronously, so a test that
// advances the clock sees the timers' effects on return.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	target := f.now.Add(d)
	f.mu.Unlock()
	f.advanceTo(target)
}

// Set moves time to t (never backwards), firing due timers.
func (f *Fake) Set(t time.Time) { f.advanceTo(t) }

// Pending reports how many timers are still waiting.
func (f *Fake) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}

func (f *Fake) advanceTo(target time.Time) {
	for {
		f.mu.Lock()
		sort.SliceStable(f.timers, func(i, j int) bool { return f.timers[i].at.Before(f.timers[j].at) })
		if len(f.timers) == 0 || f.timers[0].at.After(target) {
			if target.After(f.now) {
				f.now = target
			}
			f.mu.Unlock()
			return
		}
		t := f.timers[0]
		f.timers = f.timers[1:]
		if t.at.After(f.now) {
			f.now = t.at
		}
		f.mu.Unlock()
		t.fn()
	}
}

type fakeTimer struct {
	clock *Fake
	at    time.Time
	fn    func()
}

func (t *fakeTimer) Stop() bool {
	f := t.clock
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, x := range f.timers {
		if x == t {
			f.timers = append(f.timers[:i], f.timers[i+1:]...)
			return true
		}
	}
	return false
}

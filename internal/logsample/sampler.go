// Package logsample bounds repetitive log lines: at most one line per
// subject and reason per interval, each written line carrying how many
// were dropped since the previous one. A key hammering the proxy over its
// quota at thousands of requests a second then writes one refusal line a
// second instead of a megabyte.
package logsample

import (
	"sync"
	"time"

	"github.com/claude-route/claude-route/internal/clock"
)

// sweepAt is the number of tracked pairs above which an Allow first
// forgets the pairs whose interval has ended; it bounds the memory a flood
// of ever-new subjects (made-up keys) can take to about one interval's.
const sweepAt = 4096

// Sampler decides which lines to write. The zero value is not usable; use New.
type Sampler struct {
	clock clock.Clock
	every time.Duration

	mu   sync.Mutex
	seen map[pair]*state
}

type pair struct{ subject, reason string }

type state struct {
	last    time.Time // when the last line was written
	dropped int       // lines not written since
}

// New returns a sampler allowing one line per subject and reason every
// interval (default 1 s).
func New(c clock.Clock, every time.Duration) *Sampler {
	if every <= 0 {
		every = time.Second
	}
	if c == nil {
		c = clock.Real{}
	}
	return &Sampler{clock: c, every: every, seen: map[pair]*state{}}
}

// Allow reports whether a line for subject and reason may be written now
// and, when it may, how many lines of that pair were dropped since the
// last one written. A dropped line is counted, never lost silently.
func (s *Sampler) Allow(subject, reason string) (ok bool, dropped int) {
	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	k := pair{subject, reason}
	st := s.seen[k]
	if st == nil {
		if len(s.seen) >= sweepAt {
			s.sweep(now)
		}
		s.seen[k] = &state{last: now}
		return true, 0
	}
	if now.Sub(st.last) < s.every {
		st.dropped++
		return false, 0
	}
	dropped, st.last, st.dropped = st.dropped, now, 0
	return true, dropped
}

// sweep forgets pairs whose interval has ended. Their dropped counts go
// with them: at most one interval's worth per pair. s.mu is held.
func (s *Sampler) sweep(now time.Time) {
	for k, st := range s.seen {
		if now.Sub(st.last) >= s.every {
			delete(s.seen, k)
		}
	}
}

// Len is the number of pairs tracked (tests).
func (s *Sampler) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

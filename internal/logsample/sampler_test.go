package logsample

import (
	"fmt"
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/clock"
)

func TestOneLinePerSubjectAndReasonPerInterval(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_800_000_000, 0))
	s := New(clk, time.Second)
	type step struct {
		advance         time.Duration
		subject, reason string
		ok              bool
		dropped         int
	}
	steps := []step{
		{0, "k1", "quota", true, 0},
		{0, "k1", "quota", false, 0},
		{300 * time.Millisecond, "k1", "quota", false, 0},
		{0, "k1", "concurrency", true, 0}, // another reason has its own turn
		{0, "k2", "quota", true, 0},       // another key too
		{699 * time.Millisecond, "k1", "quota", false, 0},
		{time.Millisecond, "k1", "quota", true, 3}, // a second after the first: the three dropped are told
		{0, "k1", "quota", false, 0},
		{5 * time.Second, "k1", "quota", true, 1},
		{5 * time.Second, "k1", "quota", true, 0},
	}
	for i, st := range steps {
		clk.Advance(st.advance)
		ok, dropped := s.Allow(st.subject, st.reason)
		if ok != st.ok || dropped != st.dropped {
			t.Fatalf("step %d (%s, %s): Allow = %v, %d; want %v, %d", i, st.subject, st.reason, ok, dropped, st.ok, st.dropped)
		}
	}
}

// A flood of ever-new subjects (made-up keys) keeps about one interval's
// worth of pairs in memory.
func TestMemoryBoundedByOneInterval(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_800_000_000, 0))
	s := New(clk, time.Second)
	for round := 0; round < 5; round++ {
		for i := 0; i < 3000; i++ {
			s.Allow(fmt.Sprintf("r%d-k%d", round, i), "unauthorized")
		}
		clk.Advance(time.Second)
	}
	if n := s.Len(); n > sweepAt+3000 {
		t.Fatalf("%d pairs tracked after 5 intervals of 3,000 new subjects", n)
	}
}

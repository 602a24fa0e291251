package admission

import (
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/clock"
)

// The per-key bound of count_tokens: a burst of 200, then 20 a second.
func TestCountTokensBucket(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_800_000_000, 0))
	b := newCountBuckets(clk)
	for i := 0; i < countTokensBurst; i++ {
		if !b.allow("k") {
			t.Fatalf("call %d of a burst refused", i)
		}
	}
	if b.allow("k") {
		t.Fatal("the burst is bounded")
	}
	if !b.allow("other") {
		t.Fatal("another key has its own bucket")
	}
	clk.Advance(time.Second)
	for i := 0; i < countTokensRate; i++ {
		if !b.allow("k") {
			t.Fatalf("a second later, call %d refused", i)
		}
	}
	if b.allow("k") {
		t.Fatal("the rate is bounded")
	}
}

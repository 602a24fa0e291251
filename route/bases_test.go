package route

import (
	"reflect"
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/clock"
)

// A failing base is skipped with backoff (10 s doubling to 5 min); when it
// ends, one request probes it; once it answers it is first again.
func TestBaseBackoffProbeAndPreference(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_800_000_000, 0))
	h := newBaseHealth(clk)
	bases := []string{"p", "s"}
	want := func(step string, got, exp []string) {
		t.Helper()
		if !reflect.DeepEqual(got, exp) {
			t.Fatalf("%s: order %v, want %v", step, got, exp)
		}
	}
	want("healthy", h.order("a", bases), []string{"p", "s"})
	h.failed("a", "p")
	want("p failed", h.order("a", bases), []string{"s"})
	want("another account's p", h.order("b", bases), []string{"p", "s"})
	clk.Advance(9 * time.Second)
	want("p still backing off", h.order("a", bases), []string{"s"})
	clk.Advance(time.Second)
	want("the probe", h.order("a", bases), []string{"p", "s"})
	want("others skip p while it is probed", h.order("a", bases), []string{"s"})
	// The probe failed: twice as long now, and so on up to 5 minutes.
	for i, d := range []time.Duration{20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 5 * time.Minute, 5 * time.Minute} {
		h.failed("a", "p")
		clk.Advance(d - time.Second)
		want("backing off", h.order("a", bases), []string{"s"})
		clk.Advance(time.Second)
		if got := h.order("a", bases); got[0] != "p" {
			t.Fatalf("failure %d: no probe after %s: %v", i+2, d, got)
		}
	}
	h.ok("a", "p")
	want("p answered: first again", h.order("a", bases), []string{"p", "s"})
	// Every base backing off: all are tried, in order.
	h.failed("a", "p")
	h.failed("a", "s")
	want("all backing off", h.order("a", bases), []string{"p", "s"})
}

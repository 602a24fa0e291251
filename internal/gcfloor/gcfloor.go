// Package gcfloor keeps the garbage collector's heap goal at or above a
// floor. A proxy's live heap is small (a few MiB at thousands of requests
// a second) while it allocates fast, so with GOGC=100 it collects dozens of
// times a second, and marking was the largest cost a request had that a
// bare proxy has not. Raising the GC percent while the live heap is small
// trades memory the host has anyway (up to the floor) for that CPU; once
// the live heap is large (thousands of open streams) the percent is the
// operator's again, so the memory in use is what GOGC alone would give.
// It is the heap floor of the GC tuners large Go services run.
package gcfloor

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// maxPercent bounds the percent set: a nearly empty heap would otherwise
// ask for an absurd one.
const maxPercent = 10000

// Percent is the GC percent for a live heap of live bytes: the least that
// puts the heap goal, live × (1 + percent/100), at floor or above, and
// never below base (the operator's GOGC).
func Percent(live, floor uint64, base int) int {
	if live == 0 || live >= floor {
		return base
	}
	p := int((floor - live) * 100 / live)
	return max(base, min(p, maxPercent))
}

// Run sets the percent from the live heap every interval until ctx ends,
// then gives back base. The heap floor takes effect from the next cycle:
// a burst that grows the live heap past it within one interval collects at
// the percent of the smaller heap once more, at most.
func Run(ctx context.Context, floor uint64, base int, every time.Duration) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	set := base
	t := time.NewTicker(every)
	defer t.Stop()
	defer debug.SetGCPercent(base)
	for {
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			if p := Percent(sample[0].Value.Uint64(), floor, base); p != set {
				debug.SetGCPercent(p)
				set = p
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

package gcfloor

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

// gogc reads the percent in effect without setting it.
func gogc() uint64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		name              string
		live, floor       uint64
		base, wantPercent int
	}{
		{"small heap: the goal reaches the floor", 4 * mib, 64 * mib, 100, 1500},
		{"heap at half the floor: GOGC=100 reaches it", 32 * mib, 64 * mib, 100, 100},
		{"heap above the floor: the operator's percent", 200 * mib, 64 * mib, 100, 100},
		{"a higher GOGC is never lowered", 4 * mib, 64 * mib, 3000, 3000},
		{"nearly empty heap: bounded", 1024, 64 * mib, 100, maxPercent},
		{"no reading yet", 0, 64 * mib, 100, 100},
	} {
		if got := Percent(c.live, c.floor, c.base); got != c.wantPercent {
			t.Errorf("%s: Percent(%d, %d, %d) = %d, want %d", c.name, c.live, c.floor, c.base, got, c.wantPercent)
		}
		// The goal the percent gives is at the floor or above, unless bounded.
		if got := Percent(c.live, c.floor, c.base); c.live > 0 && got < maxPercent && c.live*uint64(100+got)/100 < c.floor-c.floor/100 {
			t.Errorf("%s: goal %d below the floor %d", c.name, c.live*uint64(100+got)/100, c.floor)
		}
	}
}

// Run raises the percent of a small heap, and gives the operator's back
// when it stops.
func TestRunSetsAndRestores(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	runtime.GC()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); Run(ctx, 1<<30, 100, time.Millisecond) }()
	deadline := time.Now().Add(5 * time.Second)
	raised := 0
	for time.Now().Before(deadline) {
		if p := gogc(); p > 100 {
			raised = int(p)
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if raised == 0 {
		t.Fatal("a test process's heap is far below 1 GiB, yet the percent was not raised")
	}
	if p := gogc(); p != 100 {
		t.Fatalf("percent %d after Run stopped, want the operator's 100", p)
	}
}

package syncer

import (
	"context"
	"errors"
	"net"
	"time"
)

// timeoutRetries is how many times a sync step is tried again after a
// store timeout.
const timeoutRetries = 2

// retryTimeouts runs op, and again (twice at most, after 250 ms, then
// 500 ms) when it fails on a network timeout: a store reply that came
// later than the client's read timeout on a loaded machine. Every step it
// wraps is idempotent (restore if missing, reconcile, release). At 100,000
// keys a sync is thousands of round trips; one late reply failed it, and
// the retry 15 s later started again from the first key, loading the store
// for as long as the load that made it late lasted (issue 27).
func retryTimeouts(ctx context.Context, op func() error) error {
	for try := 0; ; try++ {
		err := op()
		var ne net.Error
		if err == nil || try == timeoutRetries || !errors.As(err, &ne) || !ne.Timeout() {
			return err
		}
		t := time.NewTimer(time.Duration(try+1) * 250 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// slotCounter reads the pool's slot counters (accounts.Pool).
type slotCounter interface {
	SlotsUsed(ctx context.Context) (map[string]int, error)
}

// countsAgree says whether the slot counters already match binds (read by
// this sync) and every binding names an account of the pool (tierOf): then
// the recount, one script over the whole bind hash that holds Redis for as
// long as it runs (past the read timeout at 100,000 keys on a loaded
// machine, failing the sync), has nothing to fix. Binds made while the
// bindings were read can make them look apart; the recount then runs, as
// it always did. Any doubt (no counter reader, a read error) runs it too.
func (s *Syncer) countsAgree(ctx context.Context, tierOf map[string]string, binds map[string]string) bool {
	sc, ok := s.pool.(slotCounter)
	if !ok || binds == nil {
		return false
	}
	used, err := sc.SlotsUsed(ctx)
	if err != nil {
		return false
	}
	counts := map[string]int{}
	for _, a := range binds {
		if _, member := tierOf[a]; !member {
			return false
		}
		counts[a]++
	}
	for a, n := range counts {
		if used[a] != n {
			return false
		}
	}
	for a, n := range used {
		if n != counts[a] {
			return false
		}
	}
	return true
}

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

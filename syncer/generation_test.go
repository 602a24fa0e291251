package syncer

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claude-route/claude-route/keys"
)

// An operator's change on one replica while another replica's sync is
// running (it read the folder before the change): SyncAfter does not
// settle for that sync's report, it returns one that saw the change. A
// sync that started after the change is joined, not run again.
func TestSyncAfterSeesTheChange(t *testing.T) {
	e := realRedis(t)
	e.apiKeyFile("high", "h1", "sk-ant-api03-H1")
	var runs atomic.Int32
	entered, release := make(chan struct{}), make(chan struct{})
	gated := ledgerFunc(func(ctx context.Context) ([]keys.Record, error) {
		if runs.Add(1) == 1 {
			close(entered)
			select { // the first run has read the folder: hold it here
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return e.ledger.All(ctx)
	})
	a, b := e.replicaOn(e.client(), gated), e.replicaOn(e.client(), gated)
	first := make(chan Report, 1)
	go func() { r, _ := a.Sync(e.ctx); first <- r }()
	<-entered
	e.apiKeyFile("high", "h2", "sk-ant-api03-H2") // the operator's change
	after := make(chan Report, 1)
	go func() { r, _ := b.SyncAfter(e.ctx); after <- r }()
	select {
	case r := <-after:
		t.Fatalf("SyncAfter returned while the older sync still ran: %+v", r)
	case <-time.After(100 * time.Millisecond): // waiting for it, then its own
	}
	close(release)
	old, rep := <-first, <-after
	if slices.Contains(old.Added, "h2") {
		t.Fatalf("the first sync was meant to miss h2: %+v", old)
	}
	if rep.Joined || !slices.Contains(rep.Added, "h2") || rep.Generation < 1 || runs.Load() != 2 {
		t.Fatalf("SyncAfter = %+v after %d runs; want a run of its own that added h2", rep, runs.Load())
	}
	// No change since: a sync of its own, which has seen it, is enough.
	if again, err := a.SyncAfter(e.ctx); err != nil || again.Joined || runs.Load() != 3 {
		t.Fatalf("SyncAfter = %+v, %v after %d runs", again, err, runs.Load())
	}
}

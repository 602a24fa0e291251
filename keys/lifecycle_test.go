package keys

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/testenv"
)

// TestLifecycleSurvivesFlush changes a key's expiry, note and tier, then
// flushes Redis and restores from the ledger: every change comes back.
func TestLifecycleSurvivesFlush(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, b.open(t))
			key, rec := f.issue(t, "trial", 24*time.Hour, "first")
			until := t0.Add(30 * 24 * time.Hour)
			if got, err := f.store.SetExpiry(ctx, rec.ID, until); err != nil || !got.Expires.Equal(until) {
				t.Fatalf("SetExpiry = %+v, %v", got, err)
			}
			if got, err := f.store.SetNote(ctx, key, "second"); err != nil || got.Note != "second" {
				t.Fatalf("SetNote = %+v, %v", got, err)
			}
			moved, err := f.store.SetTier(ctx, rec.ID, "trial", "high")
			if err != nil || moved.Tier != "high" || moved.Hash != rec.Hash {
				t.Fatalf("SetTier = %+v, %v", moved, err)
			}
			check := func(when string) {
				t.Helper()
				got, err := f.store.Authenticate(ctx, key)
				if err != nil {
					t.Fatalf("%s: the moved key is refused: %v", when, err)
				}
				if got.Tier != "high" || got.Note != "second" || !got.Expires.Equal(until) {
					t.Fatalf("%s: record %+v, want tier high, note second, expires %v", when, got, until)
				}
			}
			check("before the flush")
			trial, err := f.store.Ledger().TierRecords(ctx, "trial")
			if err != nil || len(trial) != 0 {
				t.Fatalf("trial ledger after the move: %+v, %v; want empty", trial, err)
			}

			testenv.Flush(t, f.rdb)
			all, err := f.store.Ledger().All(ctx)
			if err != nil || len(all) != 1 {
				t.Fatalf("ledger: %d records, %v", len(all), err)
			}
			if _, err := f.store.Restore(ctx, all[0]); err != nil {
				t.Fatal(err)
			}
			check("after a flush and restore")
		})
	}
}

func TestLifecycleRefusals(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, testenv.Redis(t, testDB))
	_, rec := f.issue(t, "trial", time.Hour, "")
	if _, err := f.store.SetTier(ctx, rec.ID, "medium", "high"); !errors.Is(err, ErrConflict) {
		t.Fatalf("move from the wrong tier: %v, want ErrConflict", err)
	}
	if _, err := f.store.SetExpiry(ctx, "k_000000000000", t0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown key: %v, want ErrNotFound", err)
	}
	if _, err := f.store.Revoke(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.SetExpiry(ctx, rec.ID, t0.Add(time.Hour)); !errors.Is(err, ErrRevokedKey) {
		t.Fatalf("extend a revoked key: %v, want ErrRevokedKey", err)
	}
	if _, err := f.store.SetTier(ctx, rec.ID, "trial", "high"); !errors.Is(err, ErrRevokedKey) {
		t.Fatalf("move a revoked key: %v, want ErrRevokedKey", err)
	}
	// A revoked key may still get a note saying why.
	if got, err := f.store.SetNote(ctx, rec.ID, "refunded"); err != nil || got.Note != "refunded" {
		t.Fatalf("note on a revoked key: %+v, %v", got, err)
	}
}

// TestMoveUndoneWhenLedgerFails: a move the ledger cannot record leaves
// Redis as it was, so a flush cannot bring back a different tier.
func TestMoveUndoneWhenLedgerFails(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, testenv.Redis(t, testDB))
	_, rec := f.issue(t, "trial", time.Hour, "")
	// A folder where the target tier's file should be makes its write fail.
	if err := os.Mkdir(filepath.Join(f.dir, "high"+journalSuffix), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.SetTier(ctx, rec.ID, "trial", "high"); err == nil {
		t.Fatal("move succeeded although the ledger could not be written")
	}
	got, err := f.store.Get(ctx, rec.ID)
	if err != nil || got.Tier != "trial" {
		t.Fatalf("after the failed move: %+v, %v; want tier trial", got, err)
	}
}

// TestConcurrentMovesOneWins: two operators moving the same key from the
// same tier at once: one move wins, the other is told, the ledger holds the
// key exactly once.
func TestConcurrentMovesOneWins(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, testenv.Redis(t, testDB))
	_, rec := f.issue(t, "trial", time.Hour, "")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, to := range []string{"high", "supreme"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = f.store.SetTier(ctx, rec.ID, "trial", to)
		}()
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, ErrConflict):
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d moves won, want 1 (%v)", wins, errs)
	}
	all, err := f.store.Ledger().All(ctx)
	if err != nil || len(all) != 1 {
		t.Fatalf("ledger holds %d records (%v), want 1", len(all), err)
	}
	got, _ := f.store.Get(ctx, rec.ID)
	if got.Tier != all[0].Tier {
		t.Fatalf("Redis says %s, ledger says %s", got.Tier, all[0].Tier)
	}
}

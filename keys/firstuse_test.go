package keys

import (
	"context"
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/testenv"
)

// A key issued from first use waits, not activated and without an expiry,
// until Activate; then it expires at the first use plus its validity, once
// however often Activate runs, and the activation survives a flush of the
// store and a restore from the ledger.
func TestFirstUseActivationSurvivesFlush(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, b.open(t))
			key, rec, err := f.store.IssueWith(ctx, IssueSpec{Tier: "trial", Validity: 30 * 24 * time.Hour, FromFirstUse: true, Note: "stock"})
			if err != nil {
				t.Fatal(err)
			}
			if !rec.NotActivated() || !rec.Expires.IsZero() || rec.FirstUse != 30*24*time.Hour {
				t.Fatalf("issued %+v, want not activated with 720h to start", rec)
			}
			// Waiting on the shelf does not age it.
			f.clk.Advance(90 * 24 * time.Hour)
			if _, err := f.store.Authenticate(ctx, key); err != nil {
				t.Fatalf("a not-activated key after 90 days: %v", err)
			}
			// Still not activated after a flush and restore.
			flushRestore(t, f)
			if got, _ := f.store.Get(ctx, rec.ID); !got.NotActivated() {
				t.Fatalf("after flush, not activated: %+v", got)
			}

			first := f.clk.Now()
			exp, did, err := f.store.Activate(ctx, rec.Hash, first)
			if err != nil || !did || !exp.Equal(truncMillis(first.Add(30*24*time.Hour))) {
				t.Fatalf("Activate = %v, %v, %v", exp, did, err)
			}
			f.clk.Advance(time.Hour)
			if exp2, did2, err := f.store.Activate(ctx, rec.Hash, f.clk.Now()); err != nil || did2 || !exp2.Equal(exp) {
				t.Fatalf("second Activate = %v, %v, %v; want the first expiry, not again", exp2, did2, err)
			}
			if err := f.store.Ledger().Flush(ctx); err != nil {
				t.Fatal(err)
			}
			flushRestore(t, f)
			got, err := f.store.Get(ctx, rec.ID)
			if err != nil || got.NotActivated() || !got.Expires.Equal(exp) || got.FirstUse != 0 {
				t.Fatalf("after activation, flush and restore: %+v, %v; want expiry %v", got, err, exp)
			}
			f.clk.Advance(30 * 24 * time.Hour)
			if _, err := f.store.Authenticate(ctx, key); err == nil {
				t.Fatal("the key outlived first use + validity")
			}
		})
	}
}

// An explicit expiry ends the wait for the first use.
func TestSetExpiryActivates(t *testing.T) {
	ctx := context.Background()
	c, _ := testenv.Mini(t)
	f := newFixture(t, c)
	_, rec, err := f.store.IssueWith(ctx, IssueSpec{Tier: "trial", Validity: time.Hour, FromFirstUse: true})
	if err != nil {
		t.Fatal(err)
	}
	until := f.clk.Now().Add(48 * time.Hour)
	got, err := f.store.SetExpiry(ctx, rec.ID, until)
	if err != nil || got.NotActivated() || got.FirstUse != 0 {
		t.Fatalf("SetExpiry = %+v, %v", got, err)
	}
	if _, did, _ := f.store.Activate(ctx, rec.Hash, f.clk.Now()); did {
		t.Fatal("activated after an explicit expiry")
	}
	lr, err := f.store.Ledger().Get(ctx, rec.Hash)
	if err != nil || lr.FirstUse != 0 || !lr.Expires.Equal(truncMillis(until)) {
		t.Fatalf("ledger %+v, %v", lr, err)
	}
}

// flushRestore empties the store and brings the ledger's records back, as
// sync does after a flush.
func flushRestore(t *testing.T, f *fixture) {
	t.Helper()
	ctx := context.Background()
	testenv.Flush(t, f.rdb)
	all, err := f.store.Ledger().All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range all {
		if _, err := f.store.Restore(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
}

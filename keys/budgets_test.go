package keys

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"
)

// A key's own budgets, given at issue and changed later, are in Redis for
// admission and in the ledger: they come back after a flush and restore,
// and a ledger reopened from its files (journal replay) holds them too.
func TestBudgetsSurviveFlushAndReplay(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, b.open(t))
			_, rec, err := f.store.IssueWith(ctx, IssueSpec{Tier: "trial", Validity: time.Hour, Budgets: Budgets{DayUSD: 2.5}})
			if err != nil {
				t.Fatal(err)
			}
			_, plain := f.issue(t, "trial", time.Hour, "no budgets")
			if got, _ := f.store.Get(ctx, rec.ID); got.Budgets != (Budgets{DayUSD: 2.5}) {
				t.Fatalf("issued budgets = %+v, want day 2.5", got.Budgets)
			}
			flushRestore(t, f)
			if got, _ := f.store.Get(ctx, rec.ID); got.Budgets != (Budgets{DayUSD: 2.5}) {
				t.Fatalf("budgets after a flush = %+v, want day 2.5", got.Budgets)
			}

			want := Budgets{DayUSD: 1.25, WeekUSD: 7}
			got, err := f.store.SetBudgets(ctx, rec.ID, want)
			if err != nil || got.Budgets != want {
				t.Fatalf("SetBudgets = %+v, %v", got.Budgets, err)
			}
			if err := f.store.Ledger().Flush(ctx); err != nil {
				t.Fatal(err)
			}
			flushRestore(t, f)
			for _, c := range []struct {
				ref  string
				want Budgets
			}{{rec.ID, want}, {plain.ID, Budgets{}}} {
				if got, err := f.store.Get(ctx, c.ref); err != nil || got.Budgets != c.want {
					t.Errorf("%s after set, flush and restore: %+v, %v; want %+v", c.ref, got.Budgets, err, c.want)
				}
			}
			// The journal line says what changed, readable with jq.
			lines := journalLines(t, f.dir, "trial")
			last := lines[len(lines)-1]
			if last["op"] != OpBudget {
				t.Fatalf("last journal line = %v, want a budget change", last)
			}
			// A ledger read afresh from its files replays the change.
			re := testLedger(t, f.dir, nil)
			lr, err := re.Get(ctx, rec.Hash)
			if err != nil || lr.Budgets != want {
				t.Fatalf("replayed ledger: %+v, %v; want %+v", lr.Budgets, err, want)
			}
			// Back to the tier's budgets.
			if got, err := f.store.SetBudgets(ctx, rec.ID, Budgets{}); err != nil || !got.Budgets.IsZero() {
				t.Fatalf("clearing budgets = %+v, %v", got.Budgets, err)
			}
			flushRestore(t, f)
			if got, _ := f.store.Get(ctx, rec.ID); !got.Budgets.IsZero() {
				t.Fatalf("cleared budgets came back after a flush: %+v", got.Budgets)
			}
		})
	}
}

func TestBudgetsRefused(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, backends()[0].open(t))
	_, rec := f.issue(t, "trial", time.Hour, "")
	for _, b := range []Budgets{{DayUSD: -1}, {WeekUSD: math.Inf(1)}, {DayUSD: math.NaN()}, {WeekUSD: 2e9}} {
		if _, err := f.store.SetBudgets(ctx, rec.ID, b); err == nil {
			t.Errorf("SetBudgets(%+v) accepted", b)
		}
		if _, _, err := f.store.IssueWith(ctx, IssueSpec{Tier: "trial", Budgets: b}); err == nil {
			t.Errorf("issue with budgets %+v accepted", b)
		}
	}
	if _, err := f.store.SetBudgets(ctx, "k_000000000000", Budgets{DayUSD: 1}); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetBudgets on a missing key: %v, want ErrNotFound", err)
	}
}

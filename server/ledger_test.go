package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/testenv"
	"github.com/claude-route/claude-route/keys"
	"github.com/claude-route/claude-route/tiers"
)

// ledgerFlush waits until every instance's ledger wrote what was queued.
func (e *env) ledgerFlush() {
	e.t.Helper()
	for _, a := range e.apps {
		if err := a.Ledger.Flush(context.Background()); err != nil {
			e.t.Fatal(err)
		}
	}
}

// Issue 27: a burst of first requests binds 1,000 fresh keys in a tier of
// several accounts; every binding is in the ledger within a second of the
// burst's end, so a FLUSHALL then a sync brings every key back to the
// account it had. Before the journal, each binding rewrote the whole tier
// file under the cross-replica lock in a goroutine of its own, and most of
// them were still waiting a second later.
func TestBindingsOfABurstSurviveAFlush(t *testing.T) {
	tt, err := tiers.Parse([]byte(`{"tiers":[{"name":"open","slots":400}]}`))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	e.tiers = tt
	for _, a := range []string{"o1", "o2", "o3"} {
		e.apiAccount("open", a)
	}
	url := e.start()
	app := e.apps[0]
	ctx := context.Background()

	const n, workers = 1000, 25
	keyOf := make([]string, n)
	hashOf := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				k, rec, err := app.Keys.Issue(ctx, "open", 0, "", "")
				if err != nil {
					errs <- err
					return
				}
				keyOf[i], hashOf[i] = k, rec.Hash
			}
		})
	}
	wg.Wait()
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				if r := post(t, url, "/v1/messages", keyOf[i], msgBody("claude-sonnet-4-5", false)); r.status != http.StatusOK {
					errs <- fmt.Errorf("first request of key %d: %d %s", i, r.status, r.body)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	burstEnd := time.Now()
	before, err := app.Pool.Bindings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	perAccount := map[string]int{}
	for _, h := range hashOf {
		if before[h] == "" {
			t.Fatalf("key %s is not bound after its first request", hashOf[0][:8])
		}
		perAccount[before[h]]++
	}
	if len(perAccount) < 2 {
		t.Fatalf("bindings %v: the test needs keys on several accounts", perAccount)
	}

	// Read the ledger from its files, as a new replica would, until every
	// binding is there; the issue allows one second.
	for {
		recs, err := newLedgerReader(e.prodDir).All(ctx)
		if err != nil {
			t.Fatal(err)
		}
		missing := 0
		for _, r := range recs {
			if r.Tier == "open" && r.Account != before[r.Hash] {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Since(burstEnd) > time.Second {
			t.Fatalf("%d of %d bindings were not in the ledger 1 s after the burst", missing, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The writer's own account of it, what `scripts/bench scale` polls:
	// 0 once the work the requests left (recorded off the response path)
	// is posted and written.
	e.srvs[0].waitBackground()
	e.ledgerFlush()
	if m := scrape(t, url); !strings.Contains(m, "\nclaude_route_ledger_pending_changes 0\n") {
		t.Errorf("/metrics: no claude_route_ledger_pending_changes 0 once every change is written:\n%s", m)
	}

	testenv.Flush(t, e.rdb())
	e.sync()
	after, err := app.Pool.Bindings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	moved := 0
	for _, h := range hashOf {
		if after[h] != before[h] {
			moved++
		}
	}
	if moved > 0 {
		t.Fatalf("after FLUSHALL and sync, %d of %d keys lost their account or came back on another", moved, n)
	}
}

// newLedgerReader reads the ledger's files afresh (it never writes, so it
// starts no writer).
func newLedgerReader(dir string) *keys.Ledger { return keys.NewLedger(dir, nil) }

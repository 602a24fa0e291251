package syncer

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claude-route/claude-route/keys"
)

// The issue's acceptance: FLUSHALL + sync brings back every issued key
// (tier, expiry, status, note) on the account it was bound to.
func TestFlushThenSyncLosesNothing(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		e.oauthFile("high", "h1", "sk-ant-oat01-H1", "sk-ant-ort01-H1", t0.Add(time.Hour))
		e.apiKeyFile("high", "h2", "sk-ant-api03-H2")
		e.apiKeyFile("trial", "t1", "sk-ant-api03-T1")
		e.sync()
		var recs []keys.Record
		for range 5 {
			recs = append(recs, e.issue("high", true)) // spread over h1 and h2
		}
		recs = append(recs, e.issueFor("trial", 24*time.Hour, true))
		unbound := e.issue("high", false)
		recs = append(recs, unbound)
		revoked := e.issue("high", true)
		if _, err := e.keys.Revoke(e.ctx, revoked.Hash); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, revoked)
		e.sync() // gives the revoked key's slot back
		want := map[string]keys.Record{}
		bound := map[string]string{}
		for _, r := range recs {
			got, err := e.keys.Get(e.ctx, r.Hash)
			if err != nil {
				t.Fatal(err)
			}
			want[r.Hash], bound[r.Hash] = got, e.bound(r.Hash)
		}
		usedBefore := e.used()

		e.flush()
		rep := e.sync()

		if rep.KeysRestored != len(recs) || rep.BindingsRestored != 6 {
			t.Fatalf("report %s", rep)
		}
		for _, r := range recs {
			got, err := e.keys.Get(e.ctx, r.Hash)
			if err != nil {
				t.Fatalf("key %s lost: %v", r.ID, err)
			}
			w := want[r.Hash]
			if got.Tier != w.Tier || got.Status != w.Status || got.Note != w.Note ||
				!got.Expires.Equal(w.Expires) || !got.Created.Equal(w.Created) || !got.RevokedAt.Equal(w.RevokedAt) {
				t.Fatalf("key %s came back as %+v, was %+v", r.ID, got, w)
			}
			if b := e.bound(r.Hash); b != bound[r.Hash] {
				t.Fatalf("key %s bound to %q, was %q", r.ID, b, bound[r.Hash])
			}
		}
		if got := e.used(); !equalMaps(got, usedBefore) {
			t.Fatalf("slots used %v, were %v", got, usedBefore)
		}
		// A second sync finds nothing to restore.
		if rep := e.sync(); rep.KeysRestored+rep.BindingsRestored+rep.BindingsMoved != 0 {
			t.Fatalf("second sync: %s", rep)
		}
	})
}

func TestRevokedAndExpiredKeysGiveTheirSlotBack(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		e.apiKeyFile("high", "h1", "sk-ant-api03-H1")
		e.sync()
		keep := e.issue("high", true)
		revoked := e.issue("high", true)
		expiring := e.issueFor("high", time.Hour, true)
		if _, err := e.keys.Revoke(e.ctx, revoked.Hash); err != nil {
			t.Fatal(err)
		}
		e.clk.Advance(time.Hour) // expires at the instant
		rep := e.sync()
		if rep.SlotsReleased != 2 {
			t.Fatalf("report %s", rep)
		}
		if e.bound(revoked.Hash) != "" || e.bound(expiring.Hash) != "" || e.bound(keep.Hash) != "h1" {
			t.Fatal("wrong bindings after release")
		}
		if u := e.used()["h1"]; u != "1" {
			t.Fatalf("h1 uses %s slots, want 1", u)
		}
	})
}

// Slot counters are derived: whatever they say, a sync makes them the
// number of live bindings.
func TestSyncRecountsSlots(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		e.apiKeyFile("high", "h1", "sk-ant-api03-H1")
		e.apiKeyFile("high", "h2", "sk-ant-api03-H2")
		e.sync()
		for range 3 {
			e.issue("high", true)
		}
		e.rdb.HSet(e.ctx, "cr:{pool}:used", "h1", 3, "h2", 0, "ghost", 5)
		e.rdb.HSet(e.ctx, "cr:{pool}:bind", strings.Repeat("f", 64), "ghost") // binding to no account
		rep := e.sync()
		binds, _ := e.pool.Bindings(e.ctx)
		count := map[string]string{}
		n := map[string]int{}
		for _, a := range binds {
			n[a]++
		}
		for a, c := range n {
			count[a] = strconv.Itoa(c)
		}
		if got := e.used(); !equalMaps(got, count) {
			t.Fatalf("used %v, bindings say %v", got, count)
		}
		if rep.BindingsMoved != 1 {
			t.Fatalf("the ghost binding must be dropped and counted: %s", rep)
		}
	})
}

func TestReportIsStoredAndReadable(t *testing.T) {
	e := mini(t)
	if last, err := e.s.Last(e.ctx); err != nil || last != nil {
		t.Fatalf("before any sync: %v %v", last, err)
	}
	e.apiKeyFile("high", "h1", "sk-ant-api03-H1")
	e.oauthFile("supreme", "s1", "sk-ant-oat01-S1", "sk-ant-ort01-S1", t0.Add(time.Hour))
	// A sync that takes a while: the clock moves while the ledger is read.
	e.s = e.replica(ledgerFunc(func(ctx context.Context) ([]keys.Record, error) {
		e.clk.Advance(1500 * time.Millisecond)
		return e.ledger.All(ctx)
	}))
	rep := e.sync()
	if rep.ID == "" || rep.Replica == "" || !rep.StartedAt.Equal(t0) || rep.Duration != 1500*time.Millisecond {
		t.Fatalf("report %+v", rep)
	}
	if s := rep.String(); !strings.Contains(s, "+2 ~0 -0") || !strings.Contains(s, "1500ms") {
		t.Fatalf("summary %q", s)
	}
	last, err := e.s.Last(e.ctx)
	if err != nil || last == nil {
		t.Fatal(last, err)
	}
	if last.ID != rep.ID || last.Duration != rep.Duration || strings.Join(last.Added, ",") != "h1,s1" {
		t.Fatalf("last %+v, ran %+v", last, rep)
	}
	var raw map[string]any
	b, _ := json.Marshal(rep)
	if err := json.Unmarshal(b, &raw); err != nil || raw["duration_seconds"] != 1.5 || raw["accounts_added"] == nil {
		t.Fatalf("json %s", b)
	}
	for _, secret := range []string{"sk-ant-api03-H1", "sk-ant-oat01-S1", "sk-ant-ort01-S1"} {
		if strings.Contains(string(b), secret) || strings.Contains(e.logs.String(), secret) {
			t.Fatal("a credential leaked into the report or the log")
		}
	}
}

type ledgerFunc func(ctx context.Context) ([]keys.Record, error)

func (f ledgerFunc) All(ctx context.Context) ([]keys.Record, error) { return f(ctx) }

type countingRefresher struct{ n atomic.Int32 }

func (r *countingRefresher) Replan(context.Context) error { r.n.Add(1); return nil }

// Run syncs on every tick of the clock, re-plans refreshes after each
// sync, and stops with its context.
func TestRunSyncsEveryInterval(t *testing.T) {
	e := mini(t)
	e.apiKeyFile("high", "h1", "sk-ant-api03-H1")
	ran := make(chan bool, 4)
	rf := &countingRefresher{}
	e.s = New(e.rdb, Config{AccountDir: e.acctDir, Tiers: e.tiers, Clock: e.clk, OnRun: func(ok bool) { ran <- ok }},
		e.accounts, e.pool, e.ledger, e.keys, rf)
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() { defer close(done); e.s.Run(ctx, 4*time.Hour) }()

	for i := range 2 {
		waitTimer(t, e)
		e.clk.Advance(4*time.Hour - time.Second)
		select {
		case <-ran:
			t.Fatal("synced before the interval")
		default:
		}
		e.clk.Advance(time.Second)
		if ok := <-ran; !ok {
			t.Fatalf("sync %d failed", i)
		}
	}
	if rf.n.Load() != 2 {
		t.Fatalf("replans: %d", rf.n.Load())
	}
	cancel()
	<-done
}

// waitTimer waits until Run has armed its next timer (it does so from its
// own goroutine).
func waitTimer(t *testing.T, e *env) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for e.clk.Pending() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Run armed no timer")
		}
		time.Sleep(time.Millisecond)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

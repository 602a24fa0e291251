package keys

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/internal/testenv"
	"github.com/claude-route/claude-route/store"
)

// Two replicas (two clients, two Stores, two Ledgers) share one PRODUCT_DIR;
// only the distributed lock keeps their read-modify-writes apart.
func TestConcurrentIssueAcrossReplicas(t *testing.T) {
	for _, b := range []struct {
		name string
		open func(t *testing.T) (redis.UniversalClient, redis.UniversalClient)
	}{
		{"miniredis", func(t *testing.T) (redis.UniversalClient, redis.UniversalClient) {
			c1, m := testenv.Mini(t)
			c2 := redis.NewClient(&redis.Options{Addr: m.Addr()})
			t.Cleanup(func() { _ = c2.Close() })
			return c1, c2
		}},
		{"redis", func(t *testing.T) (redis.UniversalClient, redis.UniversalClient) {
			c1 := testenv.Redis(t, testDB)
			o, _ := testStoreOptions()
			c2 := redis.NewUniversalClient(o)
			t.Cleanup(func() { _ = c2.Close() })
			return c1, c2
		}},
	} {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			c1, c2 := b.open(t)
			dir := t.TempDir()
			clk := clock.NewFake(t0)
			stores := []*Store{
				NewStore(c1, testLedger(t, dir, NewRedisLocker(c1)), clk),
				NewStore(c2, testLedger(t, dir, NewRedisLocker(c2)), clk),
			}
			const n = 50
			var wg sync.WaitGroup
			errs := make(chan error, n)
			hashes := make(chan string, n)
			for i := range n {
				wg.Go(func() {
					_, rec, err := stores[i%2].Issue(ctx, "trial", time.Hour, "", "")
					errs <- err
					hashes <- rec.Hash
				})
			}
			wg.Wait()
			close(errs)
			close(hashes)
			for err := range errs {
				if err != nil {
					t.Fatalf("Issue: %v", err)
				}
			}

			p := filepath.Join(dir, "trial"+journalSuffix)
			ls := journalLines(t, dir, "trial")
			if len(ls) != n+1 {
				t.Fatalf("journal holds %d lines, want a header and %d issues: writes were lost", len(ls), n)
			}
			all, err := stores[0].Ledger().All(ctx)
			if err != nil {
				t.Fatal(err)
			}
			inLedger := map[string]bool{}
			for _, r := range all {
				inLedger[r.Hash] = true
			}
			for h := range hashes {
				if !inLedger[h] {
					t.Fatalf("issued key %s is missing from the ledger", ID(h))
				}
			}
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Fatalf("ledger mode %v, want 0600", st.Mode().Perm())
			}
			if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
				t.Fatalf("temp files left behind: %v", left)
			}
		})
	}
}

func testStoreOptions() (*redis.UniversalOptions, error) {
	o, err := store.ParseURL(os.Getenv("REDIS_URL"))
	if err != nil {
		return nil, err
	}
	if !o.IsClusterMode && o.MasterName == "" {
		o.DB = testDB
	}
	return o, nil
}

func TestLedgerFileShape(t *testing.T) {
	ctx := context.Background()
	rdb, _ := testenv.Mini(t)
	f := newFixture(t, rdb)
	_, rec := f.issue(t, "trial", 24*time.Hour, "n")
	if err := f.store.SetAccount(ctx, rec.Hash, "acct-1"); err != nil {
		t.Fatal(err)
	}
	ls := journalLines(t, f.dir, "trial")
	if len(ls) != 3 || ls[0]["ledger"] != "journal" || ls[0]["tier"] != "trial" {
		t.Fatalf("journal = %v, want a header, an issue and a bind", ls)
	}
	if ls[1]["op"] != "issue" || ls[1]["id"] != rec.ID || ls[1]["hash"] != rec.Hash {
		t.Fatalf("issue line = %v", ls[1])
	}
	es, _ := ls[1]["record"].(map[string]any)
	for _, field := range []string{"hash", "id", "prefix", "tier", "created", "expires", "status", "note", "account", "revoked_at"} {
		if _, ok := es[field]; !ok {
			t.Errorf("issued record lacks %q", field)
		}
	}
	if es["hash"] != rec.Hash || es["revoked_at"] != nil {
		t.Fatalf("issued record = %v", es)
	}
	if ls[2]["op"] != "bind" || ls[2]["account"] != "acct-1" || ls[2]["id"] != rec.ID {
		t.Fatalf("bind line = %v", ls[2])
	}
	rec.Account = "acct-1"
	all, err := f.store.Ledger().All(ctx)
	if err != nil || len(all) != 1 || all[0] != rec {
		t.Fatalf("All = %+v, %v; want [%+v]", all, err, rec)
	}
}

func TestLedgerBrokenFile(t *testing.T) {
	cases := []struct {
		name, file, body string
	}{
		{"truncated JSON", "high.json", `[{"hash":`},
		{"not an array", "high.json", `{"hash":"x"}`},
		{"bad record", "high.json", `[{"hash":"nothex","id":"k_x","tier":"high","status":"active","created":"2026-01-01T00:00:00Z"}]`},
		{"record of another tier", "high.json", mustLedgerJSON(t, "trial")},
		{"file name not a tier", "Bad Name.json", `[]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			l := testLedger(t, dir, nil)
			// A good tier next to the broken one must not hide the error.
			good := filepath.Join(dir, "trial.json")
			if err := os.WriteFile(good, []byte(mustLedgerJSON(t, "trial")), 0o600); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, c.file)
			if err := os.WriteFile(p, []byte(c.body), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := l.All(context.Background())
			if err == nil || !strings.Contains(err.Error(), p) {
				t.Fatalf("All = %v, want an error naming %s", err, p)
			}
			// And no write may replace the broken file with fewer records.
			if c.file == "high.json" {
				r := testRecord("high")
				if _, err := l.Commit(context.Background(), Change{Op: OpIssue, Record: r}); err == nil {
					t.Fatal("issue over a broken file succeeded")
				}
				if b, _ := os.ReadFile(p); string(b) != c.body {
					t.Fatal("the broken file was overwritten")
				}
			}
		})
	}
}

func TestLedgerMissingAndEmpty(t *testing.T) {
	ctx := context.Background()
	if all, err := NewLedger(filepath.Join(t.TempDir(), "none"), nil).All(ctx); err != nil || len(all) != 0 {
		t.Fatalf("missing folder: %v, %v", all, err)
	}
	dir := t.TempDir()
	_ = os.WriteFile(filepath.Join(dir, "trial.json"), nil, 0o600)
	_ = os.WriteFile(filepath.Join(dir, ".trial.json.tmp-1"), []byte("junk"), 0o600)
	_ = os.WriteFile(filepath.Join(dir, "README"), []byte("junk"), 0o600)
	if all, err := NewLedger(dir, nil).All(ctx); err != nil || len(all) != 0 {
		t.Fatalf("empty file, temp file, other file: %v, %v", all, err)
	}
}

func testRecord(tier string) Record {
	h := Hash(Generate())
	return Record{ID: ID(h), Hash: h, Prefix: "sk-cli-v1-abcd…", Tier: tier, Status: StatusActive, Created: t0}
}

func mustLedgerJSON(t *testing.T, tier string) string {
	t.Helper()
	b, err := json.Marshal([]entry{toEntry(testRecord(tier))})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// blockingLocker never grants the lock; it waits for the context.
type blockingLocker struct{}

func (blockingLocker) Lock(ctx context.Context, _ string) (func(), error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestLedgerLockHonoursContext(t *testing.T) {
	l := NewLedger(t.TempDir(), blockingLocker{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	defer func() {
		// Close gives up on the lock at its deadline and stops the writer.
		cctx, ccancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer ccancel()
		if err := l.Close(cctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Close while the lock never comes = %v", err)
		}
		select {
		case <-l.w.exited:
		case <-time.After(5 * time.Second):
			t.Error("the writer did not stop after Close gave up")
		}
	}()
	issue := Change{Op: OpIssue, Record: testRecord("trial")}
	if _, err := l.Commit(ctx, issue); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("distributed lock wait: %v, want context.DeadlineExceeded", err)
	}

	// The in-process lock too: hold it, then ask with a cancelled context.
	l2 := NewLedger(t.TempDir(), nil)
	l2.mu <- struct{}{}
	if err := l2.acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("in-process lock wait: %v, want context.DeadlineExceeded", err)
	}
}

func TestRedisLockerExcludes(t *testing.T) {
	rdb, _ := testenv.Mini(t)
	l := NewRedisLocker(rdb)
	ctx := context.Background()
	unlock, err := l.Lock(ctx, "cr:lock:test")
	if err != nil {
		t.Fatal(err)
	}
	// While held, another holder cannot get it before its context ends.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := l.Lock(short, "cr:lock:test"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Lock while held = %v, want DeadlineExceeded", err)
	}
	unlock()
	unlock2, err := l.Lock(ctx, "cr:lock:test")
	if err != nil {
		t.Fatalf("Lock after unlock: %v", err)
	}
	unlock2()
}

// The ledger lock is kept alive while held: a write slower than the lock's
// expiry (a slow disk) must not let a second writer in. Redis time is
// moved with miniredis; the keep-alive runs on wall time.
func TestRedisLockerKeepsTheLockWhileHeld(t *testing.T) {
	rdb, m := testenv.Mini(t)
	l := NewRedisLocker(rdb)
	l.expiry, l.keepAlive = 10*time.Second, 5*time.Millisecond
	ctx := context.Background()
	unlock, err := l.Lock(ctx, LedgerLock)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	for range 3 { // 27 s of Redis time in all, far past the 10 s expiry
		m.FastForward(9 * time.Second)
		deadline := time.Now().Add(10 * time.Second)
		for m.TTL(LedgerLock) <= 5*time.Second { // wait for an extension
			if time.Now().After(deadline) {
				t.Fatal("the held lock was never extended")
			}
			time.Sleep(time.Millisecond)
		}
	}
	other := NewRedisLocker(rdb)
	other.tries = 1
	if u, err := other.Lock(ctx, LedgerLock); err == nil {
		u()
		t.Fatal("a second writer got the ledger lock while it was held")
	}
	unlock()
	if m.Exists(LedgerLock) {
		t.Fatal("unlock left the lock behind")
	}
}

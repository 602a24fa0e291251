package keys

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/internal/testenv"
)

const testDB = 1 // this package's logical database (DESIGN.md)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// backend is a Redis to run a suite against.
type backend struct {
	name string
	open func(t *testing.T) redis.UniversalClient
}

// backends runs store tests on miniredis always and on the real Redis of
// REDIS_URL when there is one (in CI, always).
func backends() []backend {
	return []backend{
		{"miniredis", func(t *testing.T) redis.UniversalClient { c, _ := testenv.Mini(t); return c }},
		{"redis", func(t *testing.T) redis.UniversalClient { return testenv.Redis(t, testDB) }},
	}
}

type fixture struct {
	rdb   redis.UniversalClient
	clk   *clock.Fake
	dir   string
	store *Store
}

func newFixture(t *testing.T, rdb redis.UniversalClient) *fixture {
	t.Helper()
	dir := t.TempDir()
	clk := clock.NewFake(t0)
	return &fixture{
		rdb: rdb, clk: clk, dir: dir,
		store: NewStore(rdb, testLedger(t, dir, NewRedisLocker(rdb)), clk),
	}
}

// testLedger is a ledger whose writer is stopped when the test ends.
func testLedger(t *testing.T, dir string, lock Locker) *Ledger {
	t.Helper()
	l := NewLedger(dir, lock)
	t.Cleanup(func() {
		if err := l.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return l
}

// journalLines reads a tier's journal: its header, then its changes as
// maps (what jq would see).
func journalLines(t *testing.T, dir, tier string) []map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, tier+journalSuffix))
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for i, ln := range strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(ln), &m); err != nil {
			t.Fatalf("journal line %d is not JSON: %q (%v)", i+1, ln, err)
		}
		out = append(out, m)
	}
	return out
}

func (f *fixture) issue(t *testing.T, tier string, validity time.Duration, note string) (string, Record) {
	t.Helper()
	k, r, err := f.store.Issue(context.Background(), tier, validity, note, "")
	if err != nil {
		t.Fatalf("Issue(%s): %v", tier, err)
	}
	return k, r
}

package keys

import (
	"context"
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
		store: NewStore(rdb, NewLedger(dir, NewRedisLocker(rdb)), clk),
	}
}

func (f *fixture) issue(t *testing.T, tier string, validity time.Duration, note string) (string, Record) {
	t.Helper()
	k, r, err := f.store.Issue(context.Background(), tier, validity, note, "")
	if err != nil {
		t.Fatalf("Issue(%s): %v", tier, err)
	}
	return k, r
}

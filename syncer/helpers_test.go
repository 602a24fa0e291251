package syncer

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/internal/testenv"
	"github.com/claude-route/claude-route/keys"
	"github.com/claude-route/claude-route/store"
	"github.com/claude-route/claude-route/tiers"
)

const redisDB = 6 // DESIGN.md: syncer's test database

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// env is one replica's worth of real building blocks over one Redis, with
// temp account and product folders.
type env struct {
	t        testing.TB
	ctx      context.Context
	rdb      redis.UniversalClient
	clk      *clock.Fake
	tiers    *tiers.Table
	acctDir  string
	prodDir  string
	accounts *accounts.Store
	pool     *accounts.Pool
	ledger   *keys.Ledger
	keys     *keys.Store
	logs     *testenv.Buffer
	s        *Syncer
}

func newEnv(t testing.TB, rdb redis.UniversalClient) *env {
	e := &env{t: t, ctx: context.Background(), rdb: rdb, clk: clock.NewFake(t0), tiers: tiers.Builtin(),
		acctDir: t.TempDir(), prodDir: t.TempDir(), logs: &testenv.Buffer{}}
	log := logrus.New()
	log.SetOutput(e.logs)
	e.accounts = accounts.NewStore(rdb)
	e.pool = accounts.NewPool(rdb, e.clk, log)
	e.ledger = keys.NewLedger(e.prodDir, nil)
	e.keys = keys.NewStore(rdb, e.ledger, e.clk)
	e.s = e.replica(nil)
	return e
}

// replica is another Syncer over the same Redis and folders (another
// process of the service); ledger overrides the ledger it reads.
func (e *env) replica(ledger KeyLedger) *Syncer {
	return e.replicaOn(e.rdb, ledger)
}

// replicaOn is a replica with its own Redis client.
func (e *env) replicaOn(rdb redis.UniversalClient, ledger KeyLedger) *Syncer {
	if ledger == nil {
		ledger = e.ledger
	}
	log := logrus.New()
	log.SetOutput(e.logs)
	return New(rdb, Config{AccountDir: e.acctDir, Tiers: e.tiers, Clock: e.clk, Log: log, LockTTL: 5 * time.Second},
		accounts.NewStore(rdb), accounts.NewPool(rdb, e.clk, log), ledger, keys.NewStore(rdb, e.ledger, e.clk), nil)
}

// client opens another connection pool to the real Redis test database.
func (e *env) client() redis.UniversalClient {
	e.t.Helper()
	o, err := store.ParseURL(os.Getenv("REDIS_URL"))
	if err != nil {
		e.t.Fatal(err)
	}
	if !o.IsClusterMode && o.MasterName == "" {
		o.DB = redisDB
	}
	c := redis.NewUniversalClient(o)
	e.t.Cleanup(func() { _ = c.Close() })
	return c
}

func mini(t *testing.T) *env {
	rdb, _ := testenv.Mini(t)
	return newEnv(t, rdb)
}

func realRedis(t *testing.T) *env {
	return newEnv(t, testenv.Redis(t, redisDB))
}

// backends runs a test against miniredis and, when available, the real Redis.
func backends(t *testing.T, f func(t *testing.T, e *env)) {
	t.Run("miniredis", func(t *testing.T) { f(t, mini(t)) })
	t.Run("redis", func(t *testing.T) { f(t, realRedis(t)) })
}

func (e *env) write(tier, name string, doc any) string {
	e.t.Helper()
	dir := filepath.Join(e.acctDir, tier)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		e.t.Fatal(err)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		e.t.Fatal(err)
	}
	p := filepath.Join(dir, name+".json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// oauthFile writes the Claude Code credentials shape.
func (e *env) oauthFile(tier, name, access, refresh string, expires time.Time) string {
	return e.write(tier, name, map[string]any{"claudeAiOauth": map[string]any{
		"accessToken": access, "refreshToken": refresh, "expiresAt": expires.UnixMilli(),
		"scopes": []string{"user:inference", "user:profile"}, "subscriptionType": "max",
	}})
}

// apiKeyFile writes the API-key shape, with a base URL.
func (e *env) apiKeyFile(tier, name, key string) string {
	return e.write(tier, name, map[string]any{"apiKey": key, "baseURL": "https://upstream.example.test"})
}

func (e *env) remove(tier, name string) {
	e.t.Helper()
	if err := os.Remove(filepath.Join(e.acctDir, tier, name+".json")); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) sync() Report {
	e.t.Helper()
	rep, err := e.s.Sync(e.ctx)
	if err != nil {
		e.t.Fatalf("sync: %v (%s)", err, rep)
	}
	return rep
}

// issue creates a key of tier; if bind, the key is bound as the proxy
// binds it on first use (pool, then the ledger's record of it).
func (e *env) issue(tier string, bind bool) keys.Record {
	e.t.Helper()
	return e.issueFor(tier, 0, bind)
}

// issueFor is issue with a validity (0: forever).
func (e *env) issueFor(tier string, validity time.Duration, bind bool) keys.Record {
	e.t.Helper()
	_, rec, err := e.keys.Issue(e.ctx, tier, validity, "note for "+tier, "")
	if err != nil {
		e.t.Fatal(err)
	}
	if bind {
		tr, _ := e.tiers.Get(tier)
		b, err := e.pool.Bind(e.ctx, rec.Hash, tier, tr.Slots)
		if err != nil {
			e.t.Fatal(err)
		}
		if err := e.keys.SetAccount(e.ctx, rec.Hash, b.Account); err != nil {
			e.t.Fatal(err)
		}
		rec.Account = b.Account
	}
	return rec
}

func (e *env) bound(hash string) string {
	e.t.Helper()
	a, err := e.pool.Bound(e.ctx, hash)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// used returns the slot counters.
func (e *env) used() map[string]string {
	e.t.Helper()
	m, err := e.rdb.HGetAll(e.ctx, "cr:{pool}:used").Result()
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

func (e *env) members(tier string) []string {
	e.t.Helper()
	m, err := e.rdb.SMembers(e.ctx, "cr:{pool}:tier:"+tier).Result()
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

func (e *env) flush() {
	e.t.Helper()
	testenv.Flush(e.t, e.rdb)
}

func fmtList(s []string) string { return fmt.Sprintf("%q", s) }

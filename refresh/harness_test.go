package refresh

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/internal/fakeupstream"
	"github.com/claude-route/claude-route/internal/testenv"
	"github.com/claude-route/claude-route/store"
)

// testStore is the Store the accounts package will provide, reduced to a
// HASH per account and a Lua CAS, so that real-Redis tests exercise real
// atomicity.
type testStore struct {
	rdb redis.UniversalClient
	// beforeSwap, if set, runs before every SwapCredentials (to simulate a
	// sync landing newer credentials during a refresh).
	beforeSwap func()
	// onCredentials, if set, runs before every Credentials read with its
	// 1-based count.
	onCredentials func(n int)
	reads         int
	// lostReplies swaps are applied but answer an error, as a reply that
	// came after the client's read timeout.
	lostReplies int
}

func testAcctKey(name string) string { return "test:acct:" + name }

func (s *testStore) put(ctx context.Context, name string, c Creds) error {
	return s.rdb.HSet(ctx, testAcctKey(name), "tier", "high", "access", c.AccessToken,
		"refresh", c.RefreshToken, "expires", c.ExpiresAt.UnixMilli()).Err()
}

func (s *testStore) OAuthAccounts(ctx context.Context) ([]Account, error) {
	var out []Account
	found, err := store.ScanKeys(ctx, s.rdb, "test:acct:*") // every master of a cluster
	if err != nil {
		return nil, err
	}
	for _, k := range found {
		v, err := s.rdb.HMGet(ctx, k, "tier", "expires").Result()
		if err != nil {
			return nil, err
		}
		tier, _ := v[0].(string)
		expS, _ := v[1].(string)
		exp, _ := strconv.ParseInt(expS, 10, 64)
		out = append(out, Account{Name: strings.TrimPrefix(k, "test:acct:"), Tier: tier, ExpiresAt: time.UnixMilli(exp)})
	}
	return out, nil
}

var (
	errNoAccount = errors.New("no such account")
	errLateReply = errors.New("i/o timeout (the store answered late)")
)

func (s *testStore) Credentials(ctx context.Context, name string) (Creds, error) {
	if s.onCredentials != nil {
		s.reads++
		s.onCredentials(s.reads)
	}
	m, err := s.rdb.HGetAll(ctx, testAcctKey(name)).Result()
	if err != nil {
		return Creds{}, err
	}
	if len(m) == 0 {
		return Creds{}, errNoAccount
	}
	exp, _ := strconv.ParseInt(m["expires"], 10, 64)
	return Creds{AccessToken: m["access"], RefreshToken: m["refresh"], ExpiresAt: time.UnixMilli(exp)}, nil
}

var testSwap = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'refresh') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'access', ARGV[2], 'refresh', ARGV[3], 'expires', ARGV[4])
return 1
`)

func (s *testStore) SwapCredentials(ctx context.Context, name, usedRefresh string, next Creds) (bool, error) {
	if s.beforeSwap != nil {
		s.beforeSwap()
	}
	n, err := testSwap.Run(ctx, s.rdb, []string{testAcctKey(name)}, usedRefresh,
		next.AccessToken, next.RefreshToken, next.ExpiresAt.UnixMilli()).Int()
	if err == nil && s.lostReplies > 0 {
		s.lostReplies--
		return false, errLateReply
	}
	return n == 1, err
}

// testFiles records write-backs with the (injected) time they happened.
type testFiles struct {
	clk    clock.Clock
	mu     sync.Mutex
	writes []fileWrite
	// fails write-backs fail before any succeeds (the adapter's store
	// lookup of the file's path answered late).
	fails int
}

type fileWrite struct {
	name string
	c    Creds
	at   time.Time
}

func (f *testFiles) WriteBack(_ context.Context, name string, c Creds) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fails > 0 {
		f.fails--
		return errLateReply
	}
	f.writes = append(f.writes, fileWrite{name: name, c: c, at: f.clk.Now()})
	return nil
}

func (f *testFiles) all() []fileWrite {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fileWrite(nil), f.writes...)
}

type testBlacklist struct {
	mu      sync.Mutex
	reasons map[string]string
}

func (b *testBlacklist) Blacklist(_ context.Context, name, reason string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.reasons == nil {
		b.reasons = map[string]string{}
	}
	b.reasons[name] = reason
	return nil
}

func (b *testBlacklist) reason(name string) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r, ok := b.reasons[name]
	return r, ok
}

// env is one test's world: a store, a token endpoint, file and blacklist
// fakes, and a log sink checked for token values when the test ends.
type env struct {
	t    *testing.T
	clk  clock.Clock
	rdb  redis.UniversalClient
	up   *fakeupstream.Server
	st   *testStore
	fw   *testFiles
	bl   *testBlacklist
	logs *testenv.Buffer

	mu      sync.Mutex
	secrets []string // every token value the test handed out
}

func newEnv(t *testing.T, rdb redis.UniversalClient, clk clock.Clock) *env {
	t.Helper()
	up := fakeupstream.Start(fakeupstream.Options{Clock: clk, TokenTTL: 8 * time.Hour})
	e := &env{
		t: t, clk: clk, rdb: rdb, up: up,
		st:   &testStore{rdb: rdb},
		fw:   &testFiles{clk: clk},
		bl:   &testBlacklist{},
		logs: &testenv.Buffer{},
	}
	t.Cleanup(func() {
		up.Close()
		e.assertNoSecretsLogged()
	})
	return e
}

// config is a Config wired to this env; tweak fields before New.
func (e *env) config() Config {
	l := logrus.New()
	l.SetOutput(e.logs)
	l.SetLevel(logrus.DebugLevel)
	return Config{TokenURL: e.up.TokenURL(), Clock: e.clk, Logger: logrus.NewEntry(l)}
}

func (e *env) refresher(cfg Config) *Refresher {
	return New(e.rdb, e.st, e.fw, e.bl, cfg)
}

func secret(prefix string) string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// addAccount registers a fresh OAuth pair upstream and in the store.
func (e *env) addAccount(name string, exp time.Time) Creds {
	e.t.Helper()
	c := Creds{AccessToken: secret("sk-ant-oat01-"), RefreshToken: secret("sk-ant-ort01-"), ExpiresAt: exp}
	e.up.AddOAuth(c.AccessToken, c.RefreshToken, exp)
	e.remember(c)
	if err := e.st.put(context.Background(), name, c); err != nil {
		e.t.Fatalf("put %s: %v", name, err)
	}
	return c
}

func (e *env) remember(c Creds) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.secrets = append(e.secrets, c.AccessToken, c.RefreshToken)
}

// assertNoSecretsLogged is the "never log a token" check, run after every
// test on everything the refreshers logged.
func (e *env) assertNoSecretsLogged() {
	e.t.Helper()
	for _, w := range e.fw.all() {
		e.remember(w.c)
	}
	logs := e.logs.String()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.secrets {
		if s != "" && strings.Contains(logs, s) {
			e.t.Errorf("a token value appears in the logs")
		}
		// A prefix long enough to identify a token must not leak either.
		if len(s) > 24 && strings.Contains(logs, s[13:29]) {
			e.t.Errorf("part of a token value appears in the logs")
		}
	}
}

// start runs r.Run until the test ends (or stop is called) and waits until
// the first plan armed want timers.
func (e *env) start(r *Refresher, want int) (stop func()) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					e.t.Errorf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				e.t.Errorf("Run did not return after cancel")
			}
		})
	}
	e.t.Cleanup(stop)
	waitFor(e.t, "first plan", func() bool { return r.armed() >= want })
	return stop
}

// waitFor polls cond (synchronisation with goroutines, not timing).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// armed is how many account timers are pending.
func (r *Refresher) armed() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.timers)
}

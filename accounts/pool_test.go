package accounts

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/internal/testenv"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func newPool(t *testing.T, rdb redis.UniversalClient) (*Pool, *test.Hook) {
	log, hook := test.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	return NewPool(rdb, clock.NewFake(t0), log), hook
}

func addAccounts(t *testing.T, p *Pool, tier string, names ...string) {
	t.Helper()
	for _, n := range names {
		if err := p.SetTier(context.Background(), n, tier); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBindLeastLoadedAndPermanent(t *testing.T) {
	rdb, _ := testenv.Mini(t)
	p, hook := newPool(t, rdb)
	ctx := context.Background()
	addAccounts(t, p, "trial", "b", "a", "c")
	// Preload: a has 2, b has 1, c has 1 → next goes to b (fewest, then name order).
	for i, acc := range []string{"a", "a", "b", "c"} {
		if _, err := p.BindTo(ctx, fmt.Sprintf("pre%d", i), "trial", 7, acc); err != nil {
			t.Fatal(err)
		}
	}
	b, err := p.Bind(ctx, "k1", "trial", 7)
	if err != nil || b.Account != "b" || b.Used != 2 || !b.New {
		t.Fatalf("bind = %+v, %v", b, err)
	}
	again, err := p.Bind(ctx, "k1", "trial", 7)
	if err != nil || again.Account != "b" || again.New || again.Used != 2 {
		t.Fatalf("second bind must reuse: %+v %v", again, err)
	}
	var seen bool
	for _, e := range hook.AllEntries() {
		if e.Message == "assigned to account: b (slots: 2/7)" {
			seen = true
		}
	}
	if !seen {
		t.Errorf("missing the assignment log line")
	}
	// Upstream-limited accounts are avoided for new bindings while others have room.
	if err := p.Limit(ctx, "c", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	b2, _ := p.Bind(ctx, "k2", "trial", 7)
	if b2.Account == "c" {
		t.Errorf("new binding went to a limited account")
	}
}

func TestBindErrors(t *testing.T) {
	rdb, _ := testenv.Mini(t)
	p, _ := newPool(t, rdb)
	ctx := context.Background()
	if _, err := p.Bind(ctx, "k", "trial", 1); !errors.Is(err, ErrEmpty) {
		t.Fatalf("empty tier: %v", err)
	}
	addAccounts(t, p, "trial", "a")
	if _, err := p.Bind(ctx, "k1", "trial", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Bind(ctx, "k2", "trial", 1); !errors.Is(err, ErrFull) {
		t.Fatalf("full: %v", err)
	}
	if _, err := p.BindTo(ctx, "k3", "trial", 1, "zzz"); !errors.Is(err, ErrUnknownAccount) {
		t.Fatalf("unknown: %v", err)
	}
	if _, err := p.BindTo(ctx, "k3", "trial", 1, "a"); !errors.Is(err, ErrFull) {
		t.Fatalf("explicit full: %v", err)
	}
	_ = p.Blacklist(ctx, "a", "test")
	if _, err := p.Bind(ctx, "k4", "trial", 1); !errors.Is(err, ErrEmpty) {
		t.Fatalf("all blacklisted must read as no usable account: %v", err)
	}
	if _, err := p.BindTo(ctx, "k4", "trial", 1, "a"); !errors.Is(err, ErrBlacklisted) {
		t.Fatalf("explicit blacklisted: %v", err)
	}
}

func TestBlacklistMovesKeysAndRecoverReturns(t *testing.T) {
	rdb, _ := testenv.Mini(t)
	p, hook := newPool(t, rdb)
	ctx := context.Background()
	addAccounts(t, p, "high", "a", "b")
	b1, _ := p.Bind(ctx, "k1", "high", 3)
	if b1.Account != "a" {
		t.Fatalf("first binding goes to a, got %s", b1.Account)
	}
	if err := p.Blacklist(ctx, "a", "invalid bearer token"); err != nil {
		t.Fatal(err)
	}
	if hook.LastEntry().Message != "Adding a to blacklist: invalid bearer token" {
		t.Errorf("log: %q", hook.LastEntry().Message)
	}
	moved, _ := p.Bind(ctx, "k1", "high", 3)
	if moved.Account != "b" || !moved.New {
		t.Fatalf("key must move off a blacklisted account: %+v", moved)
	}
	view, _ := p.View(ctx, []string{"high"}, func(string) int { return 3 })
	got := map[string]AccountView{}
	for _, v := range view["high"] {
		got[v.Name] = v
	}
	if got["a"].SlotsUsed != 0 || got["b"].SlotsUsed != 1 || got["a"].Blacklist == nil || got["a"].Blacklist.Reason != "invalid bearer token" {
		t.Fatalf("view after move: %+v", got)
	}
	if ok, _ := p.Recover(ctx, "a"); !ok {
		t.Fatal("recover must report the account was blacklisted")
	}
	b2, _ := p.Bind(ctx, "k2", "high", 3)
	if b2.Account != "a" {
		t.Fatalf("recovered account must take new bindings again, got %s", b2.Account)
	}
	stay, _ := p.Bind(ctx, "k1", "high", 3)
	if stay.Account != "b" {
		t.Fatalf("binding is permanent after recovery too, got %s", stay.Account)
	}
}

func TestReleaseRemoveRecount(t *testing.T) {
	rdb, _ := testenv.Mini(t)
	p, _ := newPool(t, rdb)
	ctx := context.Background()
	addAccounts(t, p, "trial", "a", "b")
	for i := 0; i < 4; i++ {
		if _, err := p.Bind(ctx, fmt.Sprintf("k%d", i), "trial", 7); err != nil {
			t.Fatal(err)
		}
	}
	if ok, _ := p.Release(ctx, "k0"); !ok {
		t.Fatal("release of a bound key")
	}
	if ok, _ := p.Release(ctx, "k0"); ok {
		t.Fatal("second release is a no-op")
	}
	n, err := p.Remove(ctx, "b")
	if err != nil || n != 2 {
		t.Fatalf("remove b moved %d keys, %v", n, err)
	}
	view, _ := p.View(ctx, []string{"trial"}, func(string) int { return 7 })
	if len(view["trial"]) != 1 || view["trial"][0].Name != "a" || view["trial"][0].SlotsUsed != 1 {
		t.Fatalf("after remove: %+v", view)
	}
	// Corrupt the derived counter; recount restores it from bindings.
	rdb.HSet(ctx, keyUsed, "a", 6)
	if _, err := p.Recount(ctx); err != nil {
		t.Fatal(err)
	}
	view, _ = p.View(ctx, []string{"trial"}, func(string) int { return 7 })
	if view["trial"][0].SlotsUsed != 1 {
		t.Fatalf("recount: %+v", view)
	}
	// Changing tier moves the account between member sets.
	addAccounts(t, p, "high", "a")
	view, _ = p.View(ctx, []string{"trial", "high"}, func(string) int { return 7 })
	if len(view["trial"]) != 0 || len(view["high"]) != 1 {
		t.Fatalf("tier move: %+v", view)
	}
}

// raceBind sends n fresh keys' first requests at once, alternating between
// two clients standing for two replicas, and returns per-account counts and
// how many got ErrFull.
func raceBind(t *testing.T, pools []*Pool, round, n, slots int) (map[string]int, int) {
	t.Helper()
	ctx := context.Background()
	var mu sync.Mutex
	counts := map[string]int{}
	full := 0
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			b, err := pools[i%len(pools)].Bind(ctx, fmt.Sprintf("r%d-k%d", round, i), "trial", slots)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				counts[b.Account]++
			case errors.Is(err, ErrFull):
				full++
			default:
				t.Errorf("bind: %v", err)
			}
		}(i)
	}
	close(start)
	wg.Wait()
	return counts, full
}

func TestBindRaceRealRedis(t *testing.T) {
	c1 := testenv.Redis(t, 2)
	ctx := context.Background()
	c2 := testenv.Redis(t, 2) // a second client: a second replica
	p1, _ := newPool(t, c1)
	p2, _ := newPool(t, c2)
	pools := []*Pool{p1, p2}
	addAccounts(t, p1, "trial", "acc-1", "acc-2")

	counts, full := raceBind(t, pools, 0, 15, 7)
	if counts["acc-1"] != 7 || counts["acc-2"] != 7 || full != 1 {
		t.Fatalf("15 keys on 2×7 slots: %v, full=%d", counts, full)
	}

	rounds := 200
	if testing.Short() {
		rounds = 20
	}
	for r := 1; r <= rounds; r++ {
		testenv.Flush(t, c1)
		addAccounts(t, p1, "trial", "acc-1", "acc-2", "acc-3")
		counts, full := raceBind(t, pools, r, 50, 7)
		total := 0
		for a, n := range counts {
			if n > 7 {
				t.Fatalf("round %d: %s oversold: %d/7", r, a, n)
			}
			total += n
		}
		if total != 21 || full != 29 {
			t.Fatalf("round %d: served %d, full %d", r, total, full)
		}
		bind, _ := p1.Bindings(ctx)
		if len(bind) != 21 {
			t.Fatalf("round %d: %d bindings", r, len(bind))
		}
		used, _ := c1.HGetAll(ctx, keyUsed).Result()
		for a, u := range used {
			if u != "7" {
				t.Fatalf("round %d: counter %s=%s", r, a, u)
			}
		}
	}
}

func TestSwapAndPutRealRedis(t *testing.T) {
	rdb := testenv.Redis(t, 2)
	s := NewStore(rdb)
	ctx := context.Background()
	a := Account{Name: "o1", Tier: "high", Kind: OAuth, AccessToken: "a1", RefreshToken: "r1", ExpiresAt: t0, Path: "/x"}
	if err := s.Put(ctx, a); err != nil {
		t.Fatal(err)
	}
	ok, err := s.SwapCredentials(ctx, "o1", "r0-stale", "a9", "r9", t0.Add(time.Hour))
	if err != nil || ok {
		t.Fatalf("stale swap must be refused: %v %v", ok, err)
	}
	ok, _ = s.SwapCredentials(ctx, "o1", "r1", "a2", "r2", t0.Add(8*time.Hour))
	if !ok {
		t.Fatal("swap with the current refresh token must pass")
	}
	// A sync that re-reads an older file must not move the credentials back.
	if err := s.Put(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Get(ctx, "o1")
	if got.AccessToken != "a2" || got.RefreshToken != "r2" || !got.ExpiresAt.Equal(t0.Add(8*time.Hour)) {
		t.Fatalf("older file overwrote newer tokens: %+v", got.ExpiresAt)
	}
	// A newer file (the operator pasted fresh credentials) wins.
	a.AccessToken, a.RefreshToken, a.ExpiresAt = "a3", "r3", t0.Add(9*time.Hour)
	_ = s.Put(ctx, a)
	got, _ = s.Get(ctx, "o1")
	if got.AccessToken != "a3" {
		t.Fatalf("newer file must win")
	}
	// Another login pasted into the file wins even with an earlier expiry.
	a.AccessToken, a.RefreshToken, a.ExpiresAt = "a4", "r4", t0.Add(time.Hour)
	_ = s.Put(ctx, a)
	got, _ = s.Get(ctx, "o1")
	if got.AccessToken != "a4" || got.RefreshToken != "r4" {
		t.Fatalf("pasted credentials must win whatever their expiry")
	}
	all, _ := s.All(ctx)
	if len(all) != 1 || all[0].Name != "o1" {
		t.Fatalf("all: %v", all)
	}
	if _, err := s.Get(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
}

// Bindings reads a big bind hash in several HSCAN calls and returns every
// binding once (real Redis: past 128 fields the hash is a real table and
// the cursor walks it).
func TestBindingsOfABigPool(t *testing.T) {
	rdb := testenv.Redis(t, 2)
	ctx := context.Background()
	p, _ := newPool(t, rdb)
	want := map[string]string{}
	args := []any{}
	for i := range 2500 {
		h, a := fmt.Sprintf("%064x", i), fmt.Sprintf("acc-%d", i%7)
		want[h] = a
		args = append(args, h, a)
	}
	if err := rdb.HSet(ctx, keyBind, args...).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := p.Bindings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("%d bindings read, want %d (the same)", len(got), len(want))
	}
}

// bindReads notes whether a command touched the bind hash.
type bindReads struct{ n atomic.Int64 }

func (h *bindReads) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *bindReads) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, c redis.Cmder) error {
		h.note([]redis.Cmder{c})
		return next(ctx, c)
	}
}
func (h *bindReads) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cs []redis.Cmder) error {
		h.note(cs)
		return next(ctx, cs)
	}
}
func (h *bindReads) note(cs []redis.Cmder) {
	for _, c := range cs {
		if slices.Contains(c.Args(), any(keyBind)) {
			h.n.Add(1)
		}
	}
}

// ViewSlots is View without the bound-key counts, and without reading the
// bindings: the alert watcher polls it every 5 s, and at 100,000 keys the
// bindings are an 8 MB read.
func TestViewSlotsSkipsTheBindings(t *testing.T) {
	rdb, _ := testenv.Mini(t)
	ctx := context.Background()
	p, _ := newPool(t, rdb)
	addAccounts(t, p, "trial", "acc-1", "acc-2")
	for i := range 5 {
		if _, err := p.Bind(ctx, fmt.Sprintf("%064x", i), "trial", 7); err != nil {
			t.Fatal(err)
		}
	}
	slots := func(string) int { return 7 }
	full, err := p.View(ctx, []string{"trial"}, slots)
	if err != nil {
		t.Fatal(err)
	}
	h := &bindReads{}
	rdb.AddHook(h)
	got, err := p.ViewSlots(ctx, []string{"trial"}, slots)
	if err != nil {
		t.Fatal(err)
	}
	if h.n.Load() != 0 {
		t.Fatal("ViewSlots read the bindings")
	}
	bound := 0
	for i, a := range full["trial"] {
		bound += a.BoundKeys
		a.BoundKeys = 0
		if !reflect.DeepEqual(got["trial"][i], a) {
			t.Fatalf("ViewSlots %+v, View %+v", got["trial"][i], a)
		}
	}
	if bound != 5 {
		t.Fatalf("View counted %d bound keys, want 5", bound)
	}
}
